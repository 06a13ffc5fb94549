"""SIGTERM to a real `pytake worker` with media downloads in flight: the fetch loop claims
nothing more, gives back what it claimed ahead but had not started, lets its downloads finish
and records them, then exits; past the grace, the downloads cut short are given back too
(attempt and lease) for any worker to fetch at once."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import select

from pytake.config import Settings
from pytake.models import Media
from pytake.models.base import utcnow
from pytake.whatsapp.simulator import Simulator
from tests.channel.support import create_official
from tests.conftest import client_for, register_org
from tests.events.helpers import running_app, serving
from tests.media.support import customer_sends_media
from tests.message.sending.support import Shop, eventually, new_customer
from tests.worker.test_graceful_stop import Worker, pytake_worker

ITEMS = 6
CONCURRENCY = 2


async def _rows(app: FastAPI, org_id: str) -> list[Media]:
    async with app.state.session_factory() as session:
        return list(
            await session.scalars(select(Media).where(Media.organization_id == uuid.UUID(org_id)))
        )


async def _shop_with_pending_media(app: FastAPI, app_url: str, sim: Simulator) -> Shop:
    async with client_for(app) as api:
        org = await register_org(api, "Shop")
        number = await create_official(api, org, sim, app_url, is_default=True)
    shop = Shop(org, number, sim)
    for _ in range(ITEMS):
        await customer_sends_media(shop, new_customer(), "image", os.urandom(2000), "image/png")
    rows = await _rows(app, org.id)
    assert len(rows) == ITEMS and {r.status for r in rows} == {"pending"}
    return shop


async def _until_downloading(app: FastAPI, shop: Shop, worker: Worker) -> None:
    """Until `CONCURRENCY` fetches are past their URL lookup (their download in flight). A
    claim alone is not enough: rows claimed but not yet started are rightly given back on a
    stop, and a worker at its niceness on a busy machine can be slow to start them."""

    async def downloading() -> bool:
        await worker.alive()
        ids = {r.provider_media_id for r in await _rows(app, shop.org.id)}
        lookups = shop.sim.state.media_lookups
        return sum(1 for media_id in ids if lookups.get(str(media_id))) >= CONCURRENCY

    await eventually(downloading, timeout=60, every=0.05)


def _worker_env(settings: Settings, grace: float) -> dict[str, str]:
    return {
        "PYTAKE_DATA_DIR": settings.data_dir,
        "PYTAKE_MEDIA_FETCH_CONCURRENCY": str(CONCURRENCY),
        "PYTAKE_WORKER_SHUTDOWN_GRACE_SECONDS": str(grace),
    }


async def test_sigterm_lets_downloads_in_flight_finish_and_claims_no_more(
    make_settings: Callable[..., Settings],
    fresh_database_url: str,
    sim: Simulator,
    tmp_path: Path,
) -> None:
    settings = make_settings(database_url=fresh_database_url, meta_graph_url=sim.graph_url)
    grace = 15.0
    async with running_app(settings) as app, serving(app) as app_url:
        shop = await _shop_with_pending_media(app, app_url, sim)
        sim.set_faults(latency_ms=1500)  # a URL lookup and a download: 3 s a fetch
        try:
            async with pytake_worker(
                settings, tmp_path / "worker.log", **_worker_env(settings, grace)
            ) as worker:
                await _until_downloading(app, shop, worker)
                code, seconds = await worker.terminate(within=grace + 30)
        finally:
            sim.set_faults(latency_ms=0)
        assert code == 0, worker.output()
        assert seconds < grace, (seconds, worker.output())
        rows = await _rows(app, shop.org.id)
        stored = [r for r in rows if r.status == "stored"]
        untouched = [r for r in rows if r.status == "pending"]
        assert len(stored) == CONCURRENCY, [(r.status, r.error) for r in rows]
        assert len(untouched) == ITEMS - CONCURRENCY
        assert all(r.attempts == 0 and r.claimed_until is None for r in untouched)


async def test_past_the_grace_downloads_cut_short_are_given_back(
    make_settings: Callable[..., Settings],
    fresh_database_url: str,
    sim: Simulator,
    tmp_path: Path,
) -> None:
    settings = make_settings(database_url=fresh_database_url, meta_graph_url=sim.graph_url)
    grace = 1.0
    async with running_app(settings) as app, serving(app) as app_url:
        shop = await _shop_with_pending_media(app, app_url, sim)
        sim.set_faults(latency_ms=8000)
        try:
            async with pytake_worker(
                settings, tmp_path / "worker.log", **_worker_env(settings, grace)
            ) as worker:
                await _until_downloading(app, shop, worker)
                code, seconds = await worker.terminate(within=grace + 30)
        finally:
            sim.set_faults(latency_ms=0)
        assert code == 0, worker.output()
        assert seconds < grace + 5, (seconds, worker.output())
        rows = await _rows(app, shop.org.id)
        # Not left to a 10-minute lease, and the attempt the stop cut short is not counted.
        assert {(r.status, r.attempts, r.claimed_until) for r in rows} == {("pending", 0, None)}
        assert all(r.next_attempt_at is not None and r.next_attempt_at <= utcnow() for r in rows)

        # Another worker fetches every one at once.
        async with running_app(settings.model_copy(update={"run_background_loops": True})):

            async def all_stored() -> bool:
                return {r.status for r in await _rows(app, shop.org.id)} == {"stored"}

            await eventually(all_stored, timeout=60, every=0.1)
