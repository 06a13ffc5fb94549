"""The delivery loop: claim due deliveries, POST them signed, record the outcome and retry.

Claims use `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL (a conditional UPDATE on SQLite,
whose single writer makes it atomic), so several workers never send one delivery at once. A
claim is a lease: a worker that dies mid-request leaves the row to be claimed again when the
lease runs out. Retry policy: 10 s timeout, 3 retries after 1 s, 2 s, 4 s (settings), any
non-2xx, timeout or connection error being a failure; then the delivery is `failed` and kept.

Stopping (`stop_claiming`, then the runner's grace period): no more claims, the requests in
flight end (each within the timeout) and their outcomes are recorded; claimed deliveries still
waiting for a connection are given back (due at once for another worker). Cancelled before
they end, the answers already received are still recorded; the rest wait out their lease.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import orjson
from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.events.types import iso
from pytake.kit.crypto import SecretUnreadable, secret_box
from pytake.kit.net_guard import check_target
from pytake.kit.ssrf import UnsafeUrl
from pytake.kit.tasks import run_uncancelled
from pytake.models.base import utcnow
from pytake.models.event import OutboxEvent
from pytake.models.webhook import WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

EXCERPT_CHARS = 500
# Full batches one run delivers back to back before handing control back to the runner.
PIPELINED_BATCHES = 10


def sign(secret: str, body: bytes) -> str:
    """The X-PyTake-Signature value: `sha256=` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class DeliveryJob:
    id: uuid.UUID
    event_type: str
    attempts: int
    endpoint_id: uuid.UUID
    url: str
    secret_encrypted: str
    endpoint_active: bool
    body: bytes
    attempt_log: list[dict[str, Any]]


@dataclass
class DeliveryOutcome:
    job: DeliveryJob
    at: datetime
    ok: bool
    response_status: int | None = None
    excerpt: str | None = None
    duration_ms: int | None = None
    error: str | None = None
    # False: never sent (the loop was stopping when its turn for a connection came).
    attempted: bool = True


_RECORD_OUTCOME = (
    update(WebhookDelivery.__table__)  # type: ignore[arg-type]
    .where(WebhookDelivery.__table__.c.id == bindparam("delivery_id"))
    .values(
        claimed_until=None,
        status=bindparam("status"),
        last_attempt_at=bindparam("last_attempt_at"),
        response_status=bindparam("response_status"),
        response_excerpt=bindparam("response_excerpt"),
        duration_ms=bindparam("duration_ms"),
        error=bindparam("error"),
        attempt_log=bindparam("attempt_log"),
        delivered_at=bindparam("delivered_at"),
        next_attempt_at=bindparam("next_attempt_at"),
    )
)


