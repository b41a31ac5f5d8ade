"""Fetch the GraphQL IDE's JavaScript and CSS from the npm registry into schema/static/graphiql/, verified.

The playground (``legetime.schema.playground``) serves these files itself: no CDN, nothing fetched from a
third party when the page loads. The builds are the ones strawberry's own GraphiQL page loads from a CDN,
and the hashes below are the ``integrity`` attributes of that page. For each package this script

1. asks the registry for the version's tarball and its ``dist.integrity`` (SHA-512) and checks the
   downloaded tarball against it;
2. takes the files out of the tarball and checks each against the pinned SHA-384 below (refusing to write
   anything if one differs);
3. writes them with the package's licence, plus ``manifest.json`` (the page puts its hashes in ``integrity``
   attributes; a test checks the files against it) and ``README.md``.

    python -m tools.vendor_graphiql            # fetch, verify and write
    python -m tools.vendor_graphiql --check    # verify the vendored files against the pins, offline

Upgrading: change the versions and hashes in ``PACKAGES`` (take them from the ``integrity`` attributes of
strawberry's ``strawberry/static/graphiql.html`` when it moves on, or compute them from a tarball you
checked), run this, and run the browser test (tests/test_playground_browser.py). Never run by the tests.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "schema" / "static" / "graphiql"
REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    files: dict[str, str]
    """Path in the tarball (under ``package/``) → pinned ``sha384-…`` integrity."""
    licence: str = "LICENSE"
    """The licence file in the tarball, or ``name@version:path`` of another package's tarball."""
    extra_licences: dict[str, str] = field(default_factory=dict)
    """Licences of code bundled into the files: file name → ``name@version:path``."""

    @property
    def directory(self) -> str:
        return f"{self.name.removeprefix('@').replace('/', '-')}-{self.version}"


PACKAGES = (
    Package(
        "react",
        "18.2.0",
        {
            "umd/react.production.min.js": "sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf"
            "+0iGXBliJ29D+wZ/x8"
        },
    ),
    Package(
        "react-dom",
        "18.2.0",
        {
            "umd/react-dom.production.min.js": (
                "sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh"
            )
        },
    ),
    Package(
        "graphiql",
        "3.8.3",
        {
            "graphiql.min.js": "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
            "graphiql.min.css": "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
        },
    ),
    Package(
        "@graphiql/plugin-explorer",
        "1.0.2",
        {
            "dist/index.umd.js": "sha384-2oonKe47vfHIZnmB6ZZ10vl7T0Y+qrHQF2cmNTaFDuPshpKqpUMGMc9jgj9MLDZ9",
            "dist/style.css": "sha384-5DFJlDPW2tSATRbM8kzoP1j194jexLswuNmClWoRr2Q0x7R68JIQzPHZ02Faktwi",
        },
        # Its tarball has no licence file; package.json says MIT, and the repository it is built from
        # (graphql/graphiql) is under the licence graphiql's tarball carries.
        licence="graphiql@3.8.3:LICENSE",
        extra_licences={"LICENSE-graphiql-explorer": "graphiql-explorer@0.9.0:LICENSE"},  # bundled in
    ),
)


def integrity(data: bytes, algorithm: str = "sha384") -> str:
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


class Registry:
    def __init__(self) -> None:
        import httpx

        self.client = httpx.Client(timeout=60, follow_redirects=True)
        self.tarballs: dict[tuple[str, str], dict[str, bytes]] = {}

    def files(self, name: str, version: str) -> dict[str, bytes]:
        """The tarball's regular files (paths without the leading ``package/``), after checking the
        tarball against the registry's ``dist.integrity``."""
        if (name, version) not in self.tarballs:
            meta = self.client.get(f"{REGISTRY}/{name}/{version}").raise_for_status().json()
            tarball = self.client.get(meta["dist"]["tarball"]).raise_for_status().content
            expected = meta["dist"]["integrity"]
            algorithm = expected.split("-", 1)[0]
            if integrity(tarball, algorithm) != expected:
                raise SystemExit(f"{name}@{version}: the tarball does not match the registry's integrity")
            out: dict[str, bytes] = {}
            with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
                for member in archive.getmembers():
                    extracted = archive.extractfile(member) if member.isfile() else None
                    if extracted is not None:
                        out[member.name.split("/", 1)[1]] = extracted.read()
            self.tarballs[name, version] = out
        return self.tarballs[name, version]

    def licence(self, spec: str, package: Package) -> bytes:
        if ":" in spec:
            source, path = spec.split(":", 1)
            name, _, version = source.rpartition("@")
            return self.files(name, version)[path]
        return self.files(package.name, package.version)[spec]


