"""Shared fixtures for WhatsApp channel and inbound-message tests.

A simulator (fake Graph + Evolution APIs) and a PyTake app pointed at it, both on loopback
ports: tests call PyTake over real HTTP, and the simulator posts signed webhooks back to it.
The app is our own (not the shared `app`) because `meta_graph_url` must name the simulator.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from pytake.config import Settings
from pytake.models import Channel, Contact, Conversation, Message, PendingStatus
from pytake.whatsapp.simulator import BusinessNumber, Simulator, SimulatorSettings
from tests.conftest import LiveServer, Org, register_org

__all__ = [
    "MetaNumber",
    "api",
    "count_rows",
    "create_evolution",
    "create_official",
    "messages_of",
    "new_pnid",
    "post_meta",
    "sign",
    "sim",
    "wa_app",
    "wa_org",
    "wa_url",
]


@pytest.fixture(scope="session")
async def sim() -> AsyncIterator[Simulator]:
    """The simulator, with no delays, for the whole session."""
    async with Simulator(SimulatorSettings.for_tests()) as simulator:
        yield simulator


@pytest.fixture(scope="session")
async def wa_app(
    sim: Simulator,
    start_app: Callable[[Settings], Awaitable[FastAPI]],
    make_settings: Callable[..., Settings],
) -> FastAPI:
    # Background loops off: the periodic health check is exercised explicitly by a test.
    return await start_app(make_settings(meta_graph_url=sim.graph_url, run_background_loops=False))


@pytest.fixture(scope="session")
async def wa_url(wa_app: FastAPI) -> AsyncIterator[str]:
    server = LiveServer(wa_app)
    url = await server.start()
    yield url
    await server.stop()


@pytest.fixture
async def api(wa_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A real HTTP client to the app on loopback."""
    async with httpx.AsyncClient(base_url=wa_url, timeout=30) as client:
        yield client


@pytest.fixture
async def wa_org(api: httpx.AsyncClient) -> Org:
    return await register_org(api, "Shop")


def new_pnid() -> str:
    return str(10**14 + secrets.randbelow(9 * 10**14))


@dataclass
class MetaNumber:
    """A Cloud API number configured in PyTake and registered in the simulator."""

    config: dict[str, Any]
    pnid: str
    token: str
    app_secret: str
    waba: str
    verify_token: str
    sim_number: BusinessNumber

    @property
    def id(self) -> str:
        return str(self.config["id"])


async def create_official(
    api: httpx.AsyncClient,
    org: Org,
    sim: Simulator,
    wa_url: str,
    *,
    name: str = "Main number",
    is_default: bool = False,
    configured_token: str | None = None,
) -> MetaNumber:
    """Register a number in the simulator and configure it in PyTake through the API."""
    pnid, token = new_pnid(), "EAA" + secrets.token_hex(16)
    app_secret, verify = secrets.token_hex(16), "verify-" + secrets.token_hex(6)
    waba = new_pnid()
    number = sim.register_number(
        pnid,
        token,
        app_secret,
        display_phone_number="15550783881",
        waba_id=waba,
        webhook_url=f"{wa_url}/api/v1/whatsapp/webhook",
        verified_name="Acme Shop",
        verify_token=verify,
    )
    resp = await api.post(
        "/api/v1/whatsapp-configs",
        json={
            "name": name,
            "provider": "official",
            "phone_number_id": pnid,
            "access_token": configured_token or token,
            "app_secret": app_secret,
            "webhook_verify_token": verify,
            "business_account_id": waba,
            "is_default": is_default,
        },
        headers=org.headers,
    )
    assert resp.status_code == 201, resp.text
    return MetaNumber(resp.json(), pnid, token, app_secret, waba, verify, number)


async def create_evolution(
    api: httpx.AsyncClient,
    org: Org,
    sim: Simulator,
    *,
    instance: str | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    resp = await api.post(
        "/api/v1/whatsapp-configs",
        json={
            "name": "Evolution",
            "provider": "evolution",
            "evolution_url": url or sim.evolution_url,
            "evolution_api_key": sim.state.settings.evolution_api_key,
            "instance_name": instance or "inst-" + uuid.uuid4().hex[:10],
        },
        headers=org.headers,
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def sign(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


async def post_meta(
    api: httpx.AsyncClient, body: Any, secret: str | None, *, signature: str | None = None
) -> httpx.Response:
    """Post a Meta webhook body as Meta does: exact bytes, signed with the app secret."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    elif secret is not None:
        headers["X-Hub-Signature-256"] = sign(secret, raw)
    return await api.post("/api/v1/whatsapp/webhook", content=raw, headers=headers)


async def messages_of(app: FastAPI, config_id: str) -> list[Message]:
    """Messages stored for a channel, oldest first."""
    async with app.state.session_factory() as session:
        rows = await session.scalars(
            select(Message)
            .where(Message.channel_id == uuid.UUID(config_id))
            .order_by(Message.created_at, Message.id)
        )
        return list(rows)


_MODELS = {
    "contacts": Contact,
    "conversations": Conversation,
    "messages": Message,
    "pending": PendingStatus,
    "configs": Channel,
}


async def count_rows(app: FastAPI, what: str, organization_id: str) -> int:
    model: Any = _MODELS[what]
    async with app.state.session_factory() as session:
        total = await session.scalar(
            select(func.count())
            .select_from(model)
            .where(model.organization_id == uuid.UUID(organization_id))
        )
        return int(total or 0)
