"""The fetch of inbound media: a background loop over the `media` table's pending rows.

Claimed rows are leased (`claimed_until`) and counted (`attempts`) at the claim, so a worker
that dies mid-download only delays its rows until the lease runs out, and an item that keeps
killing workers still runs out of attempts. Each fetch streams the provider's bytes into a
staging file while hashing them (memory stays flat whatever the size), checks Meta's sha256
and size, stores the file under its content key, and marks the row `stored`; a retryable
failure puts it back with exponential backoff, anything else (or the last attempt) marks it
`failed` with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.channel.providers import provider_for
from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.kit.crypto import SecretUnreadable
from pytake.kit.ssrf import UnsafeUrl
from pytake.kit.tasks import run_uncancelled
from pytake.media.events import record_media_updated
from pytake.media.inbound import FETCH_LOOP, MEDIA
from pytake.media.limits import LARGEST as LARGEST_MEDIA
from pytake.media.storage import MediaStorage, Staged, TooLarge, content_key, staging_dir
from pytake.models import Channel, Media, Message
from pytake.models.base import utcnow
from pytake.whatsapp.cloud import CloudProvider
from pytake.whatsapp.provider import ProviderError, WhatsAppProvider

log = logging.getLogger("pytake.media.fetch")

LEASE = timedelta(minutes=10)
REFILL_SECONDS = 0.05
PROVIDER_CACHE_SECONDS = 30.0
# Each write is a commit, and its events a bus message that wakes other loops: a few a second
# is enough for the console to see files arrive.
FLUSH_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class FetchTuning:
    """Knobs of the fetch (from settings; tests shrink the backoff)."""

    concurrency: int = 8
    max_attempts: int = 5
    backoff_seconds: float = 5.0
    backoff_max_seconds: float = 3600.0
    timeout_seconds: float = 120.0
    poll_seconds: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchTuning:
        return cls(
            concurrency=settings.media_fetch_concurrency,
            max_attempts=settings.media_fetch_max_attempts,
            backoff_seconds=settings.media_fetch_backoff_seconds,
            timeout_seconds=settings.media_fetch_timeout_seconds,
        )

    def backoff(self, attempts: int) -> timedelta:
        return timedelta(
            seconds=min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(0, attempts - 1))
        )


class FetchFailed(Exception):
    """A fetch that did not store the file; `retryable` says whether to try again."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class Claimed:
    """A leased pending row, as much of it as a fetch needs."""

    id: uuid.UUID
    organization_id: uuid.UUID
    channel_id: uuid.UUID | None
    message_id: uuid.UUID | None
    provider_media_id: str | None
    expected_sha256: str | None
    expected_size: int | None
    mime_type: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a fetch came to: `stored` (sha256, size, MIME type, came inline) or `failure`."""

    item: Claimed
    stored: tuple[str, int, str | None, bool] | None = None
    failure: FetchFailed | None = None


async def claim_due(session: AsyncSession, limit: int) -> list[Claimed]:
    """Lease up to `limit` due pending rows, the longest-waiting first."""
    now = utcnow()
    m = Media
    rows = (
        await session.execute(
            select(
                m.id,
                m.organization_id,
                m.channel_id,
                m.message_id,
                m.provider_media_id,
                m.expected_sha256,
                m.expected_size,
                m.mime_type,
                m.attempts,
            )
            .where(
                m.status == "pending",
                m.next_attempt_at <= now,
                or_(m.claimed_until.is_(None), m.claimed_until < now),
            )
            .order_by(m.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return []
    ids = [row.id for row in rows]
    await session.execute(
        update(m)
        .where(m.id.in_(ids))
        .values(claimed_until=now + LEASE, attempts=m.attempts + 1, updated_at=now)
    )
    return [Claimed(*row[:8], attempts=row.attempts + 1) for row in rows]


async def next_due_in(session: AsyncSession) -> float | None:
    """Seconds until the next pending row is due (None: none is pending)."""
    due = await session.scalar(
        select(Media.next_attempt_at)
        .where(Media.status == "pending")
        .order_by(Media.next_attempt_at)
        .limit(1)
    )
    if due is None:
        return None
    return max(0.0, (due - utcnow()).total_seconds())


def digest_matches(expected: str, sha256_hex: str) -> bool:
    """Meta gives sha256 as hex in some places and base64 in others; accept both."""
    expected = expected.strip()
    if expected.lower() == sha256_hex:
        return True
    try:
        return base64.b64decode(expected, validate=True).hex() == sha256_hex
    except (binascii.Error, ValueError):
        return False


class MediaFetchLoop:
    """The `media-fetch` background loop (runner protocol: `name`, `run_once`)."""

    name = FETCH_LOOP

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        http: aiohttp.ClientSession,
        storage: MediaStorage,
        tuning: FetchTuning | None = None,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.http = http
        self.storage = storage
        self.tuning = tuning or FetchTuning.from_settings(settings)
        self.staging = staging_dir(settings)
        self.fetched = 0
        self.claiming = True
        self._providers: dict[uuid.UUID | None, tuple[float, WhatsAppProvider]] = {}
        self._provider_lock = asyncio.Lock()

    def stop_claiming(self) -> None:
        """Claim nothing more; fetches in flight finish (the runner's graceful stop)."""
        self.claiming = False

    async def run_once(self) -> float | None:
        """Fetch what is due, `concurrency` at a time: a slot freed by a finished fetch is
        refilled at once from rows claimed ahead (no batch waits for its slowest download,
        and a claim takes several rows, not one per freed slot), and the outcomes are
        written together, one transaction every `FLUSH_SECONDS` at most."""
        in_flight: dict[asyncio.Task[Outcome], Claimed] = {}
        ready: deque[Claimed] = deque()
        done: list[Outcome] = []
        try:
            await self._drain(in_flight, ready, done)
        except BaseException:
            await self._abandon(in_flight, ready, done)
            raise
        async with self.factory() as session:
            due = await next_due_in(session)
        return self.tuning.poll_seconds if due is None else due

    async def _drain(
        self,
        in_flight: dict[asyncio.Task[Outcome], Claimed],
        ready: deque[Claimed],
        done: list[Outcome],
    ) -> None:
        concurrency = self.tuning.concurrency
        last_empty = last_flush = -1.0
        loop = asyncio.get_running_loop()
        while True:
            held = len(in_flight) + len(ready)
            # Claim ahead (up to twice the concurrency) once half of that is used up: one
            # claim transaction per `concurrency` fetches or so, where claiming each freed
            # slot cost one per fetch (a commit each, on the database ingest writes to). After
            # a claim found nothing, look again only now and then while fetches finish.
            if self.claiming and held <= concurrency and loop.time() - last_empty >= REFILL_SECONDS:
                claimed = await run_uncancelled(
                    self._claim(2 * concurrency - held), self._give_back
                )
                ready.extend(claimed)
                if not claimed:
                    last_empty = loop.time()
            if not self.claiming and ready:
                # Stopping: rows claimed but not started go back at once, for another worker.
                unstarted = list(ready)
                ready.clear()
                await run_uncancelled(self._give_back(unstarted), _nothing)
            while ready and len(in_flight) < concurrency:
                item = ready.popleft()
                in_flight[asyncio.create_task(self.fetch(item))] = item
            if done and (not in_flight or loop.time() - last_flush >= FLUSH_SECONDS):
                batch = done[:]
                done.clear()
                await run_uncancelled(self.record(batch), _nothing)
                last_flush = loop.time()
            if not in_flight and not done and not ready:
                return
            if in_flight:
                finished, _ = await asyncio.wait(
                    in_flight, timeout=REFILL_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                for task in finished:
                    del in_flight[task]
                    done.append(task.result())

    async def _claim(self, limit: int) -> list[Claimed]:
        async with unit_of_work(self.factory) as session:
            return await claim_due(session, limit)

    async def _abandon(
        self,
        in_flight: dict[asyncio.Task[Outcome], Claimed],
        ready: deque[Claimed],
        done: list[Outcome],
    ) -> None:
        """Cancelled (a stop past its grace): record the fetches that ended, and give back
        the ones cut short and the ones not started, attempt and lease, so any worker fetches
        them again at once rather than after the 10-minute lease (a fetch, unlike a send, is
        safe to repeat)."""
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        cut_short: list[Claimed] = list(ready)
        for task, item in in_flight.items():
            if task.cancelled() or task.exception() is not None:
                cut_short.append(item)
            else:
                done.append(task.result())
        batch = done[:]
        done.clear()

        async def settle() -> None:
            if batch:
                await self.record(batch)
            await self._give_back(cut_short)

        try:
            await asyncio.shield(settle())
        except Exception:
            log.exception("media fetch: after a cancel, recording what ended failed")

    async def _give_back(self, items: list[Claimed]) -> None:
        if not items:
            return
        async with unit_of_work(self.factory) as session:
            await session.execute(
                update(Media)
                .where(Media.id.in_([item.id for item in items]), Media.status == "pending")
                .values(claimed_until=None, attempts=Media.attempts - 1, updated_at=utcnow())
            )

    async def fetch(self, item: Claimed) -> Outcome:
        """Download and store one claimed item; a failure is the outcome, never raised."""
        try:
            return Outcome(item, stored=await self._download_and_store(item))
        except FetchFailed as exc:
            return Outcome(item, failure=exc)
        except Exception as exc:  # a bug or an unwrapped error: retried like a provider error
            log.exception("fetching media %s failed unexpectedly", item.id)
            return Outcome(item, failure=FetchFailed(f"internal error: {exc}", retryable=True))

    async def record(self, outcomes: list[Outcome]) -> None:
        """Write a batch of outcomes and their events in one transaction: one executemany
        UPDATE per kind of outcome, one read of the settled rows for the events."""
        now = utcnow()
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        settled: list[uuid.UUID] = []
        for outcome in outcomes:
            values, final = self._values(outcome, now)
            params = {"b_id": outcome.item.id, **{f"b_{k}": v for k, v in values.items()}}
            groups.setdefault(tuple(sorted(values)), []).append(params)
            if final:
                settled.append(outcome.item.id)
        async with unit_of_work(self.factory) as session:
            for names, rows in groups.items():
                stmt = (
                    update(MEDIA)
                    .where(MEDIA.c.id == bindparam("b_id"), MEDIA.c.status == "pending")
                    .values({name: bindparam(f"b_{name}") for name in names})
                )
                await session.execute(stmt, rows)
            for outcome in outcomes:
                if outcome.stored is not None and outcome.stored[3]:
                    await _drop_inline_base64(session, outcome.item.message_id)
            if settled:
                # `updated_at == now`: the rows this batch settled, not one a late twin did.
                rows_now = await session.execute(
                    select(MEDIA).where(MEDIA.c.id.in_(settled), MEDIA.c.updated_at == now)
                )
                await record_media_updated(session, list(rows_now.all()))
        self.fetched += sum(1 for o in outcomes if o.stored is not None)

    def _values(self, outcome: Outcome, now: datetime) -> tuple[dict[str, Any], bool]:
        """The row's new values, and whether it is settled (stored or failed for good)."""
        item = outcome.item
        values: dict[str, Any] = {"claimed_until": None, "updated_at": now}
        if outcome.stored is not None:
            sha256_hex, size, mime, _ = outcome.stored
            values.update(
                status="stored",
                sha256=sha256_hex,
                size=size,
                mime_type=mime or item.mime_type,
                storage_key=content_key(item.organization_id, sha256_hex),
                stored_at=now,
                error=None,
                next_attempt_at=None,
            )
            return values, True
        failure = outcome.failure
        assert failure is not None
        values["error"] = failure.reason[:500]
        if failure.retryable and item.attempts < self.tuning.max_attempts:
            values["next_attempt_at"] = now + self.tuning.backoff(item.attempts)
            return values, False
        log.warning(
            "media %s failed after %d attempt(s): %s", item.id, item.attempts, failure.reason
        )
        values.update(status="failed", next_attempt_at=None)
        return values, True

    async def _provider(self, item: Claimed) -> WhatsAppProvider:
        # A burst of media from one number builds its provider (a read, a decryption) once.
        async with self._provider_lock:  # concurrent misses build it once
            cached = self._providers.get(item.channel_id)
            if cached is not None and cached[0] > time.monotonic():
                return cached[1]
            provider = await self._build_provider(item)
            expires = time.monotonic() + PROVIDER_CACHE_SECONDS
            self._providers[item.channel_id] = (expires, provider)
            return provider

    async def _build_provider(self, item: Claimed) -> WhatsAppProvider:
        async with self.factory() as session:
            channel = await session.get(Channel, item.channel_id) if item.channel_id else None
        if channel is None:
            raise FetchFailed("the message's WhatsApp number was deleted", retryable=False)
        try:
            return await provider_for(channel, self.settings, self.http)
        except (UnsafeUrl, SecretUnreadable) as exc:
            raise FetchFailed(
                f"the WhatsApp number cannot be used: {exc}", retryable=False
            ) from exc

    async def _download_and_store(self, item: Claimed) -> tuple[str, int, str | None, bool]:
        if not item.provider_media_id:
            raise FetchFailed("the webhook named no media id", retryable=False)
        provider = await self._provider(item)
        with Staged(self.staging, limit=LARGEST_MEDIA) as staged:
            try:
                mime, expected_sha, expected_size, inline = await self._download(
                    item, provider, staged
                )
            except ProviderError as exc:
                raise FetchFailed(exc.plain_explanation[:500], retryable=exc.retryable) from exc
            except TooLarge as exc:
                raise FetchFailed(f"the file is {exc}", retryable=False) from exc
            sha256_hex = staged.finish()
            if expected_size is not None and staged.size != expected_size:
                raise FetchFailed(
                    f"size mismatch: WhatsApp said {expected_size} bytes, got {staged.size}",
                    retryable=True,
                )
            if expected_sha and not digest_matches(expected_sha, sha256_hex):
                raise FetchFailed(
                    "sha256 mismatch: the downloaded bytes are not the file WhatsApp described",
                    retryable=True,
                )
            key = content_key(item.organization_id, sha256_hex)
            if not await self.storage.exists(key):
                await self.storage.put_file(key, staged.path, mime or "application/octet-stream")
            return sha256_hex, staged.size, mime, inline

    async def _download(
        self, item: Claimed, provider: WhatsAppProvider, staged: Staged
    ) -> tuple[str | None, str | None, int | None, bool]:
        """Write the bytes into `staged`; returns the MIME type, Meta's sha256 and size, and
        whether the bytes came inline in the webhook."""
        media_id = item.provider_media_id or ""
        if isinstance(provider, CloudProvider):
            return (*await self._download_cloud(item, provider, media_id, staged), False)
        inline = await self._inline_base64(item)
        if inline is not None:
            staged.write(inline)
            return item.mime_type, item.expected_sha256, item.expected_size, True
        content = await provider.download_media(media_id)  # Evolution: base64 of one message
        staged.write(content.data)
        mime = item.mime_type or content.mime_type
        return mime, item.expected_sha256, item.expected_size, False

    async def _download_cloud(
        self, item: Claimed, provider: CloudProvider, media_id: str, staged: Staged
    ) -> tuple[str | None, str | None, int | None]:
        # Download URLs live minutes: on a 401/404 a fresh one is asked for, once.
        for fresh_url in (False, True):
            info = await provider.get_media_url(media_id)
            try:
                async for chunk in provider.iter_media(
                    info.url, seconds=self.tuning.timeout_seconds
                ):
                    staged.write(chunk)
            except ProviderError as exc:
                if fresh_url or exc.http_status not in (401, 403, 404) or staged.size:
                    raise
                log.info(
                    "media %s: download URL refused (%s), asking a fresh one",
                    item.id,
                    exc.http_status,
                )
                continue
            sha = item.expected_sha256 or info.sha256
            size = item.expected_size if item.expected_size is not None else info.file_size
            return info.mime_type or item.mime_type, sha, size
        raise AssertionError("unreachable")

    async def _inline_base64(self, item: Claimed) -> bytes | None:
        """Evolution may carry the bytes in the webhook (`base64: true`)."""
        if item.message_id is None:
            return None
        async with self.factory() as session:
            content = await session.scalar(
                select(Message.content).where(Message.id == item.message_id)
            )
        encoded = (content or {}).get("base64")
        if not isinstance(encoded, str) or not encoded:
            return None
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return None


async def _nothing(_: None) -> None:
    """A write cut off by a cancel has nothing to undo (run_uncancelled finished it)."""


async def _drop_inline_base64(session: AsyncSession, message_id: uuid.UUID | None) -> None:
    """The bytes are stored now: the message row need not carry them any more."""
    if message_id is None:
        return
    message = await session.get(Message, message_id)
    if message is not None and isinstance(message.content, dict) and "base64" in message.content:
        message.content = {k: v for k, v in message.content.items() if k != "base64"}
