"""The realtime bus: committed events reach every subscriber of every process.

Without Redis it is in-process. With settings.redis_url each batch is published once on a Redis
channel and every process (this one included) dispatches what it receives, so a socket on any
`serve` process sees an event committed in any other. After publishing, the batches'
`events_unpublished` rows are deleted; events a crashed process never published are picked up
by the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import Table, bindparam, delete, event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from pytake.db import unit_of_work
from pytake.events.outbox import PENDING_KEY, WAKE_KEY, PendingEvent, drop_rolled_back
from pytake.events.types import CommittedEvent
from pytake.kit.tasks import cancel_and_wait
from pytake.models.event import UnpublishedEvents

log = logging.getLogger(__name__)

EventsSubscriber = Callable[[list[CommittedEvent]], None]
WakeSubscriber = Callable[[str], None]

_BUSES: weakref.WeakKeyDictionary[Engine, EventBus] = weakref.WeakKeyDictionary()

# Marking batches published waits this long so that one DELETE covers every publish of the
# period: at 500 events/s a mark per publish was ~8 % of a producer's CPU (bench/realtime.py).
# Far below events_relay_grace_seconds (5 s), so the relay does not mistake a batch for a
# missed one.
MARK_EVERY_SECONDS = 0.2
# Ids of events delivered here during a Redis outage, kept to skip their later publish.
_DELIVERED_HERE_MAX = 100_000

_UNPUBLISHED = cast(Table, UnpublishedEvents.__table__)
# Core and built once; an expanding IN works on both engines and is rendered per execution.
_MARK_PUBLISHED = delete(_UNPUBLISHED).where(
    _UNPUBLISHED.c.id.in_(bindparam("ids", expanding=True))
)


class EventBus:
    """Publishes committed events in batches; dispatches received ones to subscribers."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        redis: Redis | None = None,
        channel: str = "pytake:events",
    ) -> None:
        self._factory = session_factory
        self._redis = redis
        self._channel = channel
        self._outgoing: asyncio.Queue[tuple[list[CommittedEvent], set[str], set[int]]] = (
            asyncio.Queue()
        )
        self._event_subscribers: list[EventsSubscriber] = []
        self._wake_subscribers: list[WakeSubscriber] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._unmarked: list[int] = []
        self._marked = asyncio.Event()
        self._running = False
        self.published = 0
        # Events delivered in this process while Redis was down (see _deliver_here).
        self._delivered_here: OrderedDict[int, None] = OrderedDict()
        self._redis_down = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, engine: AsyncEngine) -> None:
        self._running = True
        _BUSES[engine.sync_engine] = self
        self._tasks.append(asyncio.create_task(self._publish_loop(), name="events-publisher"))
        self._tasks.append(asyncio.create_task(self._mark_loop(), name="events-marker"))
        if self._redis is not None:
            self._tasks.append(asyncio.create_task(self._redis_listener(), name="events-listener"))
            await self._subscribed.wait()

    def run_alongside(self, work: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        """Run `work` as a task of the bus (it uses the bus's Redis): stop() cancels it."""
        if self._running:
            self._tasks.append(asyncio.create_task(work(), name=name))

    async def stop(self, engine: AsyncEngine) -> None:
        self._running = False
        _BUSES.pop(engine.sync_engine, None)
        # Let what was committed go out before shutting down.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._drain()
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks, 5.0, log)

    async def _drain(self) -> None:
        await self._outgoing.join()
        if self._unmarked:
            ids, self._unmarked = self._unmarked, []
            await self._mark_published(ids)

    # --- subscribing -------------------------------------------------------------------------

    def on_events(self, subscriber: EventsSubscriber) -> None:
        self._event_subscribers.append(subscriber)

    def on_wake(self, subscriber: WakeSubscriber) -> None:
        self._wake_subscribers.append(subscriber)

    # --- publishing --------------------------------------------------------------------------

    def committed(self, events: list[CommittedEvent], wake: set[str], markers: set[int]) -> None:
        """Called right after a commit (synchronously); publishing happens in the background.
        `markers`: the `events_unpublished` rows listing these events."""
        self._outgoing.put_nowait((events, wake, markers))

    async def publish(self, events: list[CommittedEvent], wake: Iterable[str] = ()) -> None:
        """Carry events (and wake-ups) to every process, including this one."""
        # No blanket wake-up of the webhook loop with every event: a transaction that created
        # webhook deliveries asks for it (pytake.events.outbox.record_many), and one of the
        # worker's webhook claims per publish, for deliveries that mostly do not exist, cost
        # the chatbot bench ~0.16 ms of CPU per answered message (bench/chatbots.py).
        wake = set(wake)
        if self._redis is not None:
            try:
                await self._redis.publish(self._channel, encode_bus_message(events, wake))
            except (RedisError, OSError) as exc:
                self._deliver_here(events, wake, exc)
                raise  # unpublished: the relay carries them to the other processes later
            if self._redis_down:
                self._redis_down = False
                log.warning("events: Redis is back; publishing to every process again")
        else:
            self._dispatch(events, wake)
        self.published += len(events)

    def _deliver_here(self, events: list[CommittedEvent], wake: set[str], exc: Exception) -> None:
        """Redis is down: this process's subscribers get the events now. Their ids are kept so
        that the relay's publish, once Redis is back, does not deliver them here twice."""
        if not self._redis_down:
            self._redis_down = True
            log.warning("events: Redis unreachable (%s); delivering in this process only", exc)
        fresh = [e for e in events if e.id not in self._delivered_here]
        self._delivered_here.update((e.id, None) for e in fresh)
        while len(self._delivered_here) > _DELIVERED_HERE_MAX:
            self._delivered_here.popitem(last=False)
        self._dispatch(fresh, wake)

    async def _publish_loop(self) -> None:
        while True:
            events, wake, markers = await self._outgoing.get()
            taken = 1
            # Coalesce whatever else committed meanwhile into one publish.
            while not self._outgoing.empty():
                more, more_wake, more_markers = self._outgoing.get_nowait()
                taken += 1
                events = events + more
                wake |= more_wake
                markers |= more_markers
            try:
                await self.publish(events, wake)
                if markers:
                    # Marking is bookkeeping for the relay; it must not delay the next publish.
                    self._unmarked.extend(markers)
                    self._marked.set()
            except (RedisError, OSError):
                pass  # delivered here, left to the relay for the others (see _deliver_here)
            except Exception:
                # The rows stay unpublished; the relay will carry them.
                log.exception("publishing %d events failed", len(events))
            finally:
                for _ in range(taken):
                    self._outgoing.task_done()

    async def _mark_loop(self) -> None:
        while True:
            await self._marked.wait()
            await asyncio.sleep(MARK_EVERY_SECONDS)
            self._marked.clear()
            ids, self._unmarked = self._unmarked, []
            if not ids:
                continue  # stop() marked them meanwhile
            try:
                await self._mark_published(ids)
            except Exception:
                log.exception(
                    "marking %d events published failed (the relay may repeat them)", len(ids)
                )

    async def _mark_published(self, ids: list[int]) -> None:
        async with unit_of_work(self._factory) as session:
            await session.execute(_MARK_PUBLISHED, {"ids": ids})

    # --- receiving ---------------------------------------------------------------------------

    def _dispatch(self, events: list[CommittedEvent], wake: Iterable[str]) -> None:
        if events:
            for subscriber in self._event_subscribers:
                try:
                    subscriber(events)
                except Exception:
                    log.exception("event subscriber failed")
        for name in wake:
            for wake_subscriber in self._wake_subscribers:
                wake_subscriber(name)

    async def _redis_listener(self) -> None:
        assert self._redis is not None
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    self._subscribed.set()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._receive(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("events listener lost Redis; reconnecting")
                self._subscribed.set()  # never block start-up on a Redis outage
                await asyncio.sleep(1)

    def _receive(self, raw: bytes) -> None:
        try:
            events, wake = decode_bus_message(raw)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed bus message")
            return
        if self._delivered_here:
            events = [e for e in events if not self._was_delivered_here(e.id)]
        self._dispatch(events, wake)

    def _was_delivered_here(self, event_id: int) -> bool:
        if event_id in self._delivered_here:
            del self._delivered_here[event_id]  # it comes back at most once
            return True
        return False


# A bus message on Redis: this line, a JSON header, a newline, then the events' payloads back to
# back. The header lists each event's id, organisation, type, timestamp and payload length in
# bytes, so a receiver slices the payloads out without parsing them: every process receives
# every event, and most events have no subscriber in most processes (no socket of that
# organisation there). Parsing them all was a tenth of a process's CPU at 20,000 statuses/s.
BUS_FORMAT = b"pytake-events/1\n"


def encode_bus_message(events: list[CommittedEvent], wake: Iterable[str]) -> bytes:
    payloads = [e.data_json() for e in events]
    header = {
        "wake": sorted(wake),
        "events": [
            [e.id, e.organization_id, e.type, e.timestamp, len(p)]
            for e, p in zip(events, payloads, strict=True)
        ],
    }
    return b"".join([BUS_FORMAT, orjson.dumps(header), b"\n", *payloads])


def decode_bus_message(raw: bytes) -> tuple[list[CommittedEvent], list[str]]:
    """The events and wake-ups of a bus message. Also reads the JSON messages of versions
    before `BUS_FORMAT` (`{"events": [event dicts], "wake": [...]}`), for rolling upgrades."""
    if not raw.startswith(BUS_FORMAT):
        message: dict[str, Any] = orjson.loads(raw)
        return [CommittedEvent.from_dict(e) for e in message.get("events", [])], list(
            message.get("wake", [])
        )
    end = raw.index(b"\n", len(BUS_FORMAT))
    header: dict[str, Any] = orjson.loads(raw[len(BUS_FORMAT) : end])
    events: list[CommittedEvent] = []
    at = end + 1
    for event_id, organization_id, type_, timestamp, size in header["events"]:
        payload = raw[at : at + size]
        if len(payload) != size:
            raise ValueError("a bus message shorter than its header says")
        at += size
        events.append(
            CommittedEvent(
                int(event_id), str(organization_id), str(type_), None, str(timestamp),
                data_json=payload,
            )
        )  # fmt: skip
    if at != len(raw):
        raise ValueError("a bus message longer than its header says")
    return events, list(header["wake"])


def bus_for(bind: Any) -> EventBus | None:
    return _BUSES.get(bind) if isinstance(bind, Engine) else None


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending: list[PendingEvent] | None = session.info.pop(PENDING_KEY, None)
    wake: set[str] | None = session.info.pop(WAKE_KEY, None)
    if not pending and not wake:
        return
    bus = bus_for(session.get_bind())
    if bus is None:
        # No running app owns this engine (a script): the relay publishes these later.
        return
    pending = pending or []
    bus.committed([p.event for p in pending], wake or set(), {p.marker for p in pending})


@event.listens_for(Session, "after_soft_rollback")
def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    drop_rolled_back(session, previous_transaction)
