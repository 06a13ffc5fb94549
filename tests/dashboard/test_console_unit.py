"""The console's own unit tests (Vitest), run by the README's test command."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


@pytest.mark.deadline(
    180, why="starts Node.js and Vitest, which transforms and runs every unit test"
)
def test_vitest_suite_passes() -> None:
    if shutil.which("npx") is None or not (WEB / "node_modules" / ".bin" / "vitest").exists():
        pytest.skip("the console's packages are not installed (python3 dev.py test installs them)")
    result = subprocess.run(
        ["npx", "--no-install", "vitest", "run", "--reporter=dot"],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
