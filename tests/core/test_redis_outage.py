"""Redis is optional in fact: with PYTAKE_REDIS_URL set and that Redis stopped, rate-limited
routes still answer, realtime events still reach this process's sockets, /health says
`degraded`; when Redis returns everything goes back to it by itself.

The test runs a redis-server of its own on a free loopback port, stops it and starts it again.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.exceptions import RedisError
from websockets.asyncio.client import ClientConnection, connect

from pytake.config import Settings
from pytake.events.relay import EventsRelay
from tests.conftest import client_for, register_org
from tests.events.helpers import inbound_message, produce, serving

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server on a fixed loopback port that the test stops and starts."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        client = Redis.from_url(self.url)
        try:
            for _ in range(200):
                try:
                    await client.ping()
                    return
                except RedisError:
                    await asyncio.sleep(0.05)
            raise AssertionError("redis-server did not start")
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), 10)
            self.process = None


@pytest.fixture
async def own_redis() -> AsyncIterator[OwnRedis]:
    redis = OwnRedis()
    await redis.start()
    try:
        yield redis
    finally:
        await redis.stop()


async def _recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(10):
        return dict(json.loads(await ws.recv(decode=True)))


async def _health(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.get("/health")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def _eventually_health(client: httpx.AsyncClient, status: str) -> dict[str, Any]:
    for _ in range(100):
        body = await _health(client)
        if body["status"] == status:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"/health never said {status}: {body}")


async def test_redis_down_degrades_and_recovers_by_itself(
    own_redis: OwnRedis,
    start_app: Callable[[Settings], Awaitable[FastAPI]],
    make_settings: Callable[..., Settings],
) -> None:
    app = await start_app(make_settings(redis_url=own_redis.url))
    app.state.rate_limiter.RETRY_SECONDS = 0.2  # retry Redis at once rather than in 5 s
    async with client_for(app) as client, serving(app) as base:
        org = await register_org(client)
        assert (await _health(client))["checks"]["redis"] == "ok"
        ws = await connect(base.replace("http://", "ws://") + "/ws")
        await ws.send(json.dumps({"type": "auth", "token": org.token}))
        assert await _recv(ws) == {"type": "auth_ok"}

        await own_redis.stop()

        # Rate-limited routes answer, counted in this process's memory, with their headers.
        for _ in range(3):
            resp = await client.get("/v1/users", headers=org.headers)
            assert resp.status_code == 200, resp.text
            assert "X-RateLimit-Remaining" in resp.headers
        login = await client.post(
            "/api/v1/auth/login", json={"email": org.admin_email, "password": "wrong-password"}
        )
        assert login.status_code == 401, login.text
        assert app.state.rate_limiter.degraded

        body = await _health(client)
        assert body["status"] == "degraded" and body["checks"] == {
            "database": "ok",
            "redis": "down",
        }

        # An event committed meanwhile reaches this process's socket.
        await produce(app, org.id, "message.received", inbound_message("during the outage"))
        frame = await _recv(ws)
        assert frame["data"]["message"] == "during the outage"

        await own_redis.start()

        await _eventually_health(client, "healthy")
        await asyncio.sleep(0.3)
        resp = await client.get("/v1/users", headers=org.headers)
        assert resp.status_code == 200
        assert not app.state.rate_limiter.degraded
        probe = Redis.from_url(own_redis.url)
        try:
            assert await probe.keys("*"), "limits are counted in Redis again"
        finally:
            await probe.aclose()

        # The relay publishes the outage's event through Redis for the other processes; this
        # one, which delivered it already, does not deliver it twice.
        relay = EventsRelay(app.state.session_factory, app.state.runtime.bus, grace_seconds=0)
        for _ in range(50):
            try:
                while await relay.run_once() == 0:
                    pass
                break
            except RedisError:  # a pooled connection from before the restart, dropped
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # the listener re-subscribes within its 1 s retry
        await produce(app, org.id, "message.received", inbound_message("after the outage"))
        frame = await _recv(ws)
        assert frame["data"]["message"] == "after the outage"
        await ws.close()
