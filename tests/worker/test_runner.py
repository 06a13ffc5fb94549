"""Stopping the runner: never waits for ever, whatever its loops are doing."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pytake.worker import runner as runner_module
from pytake.worker.runner import Runner


class Idle:
    """A loop with nothing to do: every run returns at once and asks to sleep."""

    name = "idle"

    def __init__(self) -> None:
        self.runs = 0

    async def run_once(self) -> float | None:
        self.runs += 1
        return None


async def sleeping(loop: Idle) -> None:
    while loop.runs == 0:  # noqa: ASYNC110 - the loop under test has no event to offer
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.005)  # now in its sleep until woken


@pytest.mark.parametrize("turns_between", [0, 1, 2])
async def test_a_loop_woken_as_the_runner_stops_still_stops(turns_between: int) -> None:
    # A wake-up (every Redis message brings some) landing in the same turn of the event loop
    # as the stop: with asyncio.wait_for on Python 3.11 the loop swallowed its cancel and the
    # stop awaited it for ever.
    for _ in range(20):
        loop = Idle()
        runner = Runner([loop], poll_seconds=30)
        runner.start()
        await sleeping(loop)
        runner.wake("idle")
        for _ in range(turns_between):
            await asyncio.sleep(0)
        async with asyncio.timeout(3):
            await runner.stop()
        assert all(task.done() for task in asyncio.all_tasks() if task.get_name() == "loop-idle")


class Stubborn:
    """A loop whose batch ignores cancellation until released (a clean-up that never ends)."""

    name = "stubborn"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def run_once(self) -> float | None:
        self.started.set()
        while not self.release.is_set():
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                continue
        raise asyncio.CancelledError


async def test_a_loop_that_does_not_end_is_reported_and_left_behind(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runner_module, "CANCEL_DEADLINE_SECONDS", 0.2)
    loop = Stubborn()
    runner = Runner([loop], poll_seconds=30)
    runner.start()
    await loop.started.wait()
    with caplog.at_level(logging.ERROR, logger="pytake.worker"):
        async with asyncio.timeout(3):
            await runner.stop()
    (record,) = [r for r in caplog.records if "did not stop" in r.getMessage()]
    assert "loop-stubborn" in record.getMessage() and "run_once" in record.getMessage()
    loop.release.set()
    (left,) = [t for t in asyncio.all_tasks() if t.get_name() == "loop-stubborn"]
    await asyncio.gather(left, return_exceptions=True)


class Batch:
    """A loop holding a batch in flight until told to finish; claims nothing once stopping."""

    name = "batch"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.claiming = True
        self.in_flight = asyncio.Event()
        self.finished = 0

    def stop_claiming(self) -> None:
        self.claiming = False

    async def run_once(self) -> float | None:
        if not self.claiming:
            return None
        self.in_flight.set()
        await asyncio.sleep(self.seconds)
        self.finished += 1
        return 0


async def test_a_graceful_stop_lets_the_batch_in_flight_finish_and_claims_no_more() -> None:
    loop = Batch(seconds=0.3)
    runner = Runner([loop], poll_seconds=30)
    runner.start()
    await loop.in_flight.wait()
    async with asyncio.timeout(3):
        await runner.stop(grace_seconds=2)
    assert loop.finished == 1  # the batch in flight ended, and none was started after it


async def test_the_grace_period_bounds_the_wait_then_the_batch_is_cancelled() -> None:
    loop = Batch(seconds=60)
    runner = Runner([loop], poll_seconds=30)
    runner.start()
    await loop.in_flight.wait()
    started = asyncio.get_running_loop().time()
    await runner.stop(grace_seconds=0.3)
    assert asyncio.get_running_loop().time() - started < 2
    assert loop.finished == 0


async def test_hurry_cuts_the_grace_short() -> None:
    # A second SIGTERM: what is in flight is cancelled at once instead of at the grace's end.
    loop = Batch(seconds=60)
    runner = Runner([loop], poll_seconds=30)
    runner.start()
    await loop.in_flight.wait()
    clock = asyncio.get_running_loop()
    started = clock.time()
    stopping = asyncio.create_task(runner.stop(grace_seconds=30))
    await asyncio.sleep(0.1)
    assert not stopping.done()  # waiting out the grace
    runner.hurry()
    await asyncio.wait_for(stopping, 5)
    assert clock.time() - started < 5 and loop.finished == 0
