"""SIGTERM to a real `pytake worker` with webhook deliveries and sends to WhatsApp in flight.

The worker stops claiming, lets what is in flight finish and records it, gives back what it
claimed but had not started, then exits 0 — within `worker_shutdown_grace_seconds`. Nothing is lost and nothing is sent twice: a second worker
delivers the rest, and every X-PyTake-Delivery id / message reaches its peer once. Past the
grace, what is still in flight is cancelled and left to its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from fastapi import FastAPI
from sqlalchemy import func, select

from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.events import DomainEvent, record_many
from pytake.models import WebhookDelivery
from pytake.models.base import utcnow
from pytake.whatsapp.simulator import Simulator
from tests.channel.support import create_official
from tests.conftest import REDIS_NAMESPACE, TEST_REDIS_URL, Org, client_for, register_org
from tests.events.helpers import running_app, serving
from tests.message.sending.support import (
    Shop,
    eventually,
    message_statuses,
    new_customer,
    queue_texts,
    sim_counts,
)

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 30
IN_FLIGHT = 7  # issue 23's scenario: 30 events, 7 deliveries in flight
BATCH = 7
MESSAGES = 20
SIM_LATENCY_MS = 3000


@dataclass
class HeldReceiver:
    """A webhook receiver that answers nothing until released; records every request."""

    base: str = ""
    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: list[str] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)

    @property
    def in_flight(self) -> int:
        return len(self.started) - len(self.answered)

    async def handle(self, request: web.Request) -> web.Response:
        delivery = request.headers["X-PyTake-Delivery"]
        self.started.append(delivery)
        await self.release.wait()
        self.answered.append(delivery)
        return web.Response(text="ok")


@pytest.fixture
async def held_receiver() -> AsyncIterator[HeldReceiver]:
    rec = HeldReceiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.base = f"http://127.0.0.1:{port}"
    yield rec
    rec.release.set()
    await runner.cleanup()


@dataclass
class Worker:
    """A `pytake worker` process; its log is read on failure."""

    proc: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    async def alive(self) -> bool:
        assert self.proc.returncode is None, f"the worker died:\n{self.output()}"
        return True

    async def terminate(self, within: float) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds until it exited). Killed and failed after `within`."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(within):
                code = await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(
                f"the worker was still running {within} s after SIGTERM:\n{self.output()}"
            ) from None
        return code, time.monotonic() - started


def _die_with_parent() -> None:
    # A test run killed outright must not leave a worker polling a dropped database.
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.asynccontextmanager
async def pytake_worker(settings: Settings, log: Path, **env: str) -> AsyncIterator[Worker]:
    """`pytake worker` on the test app's database (and Redis, with the run's namespace)."""
    values = {
        "PYTAKE_ENV": "test",
        "PYTAKE_DATABASE_URL": settings.database_url,
        "PYTAKE_SECRET_KEY": settings.secret_key,
        "PYTAKE_META_GRAPH_URL": settings.meta_graph_url,
        "PYTAKE_ALLOW_PRIVATE_URLS": "true",
        "PYTAKE_REDIS_NAMESPACE": REDIS_NAMESPACE,
        "PYTAKE_TEMPLATE_SYNC_INTERVAL_SECONDS": "0",
        "PYTAKE_WORKER_POLL_SECONDS": "0.5",
        "PYTAKE_LOG_LEVEL": "INFO",
        # Not its default 10: beside the suite's own processes (at 0) a niced worker only
        # waits its turn, and these tests bound how long it takes to stop.
        "PYTAKE_WORKER_NICE": "0",
        **env,
    }
    if TEST_REDIS_URL:
        values["PYTAKE_REDIS_URL"] = TEST_REDIS_URL
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTAKE_")}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("pytake")),
            "worker",
            cwd=ROOT,
            env={**environ, **values},
            stdout=out,
            stderr=out,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    worker = Worker(proc, log)
    try:
        yield worker
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _queue_deliveries(app: FastAPI, org_id: str, count: int) -> None:
    async with unit_of_work(app.state.session_factory) as session:
        await record_many(
            session,
            [DomainEvent(uuid.UUID(org_id), "contact.updated", {"n": n}) for n in range(count)],
        )


async def _delivery_states(app: FastAPI) -> Counter[str]:
    async with app.state.session_factory() as session:
        rows = await session.execute(
            select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
        )
        return Counter({status: n for status, n in rows.all()})


async def _hook(app: FastAPI, org: Org, url: str) -> None:
    async with client_for(app) as client:
        resp = await client.post(
            "/v1/webhooks", json={"url": url, "events": ["contact.updated"]}, headers=org.headers
        )
        assert resp.status_code == 201, resp.text


async def test_sigterm_finishes_deliveries_and_sends_in_flight_then_exits(
    make_settings: Callable[..., Settings],
    fresh_database_url: str,
    sim: Simulator,
    held_receiver: HeldReceiver,
    tmp_path: Path,
) -> None:
    settings = make_settings(database_url=fresh_database_url, meta_graph_url=sim.graph_url)
    grace = 15.0
    async with running_app(settings) as app, serving(app) as app_url:
        async with client_for(app) as api:
            org = await register_org(api, "Shop")
            number = await create_official(api, org, sim, app_url, is_default=True)
        number.sim_number.mps = 10**6
        shop = Shop(org, number, sim)
        customer = new_customer()
        await shop.customer_writes(customer)
        await _hook(app, org, f"{held_receiver.base}/hook")
        await _queue_deliveries(app, org.id, EVENTS)
        ids = await queue_texts(app, shop, customer, MESSAGES)
        sim.set_faults(latency_ms=SIM_LATENCY_MS)
        try:
            async with pytake_worker(
                settings,
                tmp_path / "worker.log",
                # One claim takes all 30; 7 are sent at a time, the others wait their turn.
                PYTAKE_WEBHOOK_CONCURRENCY=str(IN_FLIGHT),
                PYTAKE_WORKER_SHUTDOWN_GRACE_SECONDS=str(grace),
            ) as worker:

                async def both_in_flight() -> bool:
                    await worker.alive()
                    sending = (await message_statuses(app, ids))["sending"]
                    return held_receiver.in_flight > 0 and sending > 0

                await eventually(both_in_flight, timeout=60, every=0.05)
                stop = asyncio.create_task(worker.terminate(within=grace + 30))
                # The worker waits for its requests: still running while they are held.
                await asyncio.sleep(0.5)
                assert not stop.done(), worker.output()
                held = len(held_receiver.started)
                assert held == IN_FLIGHT, held_receiver.started
                held_receiver.release.set()
                code, seconds = await stop
        finally:
            sim.set_faults(latency_ms=0)
        assert code == 0, worker.output()
        assert seconds < grace, (seconds, worker.output())
        # What was in flight was answered and recorded; what was claimed but not yet sent was
        # given back (not sent during the grace, not left to the lease).
        states = await _delivery_states(app)
        assert states["delivering"] == 0 and states["delivered"] == held, (states, held)
        assert states["pending"] == EVENTS - held, states
        statuses = await message_statuses(app, ids)
        assert statuses["sending"] == 0 and statuses["queued"] == 0, statuses
        assert set(sim_counts(shop, ids).values()) == {1}

        # A second worker delivers the rest: every delivery once.
        async with running_app(settings.model_copy(update={"run_background_loops": True})):

            async def all_delivered() -> Counter[str] | None:
                states = await _delivery_states(app)
                return states if states["delivered"] == EVENTS else None

            await eventually(all_delivered, timeout=60, every=0.1)
    seen = Counter(held_receiver.started)
    assert len(seen) == EVENTS and set(seen.values()) == {1}, seen.most_common(3)
    assert len(sim_counts(shop, ids)) == MESSAGES


async def test_past_the_grace_what_is_in_flight_is_left_to_its_lease(
    make_settings: Callable[..., Settings],
    fresh_database_url: str,
    held_receiver: HeldReceiver,
    tmp_path: Path,
) -> None:
    settings = make_settings(database_url=fresh_database_url)
    grace = 1.0
    async with running_app(settings) as app:
        async with client_for(app) as client:
            org = await register_org(client)
        await _hook(app, org, f"{held_receiver.base}/hook")
        await _queue_deliveries(app, org.id, EVENTS)
        async with pytake_worker(
            settings,
            tmp_path / "worker.log",
            PYTAKE_WEBHOOK_BATCH_SIZE=str(BATCH),
            PYTAKE_WORKER_SHUTDOWN_GRACE_SECONDS=str(grace),
        ) as worker:

            async def held() -> bool:
                await worker.alive()
                return len(held_receiver.started) >= BATCH

            await eventually(held, timeout=60, every=0.05)
            code, seconds = await worker.terminate(within=grace + 30)
        assert code == 0, worker.output()
        # The grace, then the cancel (bounded by the runner's 5 s) and the process's own exit.
        assert seconds < grace + 5, (seconds, worker.output())
        assert "left to its lease" in worker.output()
        async with app.state.session_factory() as session:
            leased = list(
                await session.scalars(
                    select(WebhookDelivery.claimed_until).where(
                        WebhookDelivery.status == "delivering"
                    )
                )
            )
        assert len(leased) == BATCH and all(until > utcnow() for until in leased), leased
        assert (await _delivery_states(app))["pending"] == EVENTS - BATCH
