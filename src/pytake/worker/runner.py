"""A small runner of background loops: each claims due rows in batches and sleeps until woken.

A loop is woken by an in-process asyncio.Event (set from the bus: a commit here or, through Redis,
in another process) with a short poll as the fallback, so a missed wake-up only costs latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

log = logging.getLogger("pytake.worker")


class BackgroundLoop(Protocol):
    name: str

    async def run_once(self) -> float | None:
        """Do one batch; return seconds until more work is due (0: at once, None: unknown)."""
        ...


class Runner:
    """Runs loops until stopped; `wake(name)` cuts a loop's sleep short."""

    def __init__(self, loops: list[BackgroundLoop], poll_seconds: float) -> None:
        self.loops = loops
        self.poll_seconds = poll_seconds
        self._wakeups = {loop.name: asyncio.Event() for loop in loops}
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self, name: str) -> None:
        wakeup = self._wakeups.get(name)
        if wakeup is not None:
            wakeup.set()

    def start(self) -> None:
        for loop in self.loops:
            self._tasks.append(asyncio.create_task(self._run(loop), name=f"loop-{loop.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _run(self, loop: BackgroundLoop) -> None:
        wakeup = self._wakeups[loop.name]
        failures = 0
        while True:
            wakeup.clear()
            try:
                due_in = await loop.run_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                # Back off while e.g. the database is down, instead of logging every poll.
                pause = min(60.0, self.poll_seconds * 2 ** (failures - 1))
                if failures == 1 or failures % 10 == 0:
                    log.exception("background loop %s failed (%d in a row)", loop.name, failures)
                await asyncio.sleep(pause)
                continue
            if due_in is not None and due_in <= 0:
                continue
            timeout = self.poll_seconds if due_in is None else min(due_in, self.poll_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout)
