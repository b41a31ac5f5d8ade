"""The distribution as a user gets it: the wheel, installed in a fresh virtualenv next to PyPI's
``schema`` package, run from a directory outside the repository.

Everything of Legetime lives under the one import namespace ``legetime`` (docs/decisions/
0005-one-import-namespace.md); before, its top-level ``schema`` package shadowed PyPI's. The wheel is built
from a clean copy of the source tree (setuptools builds inside the source directory, and its build/
directory would keep modules deleted since). The fresh virtualenv gets the wheel's dependencies from the
package index like any install: about 20 s even with pip's cache cold, so no shortcut (such as installing
from local wheels) is needed. Without the package index the test skips, unless CI=true, where it fails.
The whole module takes about 30 s; ``pytest -m "not packaging"`` leaves it out of a quick local run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import legetime
from tests.cli import serving
from tests.conftest import _unavailable

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("core", "plugins", "schema")  # the folders legetime/ links
PACKAGE_DATA = (
    "legetime/core/platform/db/migrations/env.py",
    "legetime/core/platform/db/migrations/script.py.mako",
    "legetime/core/consultation/questionnaires/general.v1.json",
    "legetime/schema/schema.graphql",
    "legetime/schema/static/graphiql/manifest.json",  # the playground's vendored IDE, with its licences
    "legetime/schema/static/graphiql/graphiql-3.8.3/graphiql.min.js",
    "legetime/schema/static/graphiql/graphiql-3.8.3/LICENSE",
    "legetime/schema/static/playground/playground.js",
)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    elsewhere: Path
    """A working directory outside the repository: nothing can be imported from the source tree."""

    def bin(self, name: str) -> Path:
        return self.venv / ("Scripts" if os.name == "nt" else "bin") / name

    def env(self, **extra: str) -> dict[str, str]:
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("LEGETIME_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
        }
        return {**clean, "COLUMNS": "250", **extra}

    def run(self, *command: str | Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(part) for part in command],
            cwd=self.elsewhere,
            env=self.env(**extra_env),
            capture_output=True,
            text=True,
            timeout=120,
        )


def _pip(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _tail(result: subprocess.CompletedProcess[str]) -> str:
    return "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    tmp = tmp_path_factory.mktemp("packaging")
    probe = _pip(
        "download", "--no-deps", "--dest", tmp / "probe", "--timeout", "15", "--retries", "1", "schema"
    )
    if probe.returncode != 0:
        _unavailable("The package index", (_tail(probe) or "pip failed").splitlines()[-1])

    # A clean copy, as a fresh clone has it: relative symlinks kept, no build/, caches or virtualenvs.
    source = tmp / "source"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(".*", "__pycache__", "build", "dist", "*.egg-info", "var"),
    )
    built = _pip("wheel", "--no-deps", "--wheel-dir", tmp / "dist", source)
    assert built.returncode == 0, _tail(built)
    (wheel,) = (tmp / "dist").glob("legetime-*.whl")

    # Without pip of its own (ensurepip takes seconds): the test's pip installs into it (--python).
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    result = Installed(wheel=wheel, venv=venv, elsewhere=tmp / "elsewhere")
    result.elsewhere.mkdir()
    install = _pip("--python", result.bin("python"), "install", "--quiet", wheel, "schema")
    assert install.returncode == 0, _tail(install)
    yield result


def test_the_wheel_holds_only_the_legetime_namespace_with_its_data(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"legetime", f"{installed.wheel.name.split('-py3')[0]}.dist-info"}, top
    for data in PACKAGE_DATA:
        assert data in names, f"{data} is missing from the wheel (package-data in pyproject.toml)"
    migrations = sorted(p.name for p in (ROOT / "core/platform/db/migrations/versions").glob("*.py"))
    assert migrations, "no migrations found in the source tree"
    for migration in migrations:
        assert f"legetime/core/platform/db/migrations/versions/{migration}" in names
    # Every module of the namespace, its own and those of the linked folders, is in the wheel (none left
    # out for want of an __init__.py, say).
    modules = [
        Path(folder, file).relative_to(ROOT).as_posix()
        for folder, _, files in os.walk(ROOT / "legetime", followlinks=True)
        for file in files
        if file.endswith(".py")
    ]
    assert {module.split("/")[1] for module in modules} >= {*PARTS, "cli.py", "sdk.py"}
    for module in modules:
        assert module in names, f"{module} is missing from the wheel"


def test_the_command_runs_from_the_installed_wheel(installed: Installed, tmp_path: Path) -> None:
    helped = installed.run(installed.bin("legetime"), "--help")
    assert helped.returncode == 0, helped.stderr
    for command in ("serve", "migrate", "schema", "providers"):
        assert command in helped.stdout

    data = tmp_path / "data"
    migrated = installed.run(installed.bin("legetime"), "migrate", LEGETIME_DATA_DIR=str(data))
    assert migrated.returncode == 0, migrated.stderr
    assert "Database migrated to head and every installed plugin's tables." in migrated.stdout
    assert (data / "legetime.db").is_file()

    sdl = installed.run(installed.bin("legetime"), "schema", LEGETIME_DATA_DIR=str(data))
    assert sdl.returncode == 0, sdl.stderr
    packaged = zipfile.ZipFile(installed.wheel).read("legetime/schema/schema.graphql").decode()
    assert sdl.stdout == packaged


def test_the_installed_app_answers_graphql(installed: Installed, tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert installed.run(installed.bin("legetime"), "migrate", LEGETIME_DATA_DIR=data).returncode == 0
    with serving(
        tmp_path / "serve.log",
        command=[str(installed.bin("legetime"))],
        env=installed.env(LEGETIME_DATA_DIR=data),
        cwd=installed.elsewhere,
    ) as base:
        assert httpx.get(f"{base}/readyz", timeout=5).json()["database"] == "ok"
        answer = httpx.post(
            f"{base}/graphql",
            json={"query": "{ platform { version } questionnaire { key version title } }"},
            timeout=30,
        ).json()
        ide = httpx.get(f"{base}/graphql/ide/graphiql/graphiql-3.8.3/graphiql.min.js", timeout=5)
    assert ide.status_code == 200 and "javascript" in ide.headers["content-type"]  # served from the wheel
    assert "errors" not in answer, answer
    assert answer["data"]["platform"]["version"] == legetime.__version__
    questionnaire = answer["data"]["questionnaire"]  # read from the wheel's questionnaire JSON
    assert questionnaire["key"] == "general" and questionnaire["version"] >= 1 and questionnaire["title"]


CHECK_IMPORTS = """
import importlib.util, json
from schema import Schema, SchemaError
import legetime.schema, legetime.schema.app, schema

assert Schema(int).validate(1) == 1
try:
    Schema(int).validate("one")
except SchemaError:
    pass
else:
    raise AssertionError("PyPI's schema accepted a string as an int")
print(json.dumps({
    "schema": schema.__file__,
    "legetime.schema": legetime.schema.__file__,
    "create_app": hasattr(legetime.schema.app, "create_app"),
    "top_level": {name: importlib.util.find_spec(name) is not None for name in ("core", "plugins")},
}))
"""


def test_pypis_schema_works_next_to_legetime(installed: Installed) -> None:
    checked = installed.run(installed.bin("python"), "-c", CHECK_IMPORTS)
    assert checked.returncode == 0, checked.stderr
    found = json.loads(checked.stdout)
    site = Path(found["legetime.schema"]).parents[2]
    assert installed.venv in site.parents, f"legetime is not imported from the venv: {site}"
    assert Path(found["legetime.schema"]) == site / "legetime" / "schema" / "__init__.py"
    assert found["create_app"]
    assert Path(found["schema"]).is_relative_to(site) and "legetime" not in Path(found["schema"]).parts
    assert found["top_level"] == {"core": False, "plugins": False}, "the wheel leaks top-level packages"
