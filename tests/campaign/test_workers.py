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
from sqlalchemy import func, select, update

from pytake.campaign.dispatch import CampaignLoop
from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.models import Channel, Message, OutboxEvent
from pytake.models.base import utcnow
from pytake.models.campaign import Campaign, CampaignRecipient
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
    async with worker(setup.settings, WORKER_TUNING):
        await camps.act(created["id"], "start")

        async def completed() -> dict[str, Any] | None:
            got = await camps.get(created["id"])
            return got if got["status"] == "completed" else None

        done = await eventually(completed, timeout=60, every=0.2)
    assert done["sent_count"] == 40 and done["failed_count"] == 0
    # Slowed down by itself: the 130429s halved the number's pace (a sampled `current_rate`
    # can miss the slow spell on a busy machine, where it recovers between two samples).
    async with camps.factory() as session:
        throttled = await session.scalar(
            select(Channel.throttled_at).where(Channel.id == uuid.UUID(camps.shop.number.id))
        )
        reported = await session.scalar(
            select(Campaign.throttled_at).where(Campaign.id == uuid.UUID(created["id"]))
        )
    assert throttled is not None and reported is not None
    assert _sent(camps) == Counter({n: 1 for n in numbers})


async def test_a_130429_slows_the_number_for_every_campaign_on_it(setup: Setup) -> None:
    """130429 is Meta's limit on the number: the campaign whose message got it does not hand
    its share to the others (as a per-campaign throttle did: its halved ask still filled an
    equal share, and the number kept its pace); every campaign on the number slows down."""
    camps = setup.camps
    resp = await camps.http.patch(
        f"/v1/whatsapp-configs/{camps.shop.number.id}",
        json={"throughput": 8},
        headers=camps.headers,
    )
    assert resp.status_code == 200, resp.text
    template = await camps.template(body="Oi {{1}}")
    created = []
    for tag in ("first", "second"):
        for i in range(10):
            await camps.contact(f"{tag} {i}", tags=[tag])
        body = {
            "name": tag,
            "target_type": "tags",
            "target_filters": {"tags": [tag]},
            "template_id": str(template.id),
            "message_content": {"variables": {"1": "{{contact.name}}"}},
        }
        created.append((await camps.create(body))["id"])
        await camps.act(created[-1], "start")
    # One campaign loop and no message dispatcher: handed-off messages stay queued.
    settings = setup.settings.model_copy(
        update={"campaign_settle_every_seconds": 0.0, "campaign_throttle_recover_seconds": 3600}
    )
    loop = CampaignLoop(setup.app.state.session_factory, settings)
    await loop.run_once()

    async def paces() -> list[float]:
        return [(await camps.get(c))["current_rate"] for c in created]

    assert await paces() == [4.0, 4.0]  # an equal share each of the number's 8/s
    async with unit_of_work(setup.app.state.session_factory) as session:
        # What the send pipeline writes for a 130429: back to the queue, the error kept.
        await session.execute(
            update(Message)
            .where(
                Message.id
                == select(CampaignRecipient.message_id)
                .where(
                    CampaignRecipient.campaign_id == uuid.UUID(created[0]),
                    CampaignRecipient.message_id.is_not(None),
                )
                .limit(1)
                .scalar_subquery()
            )
            .values(error_code=130429, updated_at=utcnow())
        )
    await loop.run_once()
    assert await paces() == [2.0, 2.0]  # the number at half: 4/s for both together
    await loop.run_once()
    assert await paces() == [2.0, 2.0]  # that answer is counted once
    recovering = CampaignLoop(
        setup.app.state.session_factory,
        settings.model_copy(update={"campaign_throttle_recover_seconds": 0.0}),
    )
    await recovering.run_once()
    # The number recovers (a quarter a step; each campaign's pass may take a step here, with
    # no recovery period), for both alike.
    first, second = await paces()
    assert first == second and 2.0 < first <= 4.0


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
