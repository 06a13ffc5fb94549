"""Fixtures for sending and conversation tests: the simulator, an app on loopback pointed at
it with a running dispatcher, and helpers to set up a shop whose customers can write in."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, insert, select

from pytake.config import Settings
from pytake.message.sending.context import sending_context
from pytake.message.sending.dispatcher import SendingTuning, build_dispatcher
from pytake.models import Conversation, Message
from pytake.models.base import utcnow
from pytake.whatsapp.simulator import Simulator
from tests.channel.support import MetaNumber, create_official, new_pnid
from tests.conftest import LiveServer, Org, register_org

# Retries in milliseconds and a short in-request wait, so failure paths stay fast.
TEST_TUNING = SendingTuning(
    backoff_base_seconds=0.05,
    backoff_max_seconds=0.2,
    request_wait_seconds=2.0,
    poll_seconds=0.05,
    reconcile_every_seconds=0.2,
    lease_seconds=120.0,
)


@pytest.fixture(scope="session")
async def send_app(
    sim: Simulator,
    start_app: Callable[[Settings], Awaitable[FastAPI]],
    make_settings: Callable[..., Settings],
) -> AsyncIterator[FastAPI]:
    app = await start_app(make_settings(meta_graph_url=sim.graph_url, run_background_loops=False))
    app.state.sending_tuning = TEST_TUNING
    ctx = sending_context(app.state)
    ctx.dispatcher = build_dispatcher(
        app.state.session_factory, app.state.settings, app.state.http, TEST_TUNING
    )
    resume_dispatcher(app)
    yield app
    await pause_dispatcher(app)


def resume_dispatcher(app: FastAPI) -> None:
    """(Re)start the app's in-process dispatcher loop."""
    ctx = sending_context(app.state)
    assert ctx.dispatcher is not None
    app.state.test_dispatch_task = asyncio.create_task(ctx.dispatcher.run_forever())


async def pause_dispatcher(app: FastAPI) -> None:
    """Stop the app's dispatcher (tests that run their own workers)."""
    task = app.state.test_dispatch_task
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture(scope="session")
async def send_url(send_app: FastAPI) -> AsyncIterator[str]:
    server = LiveServer(send_app)
    url = await server.start()
    yield url
    await server.stop()


@pytest.fixture
async def http(send_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=send_url, timeout=30) as client:
        yield client


@dataclass
class Shop:
    org: Org
    number: MetaNumber
    sim: Simulator

    @property
    def headers(self) -> dict[str, str]:
        return self.org.headers

    async def customer_writes(self, wa_id: str, text: str = "hi") -> str:
        """The customer writes (opens the 24 h window); returns the inbound wamid."""
        record = await self.sim.customer_sends(
            self.number.pnid, sender=wa_id, type="text", text=text, profile_name="Maria"
        )
        assert record.webhook_status == 200, record
        return record.id


@pytest.fixture
async def shop(http: httpx.AsyncClient, sim: Simulator, send_url: str) -> Shop:
    org = await register_org(http, "Shop")
    number = await create_official(http, org, sim, send_url, is_default=True)
    number.sim_number.mps = 10**6  # the default 80/s would throttle the bulk tests
    return Shop(org, number, sim)


def new_customer() -> str:
    """A fresh valid Brazilian mobile number as a WhatsApp id (digits)."""
    return "55119" + new_pnid()[-8:]


async def eventually(
    check: Callable[[], Awaitable[Any]],
    *,
    timeout: float = 20.0,  # noqa: ASYNC109 - a polling deadline, not a cancellation scope
    every: float = 0.05,
) -> Any:
    """Poll until `check` returns a truthy value (the value), failing after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        await asyncio.sleep(every)


async def queue_texts(app: FastAPI, shop: Shop, wa_id: str, count: int) -> list[uuid.UUID]:
    """Queue `count` text messages to one customer with Core inserts (what campaigns do), for
    a dispatcher to send (no inline attempt, unlike `POST /v1/messages`)."""
    async with app.state.session_factory() as session:
        conv = await session.scalar(
            select(Conversation).where(Conversation.channel_id == uuid.UUID(shop.number.id))
        )
        assert conv is not None
        now = utcnow()
        ids = [uuid.uuid4() for _ in range(count)]
        rows = [
            {
                "id": mid,
                "organization_id": conv.organization_id,
                "conversation_id": conv.id,
                "contact_id": conv.contact_id,
                "channel_id": conv.channel_id,
                "direction": "outbound",
                "type": "text",
                "content": {"body": f"n{n}"},
                "status": "queued",
                "callback_data": str(mid),
                "recipient": "+" + wa_id,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for n, mid in enumerate(ids)
        ]
        for start in range(0, count, 1000):
            await session.execute(insert(Message), rows[start : start + 1000])
        await session.commit()
    return ids


async def message_statuses(app: FastAPI, ids: list[uuid.UUID]) -> Counter[str]:
    """How many of the messages are in each status."""
    async with app.state.session_factory() as session:
        rows = await session.execute(
            select(Message.status, func.count()).where(Message.id.in_(ids)).group_by(Message.status)
        )
        return Counter({status: n for status, n in rows.all()})


def sim_counts(shop: Shop, ids: list[uuid.UUID]) -> Counter[str]:
    """How many times the simulator took each of the messages (by biz_opaque_callback_data)."""
    wanted = {str(i) for i in ids}
    return Counter(
        m.body.get("biz_opaque_callback_data")
        for m in shop.sim.state.sent
        if m.body.get("biz_opaque_callback_data") in wanted
    )


def sent_with_callback(sim: Simulator, message_id: str) -> list[Any]:
    """What the simulator received for our message id (biz_opaque_callback_data)."""
    return [m for m in sim.state.sent if m.body.get("biz_opaque_callback_data") == message_id]


__all__ = ["TEST_TUNING", "Shop", "eventually", "new_customer", "sent_with_callback", "uuid"]