def fetch() -> dict[str, object]:
    registry = Registry()
    manifest: dict[str, object] = {}
    writes: dict[Path, bytes] = {}
    for package in PACKAGES:
        contents = registry.files(package.name, package.version)
        entries = {}
        for path, pinned in package.files.items():
            data = contents[path]
            if integrity(data) != pinned:
                raise SystemExit(f"{package.name}@{package.version}/{path}: {integrity(data)} is not the pin")
            name = Path(path).name
            writes[TARGET / package.directory / name] = data
            entries[name] = pinned
        licences = {"LICENSE": package.licence, **package.extra_licences}
        for file_name, spec in licences.items():
            writes[TARGET / package.directory / file_name] = registry.licence(spec, package)
        manifest[package.name] = {
            "version": package.version,
            "directory": package.directory,
            "files": entries,
            "licences": sorted(licences),
        }
    for target, data in writes.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (TARGET / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (TARGET / "README.md").write_text(readme())
    return manifest


def readme() -> str:
    lines = [
        "# The GraphQL IDE's vendored builds",
        "",
        "Served by the playground (`legetime.schema.playground`) at `/graphql/ide/…`, so that the page loads",
        "nothing from a third party. Written by `python -m tools.vendor_graphiql`, which takes each file",
        "from the npm registry's tarball (checked against the registry's `dist.integrity`) and checks it",
        "against the pinned SHA-384, the `integrity` attribute of strawberry's own GraphiQL page. Do not",
        "edit these files; `manifest.json` is what the page and the tests read.",
        "",
        "| package | version | file | integrity | licence |",
        "|---|---|---|---|---|",
    ]
    for package in PACKAGES:
        licences = ", ".join(["LICENSE (MIT)", *package.extra_licences])
        for path, pinned in package.files.items():
            row = f"| `{package.name}` | {package.version} | `{package.directory}/{Path(path).name}` |"
            lines.append(f"{row} `{pinned}` | {licences} |")
    lines += [
        "",
        "`@graphiql/plugin-explorer` ships no licence file: its `package.json` says MIT, and the LICENSE",
        "here is that of the repository it is built from (graphql/graphiql, as in graphiql's tarball). Its",
        "bundle includes `graphiql-explorer` 0.9.0 (MIT), whose licence is `LICENSE-graphiql-explorer`.",
        "",
    ]
    return "\n".join(lines)


def check() -> list[str]:
    """What differs between the vendored files and the pins (empty: all good)."""
    problems = []
    for package in PACKAGES:
        for path in package.files:
            file = TARGET / package.directory / Path(path).name
            if not file.exists():
                problems.append(f"{file.relative_to(ROOT)} is missing")
            elif integrity(file.read_bytes()) != package.files[path]:
                problems.append(f"{file.relative_to(ROOT)} does not match its pin")
        for licence in ("LICENSE", *package.extra_licences):
            if not (TARGET / package.directory / licence).exists():
                problems.append(f"{package.directory}/{licence} is missing")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.vendor_graphiql", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="verify the vendored files offline; write nothing"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for problem in problems:
            print(problem, file=sys.stderr)
        print(
            "The vendored files match their pins." if not problems else "Run python -m tools.vendor_graphiql."
        )
        return 1 if problems else 0
    manifest = fetch()
    for name, entry in manifest.items():
        print(f"{name}@{entry['version']}: verified and written")  # type: ignore[index]
    return 0


if __name__ == "__main__":
    sys.exit(main())