class WebhookDeliveryLoop:
    name = "webhooks"

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        http: aiohttp.ClientSession,
        *,
        postgres: bool,
    ) -> None:
        self._factory = factory
        self._settings = settings
        self._http = http
        self._postgres = postgres
        self._lease = timedelta(seconds=settings.webhook_timeout_seconds + 30)
        self._semaphore = asyncio.Semaphore(settings.webhook_concurrency)
        # Keyed by the ciphertext itself: a rotated secret is a new ciphertext, so this never
        # signs with a stale secret; it saves the Fernet work per delivery.
        self._secrets: dict[str, str] = {}
        self._claiming = True
        self.delivered = 0

    def stop_claiming(self) -> None:
        """Claim nothing more: the batch in flight ends and is recorded (graceful stop)."""
        self._claiming = False

    async def run_once(self) -> float | None:
        """Deliver due batches while they come full, each batch's outcomes being recorded while
        the next is claimed and sent (its rows stay leased until then, so no claim takes them
        twice); the last outcomes are recorded before returning, even when cancelled."""
        recording: asyncio.Future[None] | None = None
        try:
            for _ in range(PIPELINED_BATCHES):
                jobs = await self._claim() if self._claiming else []
                if not jobs:
                    break
                outcomes = await self._attempt_all(jobs)
                if recording is not None:
                    await recording
                recording = asyncio.ensure_future(self._record(outcomes))
                if len(jobs) < self._settings.webhook_batch_size:
                    break
            else:
                return 0
        finally:
            if recording is not None:
                await recording
        return await self._next_due_in() if self._claiming else None

    # --- claiming ----------------------------------------------------------------------------

    def _due(self, now: datetime) -> Any:
        return or_(
            and_(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now),
            and_(WebhookDelivery.status == "delivering", WebhookDelivery.claimed_until < now),
        )

    async def _claim(self) -> list[DeliveryJob]:
        """Claim a batch of due deliveries; a cancel meanwhile gives them back."""
        return await run_uncancelled(self._claim_batch(), self._give_back)

    async def _give_back(self, jobs: list[DeliveryJob]) -> None:
        if not jobs:
            return
        async with unit_of_work(self._factory) as session:
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id.in_([job.id for job in jobs]),
                    WebhookDelivery.status == "delivering",
                )
                .values(
                    status="pending",
                    claimed_until=None,
                    attempts=WebhookDelivery.attempts - 1,
                )
                .execution_options(synchronize_session=False)
            )

    async def _claim_batch(self) -> list[DeliveryJob]:
        now = utcnow()
        due = (
            select(WebhookDelivery.id)
            .where(self._due(now))
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(self._settings.webhook_batch_size)
        )
        if self._postgres:
            due = due.with_for_update(skip_locked=True)
        # A CTE, not `IN (subquery)`: see pytake.message.sending.queue.claim_due.
        batch = due.cte("due")
        async with self._factory() as session:
            # A read first: an idle poll must not take SQLite's write lock.
            if (
                await session.scalar(select(WebhookDelivery.id).where(self._due(now)).limit(1))
                is None
            ):
                return []
        async with unit_of_work(self._factory) as session:
            ids = list(
                await session.scalars(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id.in_(select(batch.c.id)), self._due(now))
                    .values(
                        status="delivering",
                        claimed_until=now + self._lease,
                        attempts=WebhookDelivery.attempts + 1,
                    )
                    .returning(WebhookDelivery.id)
                    .execution_options(synchronize_session=False)
                )
            )
            if not ids:
                return []
            return await self._load_jobs(session, ids)

    async def _load_jobs(self, session: AsyncSession, ids: list[uuid.UUID]) -> list[DeliveryJob]:
        rows = await session.execute(
            select(
                WebhookDelivery.id,
                WebhookDelivery.event_type,
                WebhookDelivery.attempts,
                WebhookDelivery.payload,
                WebhookDelivery.organization_id,
                WebhookDelivery.attempt_log,
                WebhookEndpoint.id,
                WebhookEndpoint.url,
                WebhookEndpoint.secret_encrypted,
                WebhookEndpoint.is_active,
                OutboxEvent.payload,
                OutboxEvent.created_at,
            )
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .outerjoin(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
            .where(WebhookDelivery.id.in_(ids))
        )
        jobs = []
        for r in rows:
            document = r[3] or {
                "event": r[1],
                "timestamp": iso(r[11]),
                "organization_id": str(r[4]),
                "data": r[10],
            }
            body = orjson.dumps(document)
            jobs.append(
                DeliveryJob(r[0], r[1], r[2], r[6], r[7], r[8], r[9], body, list(r[5] or []))
            )
        return jobs

    # --- sending -----------------------------------------------------------------------------

    async def _attempt_all(self, jobs: list[DeliveryJob]) -> list[DeliveryOutcome]:
        """Every job's outcome. Cancelled meanwhile (a stop's grace ran out), the answers
        already in are recorded, shielded from the cancel; the rest keep their lease."""
        attempts = [asyncio.ensure_future(self._attempt(job)) for job in jobs]
        try:
            return list(await asyncio.gather(*attempts))
        except asyncio.CancelledError:
            answered = [
                a.result()
                for a in attempts
                if a.done() and not a.cancelled() and a.exception() is None
            ]
            if answered:
                log.info("recording %d deliveries answered before the cancel", len(answered))
                await asyncio.shield(self._record(answered))
            raise

    async def _attempt(self, job: DeliveryJob) -> DeliveryOutcome:
        at = utcnow()
        if not job.endpoint_active and job.event_type != "ping":
            return DeliveryOutcome(job, at, False, error="endpoint is disabled")
        try:
            secret = self._secret(job.secret_encrypted)
        except SecretUnreadable:
            return DeliveryOutcome(job, at, False, error="signing secret cannot be decrypted")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "PyTake-Webhooks/1.0",
            "X-PyTake-Event": job.event_type,
            "X-PyTake-Delivery": str(job.id),
            "X-PyTake-Signature": sign(secret, job.body),
        }
        started = time.perf_counter()
        async with self._semaphore:
            if not self._claiming:
                # Stopping: what has not started yet is given back, not sent during the grace.
                return DeliveryOutcome(job, at, False, attempted=False)
            outcome = await self._post(job, at, headers)
        outcome.duration_ms = round((time.perf_counter() - started) * 1000)
        return outcome

    def _secret(self, encrypted: str) -> str:
        secret = self._secrets.get(encrypted)
        if secret is None:
            if len(self._secrets) > 10_000:  # endpoints come and go; don't grow forever
                self._secrets.clear()
            secret = self._secrets[encrypted] = secret_box(self._settings).decrypt(encrypted)
        return secret

    async def _post(
        self, job: DeliveryJob, at: datetime, headers: dict[str, str]
    ) -> DeliveryOutcome:
        try:
            check_target(job.url, allow_private=self._settings.allow_private_urls)
            async with self._http.post(
                job.url, data=job.body, headers=headers, allow_redirects=False
            ) as resp:
                raw = await resp.content.read(4096)
                excerpt = raw.decode("utf-8", "replace")[:EXCERPT_CHARS]
                ok = 200 <= resp.status < 300
                return DeliveryOutcome(
                    job, at, ok, resp.status, excerpt, error=None if ok else "HTTP error"
                )
        except TimeoutError:
            return DeliveryOutcome(job, at, False, error="timed out")
        except UnsafeUrl as exc:
            return DeliveryOutcome(job, at, False, error=f"refused by the SSRF guard: {exc}")
        except aiohttp.ClientConnectorDNSError as exc:
            return DeliveryOutcome(
                job, at, False, error=f"address refused or unresolvable: {exc}"[:500]
            )
        except (aiohttp.ClientError, OSError) as exc:
            return DeliveryOutcome(job, at, False, error=f"{type(exc).__name__}: {exc}"[:500])

    # --- recording ---------------------------------------------------------------------------

    async def _record(self, outcomes: list[DeliveryOutcome]) -> None:
        await self._give_back([o.job for o in outcomes if not o.attempted])
        outcomes = [o for o in outcomes if o.attempted]
        if not outcomes:
            return
        rows = [self._outcome_row(o) for o in outcomes]
        async with unit_of_work(self._factory) as session:
            # One executemany for the batch: a round trip per row costs more than the sends.
            await session.execute(_RECORD_OUTCOME, rows)
            await self._track_endpoint_health(session, outcomes)
        self.delivered += sum(1 for o in outcomes if o.ok)

    def _outcome_row(self, o: DeliveryOutcome) -> dict[str, Any]:
        entry = {
            "at": iso(o.at),
            "response_status": o.response_status,
            "duration_ms": o.duration_ms,
            "error": o.error,
        }
        row: dict[str, Any] = {
            "delivery_id": o.job.id,
            "last_attempt_at": o.at,
            "response_status": o.response_status,
            "response_excerpt": o.excerpt,
            "duration_ms": o.duration_ms,
            "error": o.error,
            "attempt_log": [*o.job.attempt_log, entry],
            "delivered_at": None,
            "next_attempt_at": None,
        }
        retries_left = o.job.attempts <= self._settings.webhook_max_retries
        if o.ok:
            row.update(status="delivered", delivered_at=utcnow())
        elif retries_left and o.job.endpoint_active:
            delay = self._settings.webhook_backoff_base_seconds * 2 ** (o.job.attempts - 1)
            row.update(status="pending", next_attempt_at=utcnow() + timedelta(seconds=delay))
        else:
            row.update(status="failed")
        return row

    async def _track_endpoint_health(
        self, session: AsyncSession, outcomes: list[DeliveryOutcome]
    ) -> None:
        """Clear an endpoint's failure streak on success; disable it after a day of failures."""
        now = utcnow()
        succeeded = {o.job.endpoint_id for o in outcomes if o.ok}
        failed = {o.job.endpoint_id: o for o in outcomes if not o.ok}
        for endpoint_id in succeeded:
            failed.pop(endpoint_id, None)
        if succeeded:
            await session.execute(
                update(WebhookEndpoint)
                .where(
                    WebhookEndpoint.id.in_(succeeded), WebhookEndpoint.failing_since.is_not(None)
                )
                .values(failing_since=None)
            )
        for endpoint_id, outcome in failed.items():
            endpoint = await session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
            if endpoint is None or not endpoint.is_active:
                continue
            if endpoint.failing_since is None:
                endpoint.failing_since = now
            elif (now - endpoint.failing_since).total_seconds() >= (
                self._settings.webhook_disable_after_seconds
            ):
                endpoint.is_active = False
                endpoint.disabled_at = now
                reason = (
                    f"HTTP {outcome.response_status}" if outcome.response_status else outcome.error
                )
                endpoint.disabled_reason = (
                    f"Disabled after failing since {iso(endpoint.failing_since)}; "
                    f"last error: {reason}"
                )[:500]

    async def _next_due_in(self) -> float | None:
        async with self._factory() as session:
            next_at = await session.scalar(
                select(WebhookDelivery.next_attempt_at)
                .where(WebhookDelivery.status == "pending")
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(1)
            )
        if next_at is None:
            return None
        return max(0.0, (next_at - utcnow()).total_seconds())
