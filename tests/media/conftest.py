"""Media tests run on the shared sending app (its dispatcher sends by media id) with a media
fetch loop of their own, fast backoff, against the session's simulator over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from pytake.media.fetch import FetchTuning, MediaFetchLoop
from pytake.worker.runner import Runner

FAST_FETCH = FetchTuning(
    concurrency=8, max_attempts=3, backoff_seconds=0.05, backoff_max_seconds=0.2, poll_seconds=0.05
)


@pytest.fixture(scope="session")
async def fetcher(send_app: FastAPI) -> AsyncIterator[MediaFetchLoop]:
    state = send_app.state
    loop = MediaFetchLoop(
        state.session_factory, state.settings, state.http, state.runtime.media_storage, FAST_FETCH
    )
    runner = Runner([loop], poll_seconds=0.05)
    runner.start()
    yield loop
    await runner.stop()
