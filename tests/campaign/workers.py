"""Campaign workers for tests, importable without the test fixtures (a worker subprocess
imports this module alone)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from pytake.campaign.dispatch import CampaignLoop
from pytake.config import Settings
from pytake.db import create_engine, create_session_factory
from pytake.message.sending.dispatcher import SendingTuning, build_dispatcher
from pytake.worker.runtime import provider_session

# Short clocks so runs settle in tests within a second or two.
CAMPAIGN_TEST_SETTINGS: dict[str, Any] = {
    "campaign_poll_seconds": 0.05,
    "campaign_pause_after_policy_errors": 5,
    "campaign_settle_after_seconds": 2.0,
    "campaign_settle_every_seconds": 0.1,
    "campaign_handoff_ahead_seconds": 0.5,
    "campaign_throttle_recover_seconds": 1.0,
}

# A worker's sending: short polls and a lease of seconds, so a dead worker's claims are
# reconciled within a test.
WORKER_TUNING = SendingTuning(
    poll_seconds=0.05,
    reconcile_every_seconds=0.3,
    backoff_base_seconds=0.5,
    backoff_max_seconds=4.0,
    lease_seconds=2.0,
    ambiguous_recheck_seconds=1.0,
    request_wait_seconds=2.0,
)


async def run_loop(loop: CampaignLoop) -> None:
    """A campaign loop as the worker runner runs it, with a short poll."""
    while True:
        try:
            due = await loop.run_once()
        except Exception:  # as the runner does: log, and go on (a test then fails on state)
            logging.getLogger(__name__).exception("campaign loop pass failed")
            due = 0.05
        await asyncio.sleep(min(due if due is not None else 0.05, 0.05))


@contextlib.asynccontextmanager
async def worker(settings: Settings, tuning: SendingTuning) -> AsyncIterator[CampaignLoop]:
    """A `pytake worker` in this process: its own engine, the campaign loop and the message
    dispatcher; leaving the block stops it the way a SIGTERM does (tasks cancelled)."""
    engine = create_engine(settings.database_url)
    factory = create_session_factory(engine)
    http = provider_session(tuning.concurrency)
    dispatcher = build_dispatcher(factory, settings, http, tuning)
    loop = CampaignLoop(factory, settings)
    tasks = [asyncio.create_task(dispatcher.run_forever()), asyncio.create_task(run_loop(loop))]
    try:
        yield loop
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await http.close()
        await engine.dispose()
