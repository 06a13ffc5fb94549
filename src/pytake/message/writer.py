"""Group commit for Meta webhooks: one writer per process stores many requests in one transaction.

A webhook request parses its body and hands it to the writer, then waits. The writer takes
every body waiting at that moment (up to a bound), and in one transaction finds their numbers,
checks each body's signature, and stores all their events with one set of multi-row statements
(pytake.message.ingest.ingest_parts). Each request's future is resolved only after that
transaction has committed, so a 200 still means "durably stored". Bodies that arrive while a
batch commits form the next batch: no timer, no added latency when traffic is light.

A body that fails its own checks (unknown number, bad signature) is refused alone. When the
transaction itself fails, nothing of it is kept, and each of its bodies is retried alone, so one
poisonous body (or a deadlock with another process) cannot fail the others; a body that fails
alone gets the error (a 5xx, and Meta retries).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.config import Settings
from pytake.errors import AuthenticationFailed, NotFound, PyTakeError
from pytake.kit.sql import among, statement
from pytake.message.ingest import ChannelRef, IngestResult, ingest_parts
from pytake.message.signatures import MetaSignatures
from pytake.message.tables import whatsapp_configs
from pytake.whatsapp.events import (
    InboundMessage,
    MessageEcho,
    ProviderEvent,
    StatusUpdate,
    TemplateStatusUpdate,
)

log = logging.getLogger(__name__)

# Bounds a batch's statements (bind parameters, lock lists) and its latency.
MAX_BATCH_BODIES = 256
MAX_BATCH_EVENTS = 2_000
# Bodies that must be waiting before a further batch starts while one is in flight (see
# `submit`). bench/ingest.py, two processes, 1-message bodies: always overlapping, 3,300-3,900
# bodies/s at 0.47-0.55 ms of CPU each; waiting for 8 or 24 bodies, 4,100 at 0.40-0.44 ms.
OVERLAP_AT = 16


@dataclass(slots=True)
class MetaDelivery:
    """One Meta webhook request: its raw body, signature header and parsed events by number."""

    raw: bytes
    signature: str | None
    grouped: dict[str, list[ProviderEvent]]
    future: asyncio.Future[IngestResult] = field(init=False)
    size: int = field(init=False)
    touches: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.size = sum(len(events) for events in self.grouped.values())
        self.touches = frozenset(_touched(key, e) for key, ev in self.grouped.items() for e in ev)


def _touched(number: str, event: ProviderEvent) -> str:
    """What an event changes, for ordering: a message's status, a customer's conversation, or
    (anything else) the number itself."""
    if isinstance(event, StatusUpdate):
        return "m:" + event.provider_message_id
    if isinstance(event, InboundMessage):
        return f"p:{number}:{event.sender}"
    if isinstance(event, MessageEcho):
        return f"p:{number}:{event.recipient}"
    return "n:" + number


@dataclass(frozen=True, slots=True)
class _ChannelRoute:
    id: uuid.UUID
    organization_id: uuid.UUID
    phone_number_id: str | None
    business_account_id: str | None
    app_secret_encrypted: str | None

    @property
    def ref(self) -> ChannelRef:
        return ChannelRef(self.id, self.organization_id, "official")


@dataclass
class WriterStats:
    """Counters for tests and benchmarks."""

    batches: int = 0
    bodies: int = 0
    largest_batch: int = 0
    failed_batches: int = 0
    retried_alone: int = 0
    most_in_flight: int = 0  # batches whose transactions overlapped at most


class IngestWriter:
    """The process's group-commit writer for Meta webhooks (see the module docstring)."""

    def __init__(self, factory: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._factory = factory
        self._settings = settings
        self._waiting: list[MetaDelivery] = []
        self._draining = 0  # drains running; counted down in the drain itself (see _drain)
        self._tasks: set[asyncio.Task[None]] = set()  # holds references to running drains
        self._in_flight = 0
        # What the batches in flight touch (see _take); counted, as bodies of one batch overlap.
        self._in_flight_touches: Counter[str] = Counter()
        # Two batches in flight let one be parsed and sent while the other waits on the
        # database; more added nothing measurable. SQLite has a single writer anyway.
        sqlite = settings.database_url.startswith("sqlite")
        self._max_drains = 1 if sqlite else max(1, settings.ingest_concurrent_batches)
        self._signatures = MetaSignatures(settings)
        self.stats = WriterStats()

    async def submit(self, delivery: MetaDelivery) -> IngestResult:
        """Queue a body and wait until its batch has committed (or it was refused)."""
        loop = asyncio.get_running_loop()
        delivery.future = loop.create_future()
        self._waiting.append(delivery)
        # A further batch overlaps the one in flight only once enough bodies wait for it: a
        # batch costs a dozen statements whatever its size, so many small batches in flight
        # spend the CPU that the bodies themselves need.
        if self._draining == 0 or (
            self._draining < self._max_drains and len(self._waiting) >= OVERLAP_AT
        ):
            self._draining += 1
            task = loop.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # If the caller goes away the body is still stored; Meta's retry is then a duplicate.
        return await delivery.future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._take()
                if not batch:  # all wait for the batch in flight, whose drain takes them next
                    return
                touches = [delivery.touches for delivery in batch]
                self._in_flight_touches.update(t for group in touches for t in group)
                try:
                    await self._write(batch)
                except BaseException as exc:  # cancelled at shutdown: nobody may wait forever
                    _fail(batch + self._waiting, exc)
                    self._waiting = []
                    raise
                finally:
                    for group in touches:
                        self._in_flight_touches.subtract(group)
                    self._in_flight_touches = +self._in_flight_touches
        finally:
            # No await between the empty check and this: a body submitted from now on sees
            # the free slot and starts a drain (a done-callback would leave a gap).
            self._draining -= 1

    def _take(self) -> list[MetaDelivery]:
        """The next batch, in arrival order. With two batches in flight, a body that touches
        what the other batch touches (a message's status, a customer) waits for it: one
        process then commits a number's changes to a message or customer in the order Meta
        sent them (`delivered` before `read`, so both events are recorded)."""
        blocked = set(self._in_flight_touches)
        batch: list[MetaDelivery] = []
        later: list[MetaDelivery] = []
        events = 0
        for index, delivery in enumerate(self._waiting):
            if batch and (
                len(batch) >= MAX_BATCH_BODIES or events + delivery.size > MAX_BATCH_EVENTS
            ):
                later += self._waiting[index:]
                break
            if blocked and not blocked.isdisjoint(delivery.touches):
                blocked |= delivery.touches  # what follows it must not overtake it either
                later.append(delivery)
                continue
            batch.append(delivery)
            events += delivery.size
        self._waiting = later
        return batch

    async def _write(self, batch: list[MetaDelivery]) -> None:
        self.stats.batches += 1
        self.stats.bodies += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        try:
            outcomes = await self._transaction(batch)
        except Exception as exc:
            self.stats.failed_batches += 1
            if len(batch) == 1:
                _fail(batch, exc)
                return
            log.warning(
                "ingest batch of %d bodies failed (%r); retrying each alone", len(batch), exc
            )
            self.stats.retried_alone += len(batch)
            for delivery in batch:
                await self._write([delivery])
            return
        for delivery, outcome in zip(batch, outcomes, strict=True):
            _resolve(delivery, outcome)

    async def _transaction(self, batch: list[MetaDelivery]) -> list[IngestResult | PyTakeError]:
        """One transaction for the batch; returns each body's result or its refusal."""
        self._in_flight += 1
        self.stats.most_in_flight = max(self.stats.most_in_flight, self._in_flight)
        try:
            return await self._store(batch)
        finally:
            self._in_flight -= 1

    async def _store(self, batch: list[MetaDelivery]) -> list[IngestResult | PyTakeError]:
        async with self._factory() as session, session.begin():
            keys = {key for delivery in batch for key in delivery.grouped}
            routes = await _channels_for(session, keys)
            outcomes: list[IngestResult | PyTakeError] = []
            work: dict[_ChannelRoute, list[tuple[int, list[ProviderEvent]]]] = {}
            for index, delivery in enumerate(batch):
                targets = self._targets(delivery, routes)
                if isinstance(targets, PyTakeError):
                    outcomes.append(targets)
                    continue
                outcomes.append(IngestResult())
                for route, events in targets:
                    work.setdefault(route, []).append((index, events))
            # In channel id order, like every lock this transaction takes.
            for route, parts in sorted(work.items(), key=lambda item: item[0].id):
                results = await ingest_parts(
                    session, self._settings, route.ref, [events for _, events in parts]
                )
                for (index, _), result in zip(parts, results, strict=True):
                    outcome = outcomes[index]
                    assert isinstance(outcome, IngestResult)
                    outcome.merge(result)
        return outcomes

    def _targets(
        self, delivery: MetaDelivery, routes: list[_ChannelRoute]
    ) -> list[tuple[_ChannelRoute, list[ProviderEvent]]] | PyTakeError:
        """The numbers a body's events go to; every number it names must be configured and
        the body signed with the app secret of one of them (as Meta signs per app)."""
        keys = set(delivery.grouped)
        mine = [c for c in routes if {c.phone_number_id, c.business_account_id} & keys]
        if not mine and delivery.signature and _account_level_only(delivery):
            # Meta retries anything but a 200 for days: a Business Account nobody here has
            # configured (any more) is acknowledged and its template news dropped.
            log.info("template webhook for unknown account(s) %s ignored", ", ".join(sorted(keys)))
            return []
        if not mine:
            return NotFound(
                "No WhatsApp configuration for phone_number_id " + ", ".join(sorted(keys))
            )
        verified = self._authenticate(delivery, mine)
        if not verified:
            return AuthenticationFailed("Invalid or missing X-Hub-Signature-256")
        targets = []
        for key, events in delivery.grouped.items():
            serving = [c for c in verified if _serves(c, key, events)]
            if not serving:
                log.warning("webhook events for unconfigured number %s dropped", key)
            targets += [(route, events) for route in serving]
        return targets

    def _authenticate(
        self, delivery: MetaDelivery, numbers: list[_ChannelRoute]
    ) -> list[_ChannelRoute]:
        """The edge's signature check: the numbers whose app secret signed the body."""
        return [
            route
            for route in numbers
            if self._signatures.signed_with(
                route.id, route.app_secret_encrypted, delivery.raw, delivery.signature
            )
        ]


async def _channels_for(session: AsyncSession, keys: Iterable[str]) -> list[_ChannelRoute]:
    c = whatsapp_configs.c
    stmt = statement(
        session,
        "writer_configs",
        lambda: (
            select(
                c.id,
                c.organization_id,
                c.phone_number_id,
                c.business_account_id,
                c.app_secret_encrypted,
            )
            .where(
                c.provider == "official",
                or_(
                    among(session, c.phone_number_id, "keys"),
                    among(session, c.business_account_id, "keys"),
                ),
            )
            .order_by(c.id)
        ),
    )
    rows = await session.execute(stmt, {"keys": list(set(keys))})
    return [_ChannelRoute(*row) for row in rows.all()]


def _account_level_only(delivery: MetaDelivery) -> bool:
    return all(
        isinstance(e, TemplateStatusUpdate) for events in delivery.grouped.values() for e in events
    )


def _serves(route: _ChannelRoute, key: str, events: list[ProviderEvent]) -> bool:
    if all(isinstance(e, TemplateStatusUpdate) for e in events):
        return route.business_account_id == key
    return route.phone_number_id == key


def _resolve(delivery: MetaDelivery, outcome: IngestResult | PyTakeError) -> None:
    if delivery.future.done():  # the request was cancelled
        return
    if isinstance(outcome, PyTakeError):
        delivery.future.set_exception(outcome)
    else:
        delivery.future.set_result(outcome)


def _fail(batch: list[MetaDelivery], exc: BaseException) -> None:
    for delivery in batch:
        if delivery.future.done():
            continue
        if isinstance(exc, Exception):
            delivery.future.set_exception(exc)
        else:
            delivery.future.cancel()
