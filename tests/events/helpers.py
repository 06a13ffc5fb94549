"""Producing events the way producers do: `pytake.events.record` inside a unit of work."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from pytake.app import create_app
from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.events import record
from tests.conftest import LiveServer


async def produce(app: FastAPI, org_id: str, type: str, data: dict[str, Any]) -> None:
    async with unit_of_work(app.state.session_factory) as session:
        await record(session, uuid.UUID(org_id), type, data)


def inbound_message(
    text: str = "Olá, preciso de ajuda", number: str = "+5511999999999"
) -> dict[str, Any]:
    """message.received data as the /v1 document's webhook payload shows it."""
    return {
        "message": {
            "id": str(uuid.uuid4()),
            "whatsapp_message_id": f"wamid.{uuid.uuid4().hex}",
            "type": "text",
            "content": {"text": text},
            "created_at": "2025-10-03T16:30:00Z",
        },
        "conversation": {"id": str(uuid.uuid4()), "status": "open"},
        "contact": {"id": str(uuid.uuid4()), "name": "João Silva", "whatsapp_id": number},
    }


def status_change(wamid: str, status: str = "delivered") -> dict[str, Any]:
    return {
        "message": {"id": str(uuid.uuid4()), "whatsapp_message_id": wamid, "status": status},
        "status": status,
        "timestamp": "2025-01-07T10:00:05Z",
    }


async def wait_until(condition: Callable[[], Any], within: float = 10.0) -> None:
    """Wait for a condition the system will reach (fails the test if it never does)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Like wait_until, for a condition that needs a query."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """An app with its lifespan entered for one test only (its background loops stop after)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """The app on a loopback port; yields its base URL."""
    server = LiveServer(app)
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()
