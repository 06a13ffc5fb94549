"""A small runner of background loops: each claims due rows in batches and sleeps until woken.

A loop is woken by an in-process asyncio.Event (set from the bus: a commit here or, through Redis,
in another process) with a short poll as the fallback, so a missed wake-up only costs latency.

Stopping never waits forever. A loop that can stop claiming (`stop_claiming()`) is given a grace
period to finish what it holds (requests in flight, their outcomes recorded); what is still
running after it is cancelled, and a loop that does not end even then is logged and left behind
rather than holding the process's shutdown hostage (its claims wait out their lease).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from pytake.kit.tasks import cancel_and_wait, sleep_until_woken

log = logging.getLogger(__name__)

# After its cancel, how long a loop has to end before it is reported and left behind.
CANCEL_DEADLINE_SECONDS = 5.0


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
        self._stopping = False
        self._hurry = asyncio.Event()

    def wake(self, name: str) -> None:
        wakeup = self._wakeups.get(name)
        if wakeup is not None:
            wakeup.set()

    def start(self) -> None:
        for loop in self.loops:
            self._tasks.append(asyncio.create_task(self._run(loop), name=f"loop-{loop.name}"))

    async def stop(self, grace_seconds: float = 0.0) -> None:
        """Stop every loop: claim nothing more, let each finish its batch for up to
        `grace_seconds`, then cancel what is left (bounded too, see the module docstring)."""
        self._stopping = True
        for loop in self.loops:
            stop_claiming = getattr(loop, "stop_claiming", None)
            if stop_claiming is not None:
                stop_claiming()
        for wakeup in self._wakeups.values():
            wakeup.set()  # a sleeping loop sees the flag at once
        tasks, self._tasks = self._tasks, []
        left = await self._wait_out_grace(tasks, grace_seconds)
        if left and grace_seconds > 0:
            log.warning(
                "stopping: %s still busy after the %.1f s grace; cancelled, what they hold is "
                "left to its lease",
                ", ".join(sorted(task.get_name() for task in left)),
                grace_seconds,
            )
        await cancel_and_wait(tasks, CANCEL_DEADLINE_SECONDS, log)

    def hurry(self) -> None:
        """Cut a stop's grace short (a second SIGTERM or Ctrl-C): cancel what is in flight."""
        self._hurry.set()

    async def _wait_out_grace(
        self, tasks: list[asyncio.Task[None]], grace_seconds: float
    ) -> set[asyncio.Task[None]]:
        """Wait for the loops to end by themselves, for at most `grace_seconds` (or until
        `hurry()`); returns those still running."""
        pending = {task for task in tasks if not task.done()}
        clock = asyncio.get_running_loop()
        deadline = clock.time() + grace_seconds
        while pending and not self._hurry.is_set():
            remaining = deadline - clock.time()
            if remaining <= 0:
                break
            hurried = asyncio.ensure_future(self._hurry.wait())
            try:
                done, _ = await asyncio.wait(
                    {*pending, hurried}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                hurried.cancel()
            pending -= done
        return pending

    async def _run(self, loop: BackgroundLoop) -> None:
        wakeup = self._wakeups[loop.name]
        failures = 0
        while not self._stopping:
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
            await sleep_until_woken(wakeup, timeout)
