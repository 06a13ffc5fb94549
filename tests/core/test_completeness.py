"""A run in which collected tests never ran fails (tests/completeness.py), checked in a pytest
run of its own whose loop runs only the first of three tests — as pytest-xdist's `loadfile`
scheduler did with the fuzz test's items."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    first = session.items[0]
    first.config.hook.pytest_runtest_protocol(item=first, nextitem=None)
    return True
"""

TESTS = """
def test_one():
    pass


def test_two():
    pass


def test_three():
    pass
"""


@pytest.mark.parametrize("loses_tests", [True, False], ids=["two-never-run", "all-run"])
def test_a_run_that_loses_collected_tests_fails(tmp_path: Path, loses_tests: bool) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p tests.completeness\n")
    if loses_tests:
        (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_three.py").write_text(TESTS)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", "pytest.ini",
         "--rootdir", "."],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    out = run.stdout + run.stderr
    if loses_tests:
        assert run.returncode == 1, out
        assert "2 of 3 collected tests never ran" in out, out
    else:
        assert run.returncode == 0 and "3 passed" in out, out
