"""`pytake worker` can run below `serve`'s priority (`PYTAKE_WORKER_NICE`): every thread of
the real process has the niceness, so the background work yields the CPU on a shared host."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pytake.config import Settings
from tests.events.helpers import running_app
from tests.message.sending.support import eventually
from tests.worker.test_graceful_stop import pytake_worker

pytestmark = pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX niceness")


def _thread_nices(pid: int) -> set[int]:
    """The niceness of each thread of `pid` (Linux: field 19 of /proc/<pid>/task/<tid>/stat;
    the process's own when there is no /proc)."""
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.is_dir():
        return {os.getpriority(os.PRIO_PROCESS, pid)}
    nices = set()
    for task in tasks.iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        nices.add(int(fields[16]))
    return nices


@pytest.mark.parametrize("expected", [10, 0])
async def test_the_worker_runs_at_the_configured_niceness(
    expected: int,
    make_settings: Callable[..., Settings],
    fresh_database_url: str,
    tmp_path: Path,
) -> None:
    settings = make_settings(database_url=fresh_database_url)
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    want = max(ours, expected)  # a niceness it was started with is never undone
    async with (
        running_app(settings),  # migrates the database the worker's loops poll
        pytake_worker(
            settings, tmp_path / "worker.log", PYTAKE_WORKER_NICE=str(expected)
        ) as worker,
    ):

        async def started() -> bool:
            await worker.alive()
            return "background loops started" in worker.log.read_text(errors="replace")

        await eventually(started, timeout=60, every=0.1)
        pid = worker.proc.pid
        assert os.getpriority(os.PRIO_PROCESS, pid) == want, worker.output()
        assert _thread_nices(pid) == {want}, worker.output()
        code, _ = await worker.terminate(within=30)
    assert code == 0, worker.output()
