"""run_uncancelled: a short transaction a cancel waits for instead of cutting in half."""

from __future__ import annotations

import asyncio

import pytest

from pytake.kit.tasks import run_uncancelled


async def test_a_cancel_waits_for_the_work_then_hands_its_result_back() -> None:
    started, finish = asyncio.Event(), asyncio.Event()
    given_back: list[list[int]] = []

    async def claim() -> list[int]:
        started.set()
        await finish.wait()
        return [1, 2, 3]

    async def give_back(rows: list[int]) -> None:
        given_back.append(rows)

    caller = asyncio.create_task(run_uncancelled(claim(), give_back))
    await started.wait()
    caller.cancel()
    await asyncio.sleep(0.05)
    assert not caller.done()  # the claim is not cut short
    finish.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert given_back == [[1, 2, 3]]


async def test_without_a_cancel_the_result_is_returned() -> None:
    async def claim() -> list[int]:
        return [7]

    async def give_back(rows: list[int]) -> None:
        raise AssertionError("nothing was cancelled")

    assert await run_uncancelled(claim(), give_back) == [7]
