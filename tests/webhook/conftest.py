"""A real local receiver for outgoing webhooks, and an app whose delivery loop runs fast.

On SQLite the webhook app gets its own database file: the session's shared app runs its own
delivery loop in-process (with the default 1 s backoff) and must not claim these deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI

from pytake.config import Settings
from tests.conftest import TEST_DATABASE_URL, client_for
from tests.events.helpers import running_app

BACKOFF = 0.3


def validate_webhook(payload: str, signature: str, secret: str) -> bool:
    """Verbatim from the /v1 document (Validação de Assinatura)."""
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()

    received = signature.replace("sha256=", "")
    return hmac.compare_digest(expected, received)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int


@dataclass
class Receiver:
    """Answers each path with scripted statuses (then 200) and records every request."""

    base: str = ""
    scripts: dict[str, list[int]] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)

    def url(self, name: str, *statuses: int) -> str:
        self.scripts[f"/hook/{name}"] = list(statuses)
        return f"{self.base}/hook/{name}"

    def at(self, name: str) -> list[Received]:
        return [r for r in self.requests if r.path == f"/hook/{name}"]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        script = self.scripts.get(request.path, [])
        status = script.pop(0) if script else 200
        self.requests.append(
            Received(request.path, dict(request.headers), body, time.monotonic(), status)
        )
        return web.Response(status=status, text="ok" if status < 300 else "receiver says no")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook/{name}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.base = f"http://127.0.0.1:{port}"
    yield rec
    await runner.cleanup()


@pytest.fixture(scope="session")
def webhook_settings(
    make_settings: Callable[..., Settings], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Settings]:
    own_db = None if TEST_DATABASE_URL else tmp_path_factory.mktemp("wh") / "webhooks.db"

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "run_background_loops": True,
            "webhook_backoff_base_seconds": BACKOFF,
            "worker_poll_seconds": 0.5,
        }
        if own_db is not None:
            values["database_url"] = f"sqlite+aiosqlite:///{own_db}"
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
async def wh_app(webhook_settings: Callable[..., Settings]) -> AsyncIterator[FastAPI]:
    async with running_app(webhook_settings()) as app:
        yield app


@pytest.fixture
async def wh_client(wh_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(wh_app) as c:
        yield c
