"""Posts the simulator's webhooks: Meta's signed ones and Evolution's header-authenticated ones,
with retries, a delivery log, and tracking so tests can wait until all are delivered.

Webhooks go out through the send path's plain keep-alive HTTP/1.1 pool (`GraphPool`), not
aiohttp's client: at a campaign's three status webhooks per message, aiohttp's request and
response machinery was about half of the simulator's CPU per message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import httptools
import jwt
import orjson
from yarl import URL

from pytake.whatsapp.cloud.client import GraphPool
from pytake.whatsapp.cloud.webhook import SIGNATURE_HEADER, sign
from pytake.whatsapp.simulator.meta_payloads import envelope
from pytake.whatsapp.simulator.state import BusinessNumber, SimState

# Evolution gives up at once on these answers; Meta retries anything but 200.
EVOLUTION_FINAL = frozenset({400, 401, 403, 404, 422})


def to_bytes(body: dict[str, Any]) -> bytes:
    """Serialise once, so the signature covers exactly the bytes posted (UTF-8, as Meta's)."""
    return orjson.dumps(body)


@dataclass(slots=True)
class _StatusBatch:
    """Statuses of one number waiting to go out in one webhook (`status_coalesce_seconds`)."""

    done: asyncio.Future[int | None]
    items: list[dict[str, Any]] = field(default_factory=list)
    flushed: bool = False


class WebhookEmitter:
    """Delivers webhooks over one keep-alive pool and records every attempt."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self._pool: GraphPool | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._heads: dict[str, tuple[URL, bytes]] = {}
        self._batches: dict[str, _StatusBatch] = {}

    async def start(self) -> None:
        """Open the connection pool."""
        if self._pool is None:
            self._pool = GraphPool(self.state.settings.webhook_connections)

    async def close(self) -> None:
        """Cancel pending deliveries and close the pool."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pool is not None:
            self._pool.close()
            self._pool = None

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

    async def post_status(self, number: BusinessNumber, item: dict[str, Any]) -> int | None:
        """Post one `statuses[]` item of a number: in a webhook of its own (as Meta does), or,
        with `status_coalesce_seconds`, in the number's next webhook carrying several (Meta's
        payload allows several in one value). Returns once the webhook carrying it is done."""
        seconds = self.state.settings.status_coalesce_seconds
        if seconds <= 0:
            body = envelope(number, {"statuses": [item]})
            return await self.post_meta(number.webhook_url, number.app_secret, body)
        pnid = number.phone_number_id
        batch = self._batches.get(pnid)
        if batch is None:
            batch = _StatusBatch(asyncio.get_running_loop().create_future())
            self._batches[pnid] = batch
            self.spawn(self._flush_later(number, batch, seconds))
        batch.items.append(item)
        if len(batch.items) >= self.state.settings.status_coalesce_max:
            self.spawn(self._flush(number, batch))
        return await asyncio.shield(batch.done)

    async def _flush_later(self, number: BusinessNumber, batch: _StatusBatch, wait: float) -> None:
        await asyncio.sleep(wait)
        await self._flush(number, batch)

    async def _flush(self, number: BusinessNumber, batch: _StatusBatch) -> None:
        if batch.flushed:
            return
        batch.flushed = True
        if self._batches.get(number.phone_number_id) is batch:
            del self._batches[number.phone_number_id]
        body = envelope(number, {"statuses": batch.items})
        try:
            status = await self.post_meta(number.webhook_url, number.app_secret, body)
        except BaseException:
            batch.done.cancel()  # the simulator is stopping: so are the statuses waiting on it
            raise
        batch.done.set_result(status)

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
        target, head = self._head(url)
        request = _request(head, headers, raw)
        status: int | None = None
        for attempt in range(settings.webhook_retries + 1):
            entry["attempts"] = attempt + 1
            status = await self._attempt(target, request)
            entry["status"] = status
            if status is not None and (200 <= status < 300 or status in final):
                break
            if attempt < settings.webhook_retries:
                await asyncio.sleep(settings.retry_backoff * 2**attempt)
        entry["delivered_at"] = time.time()
        return status

    def _head(self, url: str) -> tuple[URL, bytes]:
        """The parsed URL and its request line + Host header, once per webhook URL."""
        known = self._heads.get(url)
        if known is None:
            target = URL(url)
            host = target.raw_host or ""
            if not target.is_default_port():
                host = f"{host}:{target.port}"
            line = f"POST {target.raw_path_qs} HTTP/1.1\r\nHost: {host}\r\n"
            known = self._heads[url] = (target, line.encode("latin-1"))
        return known

    async def _attempt(self, target: URL, request: bytes) -> int | None:
        if self._pool is None:
            raise RuntimeError("the simulator is not started")
        try:
            status, _ = await self._pool.post(target, request, self.state.settings.webhook_timeout)
        except (OSError, TimeoutError, httptools.HttpParserError):
            return None
        return status


def _request(head: bytes, headers: dict[str, str], raw: bytes) -> bytes:
    lines = "".join(f"{key}: {value}\r\n" for key, value in headers.items())
    return b"%s%sContent-Length: %d\r\n\r\n%s" % (head, lines.encode(), len(raw), raw)


def _evolution_jwt(secret: str) -> str:
    now = int(time.time())
    claims = {"iat": now, "exp": now + 600, "app": "evolution", "action": "webhook"}
    return jwt.encode(claims, secret, algorithm="HS256")
