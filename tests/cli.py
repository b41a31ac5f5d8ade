"""Run the ``legetime`` command in a subprocess, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, env: dict[str, str] | None = None, pythonpath: list[Path] = ()
) -> subprocess.CompletedProcess[str]:  # type: ignore[assignment]
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith("LEGETIME_") or k.startswith("LEGETIME_TEST_")
    }
    full_env.update(env or {})
    full_env["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in pythonpath), str(ROOT)])
    full_env["COLUMNS"] = "250"  # rich tables: don't wrap names
    return subprocess.run(
        [sys.executable, "-m", "legetime.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        cwd=ROOT,
    )
