"""Campaigns across worker processes (each with its own engine, on a database of its own):
a schedule fires once with two workers, 130429 slows a campaign that still completes, and a
worker stopped mid-campaign and replaced sends each recipient exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from pytake.config import Settings
from pytake.models import OutboxEvent
from pytake.whatsapp.simulator import Simulator, SimulatorSettings
from tests.campaign.support import Campaigns
from tests.campaign.workers import CAMPAIGN_TEST_SETTINGS, WORKER_TUNING, worker
from tests.channel.support import create_official
from tests.conftest import client_for, register_org
from tests.events.helpers import running_app, serving
from tests.message.sending.support import Shop, eventually

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def own_sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorSettings.for_tests()) as simulator:
        yield simulator


@dataclass
class Setup:
    camps: Campaigns
    settings: Settings
    app: FastAPI


@pytest.fixture
async def setup(
    own_sim: Simulator, make_settings: Callable[..., Settings], fresh_database_url: str
) -> AsyncIterator[Setup]:
    settings = make_settings(
        database_url=fresh_database_url,
        meta_graph_url=own_sim.graph_url,
        run_background_loops=False,
        events_channel=f"pytake:events:{uuid.uuid4().hex}",
        **CAMPAIGN_TEST_SETTINGS,
    )
    async with contextlib.AsyncExitStack() as stack:
        app = await stack.enter_async_context(running_app(settings))
        url = await stack.enter_async_context(serving(app))
        http = await stack.enter_async_context(client_for(app))
        org = await register_org(http, "Workers")
        number = await create_official(http, org, own_sim, url, is_default=True)
        number.sim_number.mps = 10**6
        yield Setup(Campaigns(http, Shop(org, number, own_sim), app), settings, app)


async def _campaign(
    camps: Campaigns, n: int, schedule_in: float | None = None, **extra: Any
) -> tuple[dict[str, Any], set[str]]:
    numbers = {(await camps.contact(f"C{i}", tags=["all"]))["whatsapp_id"] for i in range(n)}
    template = await camps.template(body="Oi {{1}}")
    if schedule_in is not None:  # from now: creating the audience may take long under load
        extra["scheduled_at"] = (datetime.now(UTC) + timedelta(seconds=schedule_in)).isoformat()
    created = await camps.create(
        {
            "name": "Workers",
            "target_type": "tags",
            "target_filters": {"tags": ["all"]},
            "template_id": str(template.id),
            "message_content": {"variables": {"1": "{{contact.name}}"}},
            **extra,
        }
    )
    return created, {n.lstrip("+") for n in numbers}


def _sent(camps: Campaigns) -> Counter[str]:
    return Counter(m.to for m in camps.shop.sim.state.sent)


async def test_a_schedule_fires_once_with_two_workers(setup: Setup) -> None:
    camps = setup.camps
    created, numbers = await _campaign(camps, 6, schedule_in=3)
    assert created["status"] == "scheduled"
    at = datetime.fromisoformat(created["scheduled_at"])
    async with worker(setup.settings, WORKER_TUNING), worker(setup.settings, WORKER_TUNING):
        done = await camps.wait_status(created["id"], "completed", within=60)
    assert datetime.fromisoformat(done["started_at"]) >= at
    assert done["sent_count"] == 6
    assert _sent(camps) == Counter({n: 1 for n in numbers})
    async with camps.factory() as session:
        started = await session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.type == "campaign.started")
        )
    assert started == 1


async def test_130429_slows_the_number_down_and_the_campaign_completes(setup: Setup) -> None:
    camps = setup.camps
    camps.shop.number.sim_number.mps = 8  # the number's real throughput, below the ask
    created, numbers = await _campaign(camps, 40, send_rate_limit=40)
    rates: list[float] = []
    async with worker(setup.settings, WORKER_TUNING):
        await camps.act(created["id"], "start")

        async def completed() -> dict[str, Any] | None:
            got = await camps.get(created["id"])
            if got["current_rate"] is not None:
                rates.append(got["current_rate"])
            return got if got["status"] == "completed" else None

        done = await eventually(completed, timeout=60, every=0.2)
    assert done["sent_count"] == 40 and done["failed_count"] == 0
    assert min(rates) < 40  # slowed down by itself, below the campaign's own limit
    assert _sent(camps) == Counter({n: 1 for n in numbers})


async def test_a_worker_killed_mid_campaign_and_restarted_sends_each_recipient_once(
    setup: Setup,
) -> None:
    camps, sim = setup.camps, setup.camps.shop.sim
    sim.set_faults(latency_ms=150)  # sends are in flight when the worker dies
    created, numbers = await _campaign(camps, 30, send_rate_limit=15)
    settings = setup.settings
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.campaign.worker_process",
        settings.database_url,
        settings.meta_graph_url,
        settings.secret_key,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
    )
    try:
        assert proc.stdout is not None
        assert (await proc.stdout.readline()).strip() == b"ready"
        await camps.act(created["id"], "start")

        async def some_sent() -> bool:
            return len(sim.state.sent) >= 8

        await eventually(some_sent, timeout=30, every=0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert len(sim.state.sent) < 30
    async with worker(settings, WORKER_TUNING):  # the restarted worker
        done = await camps.wait_status(created["id"], "completed", within=40)
    assert done["sent_count"] == 30
    assert _sent(camps) == Counter({n: 1 for n in numbers})
