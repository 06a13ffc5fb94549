"""Posts the simulator's webhooks: Meta's signed ones and Evolution's header-authenticated ones,
with retries, a delivery log, and tracking so tests can wait until all are delivered."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine
from typing import Any

import aiohttp
import jwt

from pytake.whatsapp.cloud.webhook import SIGNATURE_HEADER, sign
from pytake.whatsapp.simulator.state import SimState

# Evolution gives up at once on these answers; Meta retries anything but 200.
EVOLUTION_FINAL = frozenset({400, 401, 403, 404, 422})


def to_bytes(body: dict[str, Any]) -> bytes:
    """Serialise once, so the signature covers exactly the bytes posted."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode()


class WebhookEmitter:
    """Delivers webhooks over one client session and records every attempt."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Open the client session."""
        if self._session is None:
            limit = self.state.settings.webhook_connections
            connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit)
            self._session = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        """Cancel pending deliveries and close the session."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a delivery in the background, tracked for `idle()`."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait until no delivery is pending (including ones scheduled meanwhile)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def post_meta(self, url: str | None, app_secret: str, body: dict[str, Any]) -> int | None:
        """Post a signed Meta webhook; returns the receiver's final HTTP status."""
        if not url:
            return None
        raw = to_bytes(body)
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(app_secret, raw)}
        return await self._deliver("cloud", url, raw, headers, body, final=frozenset())

    async def post_evolution(
        self, url: str, headers: dict[str, str], body: dict[str, Any]
    ) -> int | None:
        """Post an Evolution webhook with the instance's configured headers."""
        raw = to_bytes(body)
        sent_headers = {"Content-Type": "application/json"}
        for key, value in headers.items():
            if key == "jwt_key":
                sent_headers["Authorization"] = "Bearer " + _evolution_jwt(value)
            else:
                sent_headers[key] = value
        return await self._deliver("evolution", url, raw, sent_headers, body, EVOLUTION_FINAL)

    async def _deliver(
        self,
        provider: str,
        url: str,
        raw: bytes,
        headers: dict[str, str],
        body: dict[str, Any],
        final: frozenset[int],
    ) -> int | None:
        settings = self.state.settings
        entry: dict[str, Any] = {"provider": provider, "url": url, "body": body, "attempts": 0}
        entry["headers"] = headers
        self.state.webhook_log.append(entry)
        status: int | None = None
        for attempt in range(settings.webhook_retries + 1):
            entry["attempts"] = attempt + 1
            status = await self._attempt(url, raw, headers)
            entry["status"] = status
            if status is not None and (200 <= status < 300 or status in final):
                break
            if attempt < settings.webhook_retries:
                await asyncio.sleep(settings.retry_backoff * 2**attempt)
        entry["delivered_at"] = time.time()
        return status

    async def _attempt(self, url: str, raw: bytes, headers: dict[str, str]) -> int | None:
        if self._session is None:
            raise RuntimeError("the simulator is not started")
        timeout = aiohttp.ClientTimeout(total=self.state.settings.webhook_timeout)
        try:
            async with self._session.post(url, data=raw, headers=headers, timeout=timeout) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientError, TimeoutError):
            return None


def _evolution_jwt(secret: str) -> str:
    now = int(time.time())
    claims = {"iat": now, "exp": now + 600, "app": "evolution", "action": "webhook"}
    return jwt.encode(claims, secret, algorithm="HS256")
