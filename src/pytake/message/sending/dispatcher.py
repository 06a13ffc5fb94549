"""The dispatcher: claim queued messages, send them, record what happened.

One `run_once` drains what is due as a pipeline: it keeps up to `concurrency` sends in flight
(what throughput needs: 1,000/s at 100 ms is 100 in flight, by Little's law), claims more in
batches as slots free up instead of waiting for the slowest send of a batch, and writes the
outcomes in batches (one transaction every `flush_seconds` or `batch_size` outcomes).
Retryable failures go back to `queued` with backoff and jitter; after `max_attempts` they fail.
Rows left in `sending` by a dead worker are reconciled from status webhooks
(see queue.reconcile_stale), never blindly resent.

Stopping (`stop_claiming`, then the runner's grace period): no more claims, the sends in flight
end and their outcomes are written, so a deploy leaves nothing in `sending`. Cancelled before
they end, what already came back is written and the rest is reconciled after the lease.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, fields
from datetime import timedelta

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.channel.providers import provider_for
from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.events import DomainEvent, record_many
from pytake.events.payloads import message_status
from pytake.kit.crypto import SecretUnreadable
from pytake.kit.ssrf import UnsafeUrl
from pytake.kit.tasks import run_uncancelled, sleep_until_woken
from pytake.media.outbound import OutboundMedia, uses_stored_media
from pytake.message.sending import queue
from pytake.message.sending.queue import RetryPolicy, SendJob, SendOutcome
from pytake.models import Channel
from pytake.models.base import utcnow
from pytake.whatsapp.provider import ProviderError, WhatsAppProvider

log = logging.getLogger(__name__)
# A batch of outcomes whose write failed is written again, up to this many attempts in all.
WRITE_ATTEMPTS = 4
WRITE_RETRY_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class SendingTuning:
    """Knobs of sending; read from Settings fields named `sending_<name>` when they exist."""

    batch_size: int = 200
    # Sends in flight; the injected aiohttp session's connector limit must be at least this.
    concurrency: int = 200
    max_attempts: int = 6
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    # A `sending` row older than this is reconciled; must exceed the provider timeout.
    lease_seconds: float = 120.0
    # After a timeout (the provider may have taken it), look for its status webhook this soon.
    ambiguous_recheck_seconds: float = 30.0
    # How long `POST /v1/messages` waits for the provider before answering 202 queued.
    request_wait_seconds: float = 5.0
    provider_cache_seconds: float = 30.0
    poll_seconds: float = 1.0
    reconcile_every_seconds: float = 5.0
    # Outcomes wait at most this long to be written with others (sent_at is the provider's
    # answer time, so this delays only the row update, not the recorded time).
    flush_seconds: float = 0.05
    # After a claim came back short, claim again this soon while sends are still in flight.
    reclaim_seconds: float = 0.05

    @classmethod
    def from_settings(cls, settings: Settings) -> SendingTuning:
        values = {
            f.name: getattr(settings, f"sending_{f.name}")
            for f in fields(cls)
            if hasattr(settings, f"sending_{f.name}")
        }
        return cls(**values)

    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.max_attempts,
            self.backoff_base_seconds,
            self.backoff_max_seconds,
            self.lease_seconds,
            self.ambiguous_recheck_seconds,
        )


def worker_id(role: str = "worker") -> str:
    """A claim owner unique to this process (host, pid, random suffix)."""
    return f"{role}:{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ProviderCache:
    """Providers per WhatsApp number, rebuilt every few seconds (channel edits show up)."""

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        http: aiohttp.ClientSession,
        ttl: float,
    ) -> None:
        self._factory, self._settings, self._http, self._ttl = factory, settings, http, ttl
        self._cache: dict[uuid.UUID, tuple[float, WhatsAppProvider | ProviderError]] = {}
        self._building: dict[uuid.UUID, asyncio.Lock] = {}
        # Files sent by PyTake media id (uploaded to the number on first use).
        self.media = OutboundMedia(factory, settings)

    async def get(self, channel_id: uuid.UUID | None) -> WhatsAppProvider:
        """The provider of a number; raises a non-retryable ProviderError when it cannot send."""
        if channel_id is None:
            raise _unusable("the message's WhatsApp number was deleted")
        cached = self._cache.get(channel_id)
        if cached is None or cached[0] < time.monotonic():
            # One rebuild per number: when an entry expires, every send in flight (up to the
            # concurrency, 200) would otherwise rebuild it at once, each with its own session
            # and query (measured: 2,014 rebuilds in a 5,000-message campaign run).
            async with self._building.setdefault(channel_id, asyncio.Lock()):
                cached = self._cache.get(channel_id)
                if cached is None or cached[0] < time.monotonic():
                    cached = (time.monotonic() + self._ttl, await self._build(channel_id))
                    self._cache[channel_id] = cached
        if isinstance(cached[1], ProviderError):
            raise cached[1]
        return cached[1]

    async def _build(self, channel_id: uuid.UUID) -> WhatsAppProvider | ProviderError:
        async with self._factory() as session:
            channel = await session.scalar(select(Channel).where(Channel.id == channel_id))
        if channel is None:
            return _unusable("the message's WhatsApp number was deleted")
        if not channel.is_active:
            return _unusable(f"the WhatsApp number '{channel.name}' is inactive")
        try:
            return await provider_for(channel, self._settings, self._http)
        except (UnsafeUrl, SecretUnreadable) as exc:
            return _unusable(f"the WhatsApp number '{channel.name}' cannot be used: {exc}")


def _unusable(reason: str) -> ProviderError:
    return ProviderError(reason, retryable=False, kind="not_supported", details=reason)


async def send_one(providers: ProviderCache, job: SendJob) -> SendOutcome:
    """Send one job; a provider failure becomes the outcome, it is not raised."""
    try:
        provider = await providers.get(job.channel_id)
        outbound = job.outbound()
        if uses_stored_media(outbound) and job.channel_id is not None:
            result = await providers.media.send(
                provider, job.organization_id, job.channel_id, outbound
            )
        else:
            result = await provider.send(outbound)
    except ProviderError as exc:
        return SendOutcome(job, error=exc)
    return SendOutcome(job, result=result, at=utcnow())


async def send_jobs(
    providers: ProviderCache, jobs: list[SendJob], concurrency: int
) -> list[SendOutcome]:
    """Send every job (at most `concurrency` at once); failures become outcomes, not raises."""
    limit = asyncio.Semaphore(concurrency)

    async def one(job: SendJob) -> SendOutcome:
        async with limit:
            return await send_one(providers, job)

    return list(await asyncio.gather(*(one(job) for job in jobs)))


class Dispatcher:
    """The `dispatch` background loop (runner protocol: `name`, `run_once`)."""

    name = "dispatch"

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        providers: ProviderCache,
        tuning: SendingTuning,
        worker: str | None = None,
    ) -> None:
        self.factory = factory
        self.providers = providers
        self.tuning = tuning
        self.policy = tuning.policy()
        self.worker = worker or worker_id()
        self._last_reconcile = 0.0
        self._wakeup = asyncio.Event()
        self.claiming = True
        self.sent = 0

    def stop_claiming(self) -> None:
        """Claim nothing more: the sends in flight end and are recorded (graceful stop)."""
        self.claiming = False

    async def run_once(self) -> float | None:
        """Drain what is due; returns seconds until more work is due (0 = at once)."""
        if self.claiming:
            await self._maybe_reconcile()
        await _Drain(self).run()
        if not self.claiming:
            return None
        async with self.factory() as session:
            return await queue.next_due_in(session)

    async def claim(self, limit: int) -> list[SendJob]:
        """Claim up to `limit` due messages; a cancel meanwhile gives them back."""
        return await run_uncancelled(self._claim(limit), self._give_back)

    async def _claim(self, limit: int) -> list[SendJob]:
        async with unit_of_work(self.factory) as session:
            return await queue.claim_due(session, self.worker, limit)

    async def _give_back(self, jobs: list[SendJob]) -> None:
        if jobs:
            async with unit_of_work(self.factory) as session:
                await queue.release_claims(session, self.worker, [job.id for job in jobs])

    async def record(self, outcomes: list[SendOutcome]) -> None:
        """Write a batch of outcomes in one transaction."""
        async with unit_of_work(self.factory) as session:
            await queue.record_outcomes(session, self.worker, outcomes, self.policy)
            await record_events(session, outcomes)
        self.sent += sum(1 for o in outcomes if o.status == "sent")

    async def _maybe_reconcile(self) -> None:
        if time.monotonic() - self._last_reconcile < self.tuning.reconcile_every_seconds:
            return
        self._last_reconcile = time.monotonic()
        await self.reconcile()

    async def reconcile(self) -> tuple[int, int]:
        """Settle abandoned `sending` rows and statuses that raced their wamid."""
        async with unit_of_work(self.factory) as session:
            adopted, requeued = await queue.reconcile_stale(session, self.policy)
            await queue.apply_late_statuses(session, timedelta(hours=1))
        if adopted or requeued:
            log.info("reconciled sending rows: %d adopted, %d requeued", adopted, requeued)
        return adopted, requeued

    def wake(self) -> None:
        """Cut the current sleep short (a message was queued in this process)."""
        self._wakeup.set()

    async def run_forever(self) -> None:
        """Standalone loop (for `serve` without the worker runner, benchmarks and tests)."""
        while True:
            self._wakeup.clear()
            try:
                due = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatch batch failed; retrying after a pause")
                due = self.tuning.poll_seconds
            if due is not None and due <= 0:
                continue
            timeout = (
                self.tuning.poll_seconds if due is None else min(due, self.tuning.poll_seconds)
            )
            await sleep_until_woken(self._wakeup, timeout)


class _Drain:
    """One run of the pipeline: claim, keep sends in flight, write outcomes in batches.

    Sends run as tasks that only append their outcome; this coroutine alone claims and starts
    the writes (one at a time, in the background), so the database sees a few statements per
    batch whatever the concurrency. It is woken when
    enough slots are free to claim a batch, when a batch of outcomes is ready, or on a timer.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.d = dispatcher
        tuning = dispatcher.tuning
        self.capacity = tuning.concurrency
        # Claim when a quarter of the slots is free: fewer, fuller claims, sends never run dry.
        self.claim_at = max(1, min(tuning.batch_size, tuning.concurrency // 4))
        self.flush_at = tuning.batch_size
        self.tasks: set[asyncio.Task[None]] = set()
        self.done: list[SendOutcome] = []
        self.writing: set[asyncio.Future[None]] = set()
        self.progress = asyncio.Event()
        self.short_claim_at: float | None = None
        self.last_flush = time.monotonic()
        self.failed: BaseException | None = None

    async def run(self) -> None:
        try:
            await self._pump()
        except BaseException:
            await self._abandon()
            raise

    async def _pump(self) -> None:
        tuning = self.d.tuning
        while True:
            if self._may_claim():
                want = min(self.capacity - len(self.tasks), tuning.batch_size)
                jobs = await self.d.claim(want)
                self.short_claim_at = time.monotonic() if len(jobs) < want else None
                for job in jobs:
                    self._start(job)
            if self.failed is not None:
                raise self.failed
            # One write at a time, in the background: claims and sends go on while it commits,
            # so slots freed meanwhile are refilled instead of waiting for it.
            if self.done and not self.writing and self._flush_due():
                batch, self.done = self.done, []
                self.last_flush = time.monotonic()
                self._write(batch)
            if not (self.tasks or self.done or self.writing) and (
                self.short_claim_at is not None or not self.d.claiming
            ):
                return  # nothing in flight, and nothing more was due (or may be claimed)
            await self._wait(tuning.flush_seconds)

    def _may_claim(self) -> bool:
        if not self.d.claiming or self.capacity - len(self.tasks) < self.claim_at:
            return False
        if self.short_claim_at is None:
            return True
        # The queue ran dry; look again only now and then while sends finish.
        return bool(self.tasks) and (
            time.monotonic() - self.short_claim_at >= self.d.tuning.reclaim_seconds
        )

    def _flush_due(self) -> bool:
        return (
            len(self.done) >= self.flush_at
            or not self.tasks
            or time.monotonic() - self.last_flush >= self.d.tuning.flush_seconds
        )

    def _start(self, job: SendJob) -> None:
        task = asyncio.create_task(self._send(job))
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    async def _send(self, job: SendJob) -> None:
        try:
            outcome = await send_one(self.d.providers, job)
        except Exception:
            # Not a provider answer (a bug, or an error the adapter did not wrap): whether the
            # provider took it is unknown, so the row stays `sending` for reconciliation.
            log.exception("sending message %s failed unexpectedly", job.id)
            return
        # Appended only now: `done` is swapped for a new list at every flush.
        self.done.append(outcome)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if (
            len(self.done) >= self.flush_at
            or not self.tasks
            or (self.capacity - len(self.tasks) >= self.claim_at and self.short_claim_at is None)
        ):
            self.progress.set()

    async def _wait(self, at_most: float) -> None:
        if not self.tasks and not self.writing:
            return
        self.progress.clear()
        timer = asyncio.get_running_loop().call_later(at_most, self.progress.set)
        try:
            await self.progress.wait()
        finally:
            timer.cancel()

    async def _abandon(self) -> None:
        """Cancelled or failed: stop the sends and keep what already came back.

        A cancelled send may have reached the provider, so its row stays `sending` for
        reconciliation; outcomes already known are written, shielded from the cancellation.
        """
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.done:
            batch, self.done = self.done, []
            self._write(batch)
        # A write is its own task and outlives the cancel of the drain: finish them all
        # before the drain reports itself stopped, so no answer is still in the air.
        await asyncio.gather(*self.writing, return_exceptions=True)

    def _write(self, batch: list[SendOutcome]) -> None:
        # Its own task, not cancelled with the drain: a cancel must not roll back answers
        # already received.
        write = asyncio.ensure_future(self._record(batch))
        self.writing.add(write)
        write.add_done_callback(self._written)

    async def _record(self, batch: list[SendOutcome]) -> None:
        """Write the outcomes, again after a failed attempt (a deadlock, a dropped connection:
        the transaction rolled back whole). Given up, the rows would stay `sending` until
        their lease ran out, and those whose status webhooks never came be sent again."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                await self.d.record(batch)
                return
            except Exception:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                log.warning("writing %d send outcomes failed; again", len(batch), exc_info=True)
                await asyncio.sleep(WRITE_RETRY_SECONDS * 2**attempt)

    def _written(self, write: asyncio.Future[None]) -> None:
        self.writing.discard(write)
        if not write.cancelled() and write.exception() is not None:
            self.failed = self.failed or write.exception()
        self.progress.set()


async def record_events(session: AsyncSession, outcomes: list[SendOutcome]) -> None:
    """message.sent / message.failed for each settled outcome, in the outcomes' transaction
    (one batch of inserts however many outcomes)."""
    await record_many(
        session, [_outcome_event(o) for o in outcomes if o.status in ("sent", "failed")]
    )


def _outcome_event(outcome: SendOutcome) -> DomainEvent:
    job = outcome.job
    return message_status(
        job.organization_id,
        message_id=job.id,
        whatsapp_message_id=outcome.result.provider_message_id if outcome.result else None,
        conversation_id=job.conversation_id,
        type=job.type,
        status=outcome.status,
        at=outcome.at or utcnow(),
        error=queue.stored_error(outcome.error) if outcome.error is not None else None,
    )


def build_dispatcher(
    factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: aiohttp.ClientSession,
    tuning: SendingTuning | None = None,
) -> Dispatcher:
    """The dispatch loop for a process (register it with the worker runner)."""
    tuning = tuning or SendingTuning.from_settings(settings)
    providers = ProviderCache(factory, settings, http, tuning.provider_cache_seconds)
    return Dispatcher(factory, providers, tuning)
