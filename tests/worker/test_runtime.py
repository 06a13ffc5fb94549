"""`pytake worker` runs its loops on the event loop the settings choose (uvloop by default)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from pytake.config import Settings
from pytake.worker import runtime


@pytest.mark.parametrize(("choice", "expected"), [("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_the_worker_runs_on_the_chosen_event_loop(
    choice: str,
    expected: str,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("uvloop")
    seen: list[str] = []

    async def fake_worker(settings: Settings) -> None:
        # Stands in for the loops: only which loop runs them matters here.
        seen.append(type(asyncio.get_running_loop()).__module__.split(".")[0])

    monkeypatch.setattr(runtime, "run_worker", fake_worker)
    runtime.run_worker_process(make_settings(worker_event_loop=choice))
    assert seen == [expected]
