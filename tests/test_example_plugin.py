"""The contract kit as a third party uses it: ``examples/legetime-example-sms`` is installed like any plugin
package, found through its entry point, and its own tests run the kit's SMS suite against its provider.

The example is built from a copy (setuptools would leave build/ and egg-info in the repository) and its
tests run in a subprocess from a directory outside the repository, so only the installed package can be
imported, and without pytest-asyncio (``-p no:asyncio``): the kit needs no async plugin.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from legetime.testing import SmsContract
from tests.cli import ROOT, run_cli
from tests.conftest import pip_install

EXAMPLE = ROOT / "examples" / "legetime-example-sms"
CONTRACT_CLASS = "TestExampleGatewaySms"


@dataclass(frozen=True)
class Example:
    source: Path
    """A copy of the example's source tree, tests included."""
    installed: Path
    """Where pip installed the package (with its entry point): the only way to import it."""


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Example:
    """The example installed into a directory of its own, as the fixture packages are (``pip_install``),
    from a copy: building in place would leave build/ in the example."""
    base = tmp_path_factory.mktemp("example")
    source = base / "source"
    shutil.copytree(
        EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache")
    )
    installed = base / "installed"
    pip_install(source, installed)
    return Example(source, installed)


def run_pytest(*args: str, cwd: Path, pythonpath: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGETIME_") and k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(path) for path in pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_example_passes_the_kit(example: Example, tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    result = run_pytest(
        "-p",
        "no:asyncio",
        f"--junitxml={report}",
        str(example.source / "tests"),
        cwd=tmp_path,
        pythonpath=(example.installed,),
    )
    assert result.returncode == 0, result.stdout + result.stderr

    cases = ET.parse(report).getroot().iter("testcase")
    outcomes = {
        (case.get("classname", ""), case.get("name", "")): [
            child.tag for child in case if child.tag in ("failure", "error", "skipped")
        ]
        for case in cases
    }
    assert all(not problems for problems in outcomes.values()), outcomes
    contract = [name for classname, name in outcomes if classname.endswith(f".{CONTRACT_CLASS}")]
    kit_tests = {name for name in dir(SmsContract) if name.startswith("test_")}
    assert {name.partition("[")[0] for name in contract} == kit_tests
    assert len(contract) > len(kit_tests)  # the parametrised ones ran once per case
    assert ("tests.test_graphql", "test_the_contributed_field_is_served") in outcomes
    assert re.search(rf"\b{len(outcomes)} passed\b", result.stdout), result.stdout


def test_legetime_plugins_finds_the_example_through_its_entry_point(example: Example) -> None:
    result = run_cli("plugins", pythonpath=[example.installed])
    assert result.returncode == 0, result.stderr
    plugin = next(line for line in result.stdout.splitlines() if " example-sms " in line)
    assert "1.0.0" in plugin and "entry point" in plugin
    assert "register_graphql_queries" in plugin and "register_providers" in plugin
    provider = next(line for line in result.stdout.splitlines() if " example-gateway " in line)
    assert " sms " in provider and "example-sms" in provider and "disabled" in provider


def test_the_kit_is_inert_in_a_session_that_does_not_use_it(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text(
        "import sys\n\n"
        "def test_plain():\n"
        "    assert 'legetime.testing.plugin' in sys.modules  # loaded through the pytest11 entry point\n"
        "    assert not [name for name in sys.modules if name.startswith('legetime.')\n"
        "                and name not in ('legetime.testing', 'legetime.testing.plugin')]\n"
    )
    result = run_pytest("-q", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
