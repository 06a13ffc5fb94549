"""A test past its deadline fails with every thread's and task's stack printed, and the tests
after it still run on the session's event loop (tests/timeouts.py), checked in a pytest run of
its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HANGING_TESTS = """
import asyncio
import time

import pytest

stuck = asyncio.Event()
cleaned = []


async def waits_for_a_reply_that_never_comes() -> None:
    await stuck.wait()


async def test_hangs() -> None:
    helper = asyncio.create_task(waits_for_a_reply_that_never_comes(), name="the-helper")
    try:
        await asyncio.sleep(3600)
    finally:
        helper.cancel()
        cleaned.append("test_hangs")


async def test_hangs_again_while_cleaning_up() -> None:
    try:
        await asyncio.sleep(3600)
    finally:
        await asyncio.Event().wait()  # a shutdown without a deadline: the second cancel ends it


def test_hangs_outside_the_loop() -> None:
    time.sleep(3600)


@pytest.mark.deadline(10, why="sleeps past the 2 s default on purpose")
async def test_given_longer() -> None:
    await asyncio.sleep(2.5)


async def test_after_them() -> None:
    # The same session loop, with nothing left running of the tests that timed out.
    await asyncio.sleep(0.01)
    assert cleaned == ["test_hangs"]
    assert {t.get_name() for t in asyncio.all_tasks()} & {"the-helper"} == set()
    print("the loop still works")
"""

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
timeout = 2
timeout_method = signal
timeout_grace = 0.5
addopts = -p tests.timeouts -p no:cacheprovider
"""


def test_a_hanging_test_prints_its_stacks_and_the_next_test_still_runs(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "test_hanging.py").write_text(textwrap.dedent(HANGING_TESTS))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pytest", "-rA", "-c", "pytest.ini", "--rootdir", "."]
    run = subprocess.run(
        [*command, "test_hanging.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "3 failed, 2 passed" in out, out
    # The dump names the hang: the threads, then each task down to the await it is stuck in.
    assert "Timeout >2.0s in test_hanging.py::test_hangs" in out, out
    assert "--- thread MainThread" in out
    dump = out.split("Timeout >2.0s in test_hanging.py::test_hangs ", 1)[1]
    assert "--- task 'the-helper'" in dump
    assert "in waits_for_a_reply_that_never_comes\n    await stuck.wait()" in dump
    # A test whose clean-up hangs too is cancelled again, then fails all the same.
    assert "still not finished after a cancel" in out
    for name in ("test_hangs", "test_hangs_again_while_cleaning_up", "test_hangs_outside_the_loop"):
        assert f"FAILED test_hanging.py::{name} - Timeout >2.0s" in out, out
    assert "PASSED test_hanging.py::test_given_longer" in out, out
    assert "PASSED test_hanging.py::test_after_them" in out, out


def test_a_longer_deadline_must_say_why(tmp_path: Path) -> None:
    """pytest-timeout's own marker is refused: `deadline(seconds, why=...)` is the one way."""
    (tmp_path / "pytest.ini").write_text(INI)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pytest", "-c", "pytest.ini", "--rootdir", "."]
    for name, marker in (
        ("test_raw.py", "@pytest.mark.timeout(600)"),
        ("test_silent.py", "@pytest.mark.deadline(600)"),
    ):
        (tmp_path / name).write_text(
            f"import pytest\n\n{marker}\ndef test_slow() -> None:\n    pass\n"
        )
        run = subprocess.run(
            [*command, name], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60
        )
        out = run.stdout + run.stderr
        assert run.returncode == 4, out  # a usage error: nothing ran
        assert f"{name}::test_slow: use @pytest.mark.deadline(seconds, why=...)" in out, out
