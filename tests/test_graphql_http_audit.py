"""The GraphQL-over-HTTP audit of the reference implementation (the npm package ``graphql-http``, the
GraphQL Foundation's own) against a real ``legetime serve``: every MUST and every SHOULD holds."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli import run_cli, serving
from tests.conftest import IN_CI

AUDIT = """
import { auditServer } from 'graphql-http';
const results = await auditServer({ url: process.argv[2] });
const plain = results.map((r) => ({ id: r.id, name: r.name, status: r.status, reason: r.reason }));
console.log(JSON.stringify(plain));
"""


@pytest.fixture(scope="module")
def auditor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        if IN_CI:
            pytest.fail("node and npm are needed for the GraphQL-over-HTTP audit", pytrace=False)
        pytest.skip("node and npm are not installed: the GraphQL-over-HTTP audit needs them")
    folder = tmp_path_factory.mktemp("graphql-http-audit")
    installed = subprocess.run(
        [npm, "install", "--silent", "--no-audit", "--no-fund", "graphql-http@1", "graphql@16"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if installed.returncode != 0:
        if IN_CI:
            pytest.fail(f"npm could not install graphql-http: {installed.stderr[-500:]}", pytrace=False)
        pytest.skip("the npm registry is not reachable")
    (folder / "audit.mjs").write_text(AUDIT)
    return folder


def test_the_graphql_over_http_audit_passes_without_warnings(auditor: Path, tmp_path: Path) -> None:
    env = {"LEGETIME_DATA_DIR": str(tmp_path / "data")}
    assert run_cli("migrate", env=env).returncode == 0
    with serving(tmp_path / "serve.log", env=env) as base:
        audit = subprocess.run(
            ["node", "audit.mjs", f"{base}/graphql"], cwd=auditor, capture_output=True, text=True, timeout=120
        )
    assert audit.returncode == 0, audit.stderr
    results = json.loads(audit.stdout)
    assert len(results) > 50  # the whole audit ran
    problems = [f"{r['id']} {r['name']}: {r['reason']}" for r in results if r["status"] != "ok"]
    assert not problems, "\n".join(problems)
