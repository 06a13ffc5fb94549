"""record(): the outbox row and the after-commit publish; nothing for a rolled-back change."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pytake.config import Settings
from pytake.db import create_engine, create_session_factory, unit_of_work
from pytake.events import CommittedEvent, DomainEvent, record, record_many
from pytake.events import relay as relay_module
from pytake.events.bus import decode_bus_message, encode_bus_message
from pytake.events.relay import EventsRelay
from pytake.models import OutboxEvent, UnpublishedEvents
from tests.conftest import Org, client_for, register_org
from tests.events.helpers import eventually, inbound_message, produce, running_app, wait_until


class Collector:
    def __init__(self, org_id: str) -> None:
        self.org_id = org_id
        self.events: list[CommittedEvent] = []

    def __call__(self, events: list[CommittedEvent]) -> None:
        self.events.extend(e for e in events if e.organization_id == self.org_id)

    def types(self) -> list[str]:
        return [e.type for e in self.events]


@pytest.fixture
def collector(app: FastAPI, org: Org) -> Collector:
    c = Collector(org.id)
    app.state.runtime.bus.on_events(c)
    return c


async def _rows(app: FastAPI, org_id: str) -> list[OutboxEvent]:
    async with app.state.session_factory() as session:
        return list(
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.organization_id == uuid.UUID(org_id))
                .order_by(OutboxEvent.id)
            )
        )


async def _unpublished(app: FastAPI) -> set[int]:
    """Every event id an `events_unpublished` row still lists."""
    async with app.state.session_factory() as session:
        lists = await session.scalars(select(UnpublishedEvents.event_ids))
        return {event_id for ids in lists for event_id in ids}


async def test_committed_event_is_stored_published_and_marked(
    app: FastAPI, org: Org, collector: Collector
) -> None:
    data = inbound_message()
    await produce(app, org.id, "message.received", data)
    await wait_until(lambda: collector.types() == ["message.received"])
    event = collector.events[0]
    assert event.data == data
    assert event.timestamp.endswith("Z")

    async def marked() -> bool:
        rows = await _rows(app, org.id)
        return len(rows) == 1 and rows[0].id not in await _unpublished(app)

    await eventually(marked)
    (row,) = await _rows(app, org.id)
    assert row.id == event.id and row.type == "message.received" and row.payload == data


async def test_rolled_back_change_publishes_nothing(
    app: FastAPI, org: Org, collector: Collector
) -> None:
    with pytest.raises(RuntimeError):
        async with unit_of_work(app.state.session_factory) as session:
            await record(session, uuid.UUID(org.id), "contact.created", {"contact": {"id": "x"}})
            raise RuntimeError("the change fails")
    # A later committed event arrives alone: the rolled-back one was never queued before it.
    await produce(app, org.id, "contact.updated", {"contact": {"id": "y"}})
    await wait_until(lambda: collector.types() != [])
    assert collector.types() == ["contact.updated"]
    assert [r.type for r in await _rows(app, org.id)] == ["contact.updated"]


async def test_rolled_back_savepoint_drops_only_its_events(
    app: FastAPI, org: Org, collector: Collector
) -> None:
    async with unit_of_work(app.state.session_factory) as session:
        await record(session, uuid.UUID(org.id), "contact.created", {"contact": {"id": "kept"}})
        with pytest.raises(RuntimeError):
            async with session.begin_nested():
                await record(
                    session, uuid.UUID(org.id), "contact.updated", {"contact": {"id": "dropped"}}
                )
                raise RuntimeError("inner step fails")
    await produce(app, org.id, "conversation.created", {"conversation": {"id": "c"}})
    await wait_until(lambda: len(collector.events) >= 2)
    assert collector.types() == ["contact.created", "conversation.created"]
    assert [r.type for r in await _rows(app, org.id)] == ["contact.created", "conversation.created"]


async def test_unknown_event_type_is_refused(app: FastAPI, org: Org) -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        async with unit_of_work(app.state.session_factory) as session:
            await record(session, uuid.UUID(org.id), "message.exploded", {})


async def test_relay_publishes_an_event_committed_without_a_publisher(
    make_settings: Callable[..., Settings], fresh_database_url: str
) -> None:
    """A process that commits and dies before publishing: the relay carries the row later.

    On a database of its own: in the shared one the relay first carries every earlier test's
    unpublished leftovers (apps stopped or killed before publishing), 20 a round, and that
    backlog grows with the suite (it outgrew a 60 s wait)."""
    settings = make_settings(
        database_url=fresh_database_url,
        run_background_loops=True,
        events_relay_grace_seconds=0.05,
    )
    async with running_app(settings) as relaying, client_for(relaying) as client:
        await _relay_scenario(relaying, await register_org(client))


async def _relay_scenario(relaying: FastAPI, org: Org) -> None:
    collector = Collector(org.id)
    relaying.state.runtime.bus.on_events(collector)
    # An engine no running app owns: its commits are never published directly.
    orphan = create_engine(relaying.state.settings.database_url)
    try:
        async with unit_of_work(create_session_factory(orphan)) as session:
            await record(session, uuid.UUID(org.id), "contact.created", {"contact": {"id": "1"}})
    finally:
        await orphan.dispose()
    await wait_until(lambda: collector.types() == ["contact.created"])

    (row,) = await _rows(relaying, org.id)

    async def marked() -> bool:
        return row.id not in await _unpublished(relaying)

    await eventually(marked)


async def test_a_batch_of_events_keeps_its_order_in_ids_rows_and_publication(
    app: FastAPI, org: Org, collector: Collector
) -> None:
    # record_many inserts a batch with one statement (arrays on PostgreSQL); each event must
    # get its own payload, ids must ascend in the batch's order, and the bus publish them so.
    org_id = uuid.UUID(org.id)
    batch = [
        DomainEvent(org_id, kind, {"n": n, "contact": {"id": uuid.uuid4()}})
        for n, kind in enumerate(
            ["contact.created", "conversation.created"] + ["message.read"] * 60
        )
    ]
    async with unit_of_work(app.state.session_factory) as session:
        await record_many(session, batch)
    await wait_until(lambda: len(collector.events) == len(batch))
    assert [e.data["n"] for e in collector.events] == list(range(len(batch)))
    assert collector.types() == [e.type for e in batch]
    rows = await _rows(app, org.id)
    assert [r.payload["n"] for r in rows[-len(batch) :]] == list(range(len(batch)))
    assert [r.type for r in rows[-len(batch) :]] == [e.type for e in batch]
    assert [r.id for r in rows[-len(batch) :]] == [e.id for e in collector.events]
    assert rows[-1].payload["contact"]["id"] == str(batch[-1].data["contact"]["id"])


def test_events_cross_the_bus_unchanged_and_unparsed() -> None:
    # The producer sends each payload's recorded text as is; receivers slice it out by its
    # length in bytes and parse it only when read, so multi-byte text and escapes must survive.
    data = {"message": {"id": str(uuid.uuid4()), "text": 'quote " \\ ção 🎉\n'}, "n": [1, 2]}
    recorded = CommittedEvent(7, "org-1", "message.received", None, "2026-11-24T00:00:00Z",
                              data_json=orjson.dumps(data))  # fmt: skip
    other = CommittedEvent(
        8, "org-2", "contact.created", {"contact": {"id": "c"}}, "2026-11-24T00:00:01Z"
    )
    raw = encode_bus_message([recorded, other], {"webhooks", "dispatcher"})
    events, wake = decode_bus_message(raw)
    assert events == [recorded, other] and wake == ["dispatcher", "webhooks"]
    assert [e.id for e in events] == [7, 8] and events[0].data == data
    # A message of the JSON format before this one is still read (rolling upgrades).
    old = orjson.dumps({"events": [recorded.as_dict(), other.as_dict()], "wake": ["webhooks"]})
    assert decode_bus_message(old) == ([recorded, other], ["webhooks"])
    for broken in (raw[:-1], raw + b"x"):
        with pytest.raises(ValueError):
            decode_bus_message(broken)
    with pytest.raises(ValueError):
        CommittedEvent(1, "org", "message.received", None, "2026-11-24T00:00:00Z")


async def test_the_relay_publishes_missed_batches_in_bounded_rounds(
    app: FastAPI, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches a process committed but never published go out in id order, a few batches per
    round so that one publish stays bounded, and each batch's row goes with its round."""
    monkeypatch.setattr(relay_module, "MAX_EVENTS", 3)
    orphan = create_engine(app.state.settings.database_url)  # no bus: nothing is published
    try:
        for n in range(3):
            async with unit_of_work(create_session_factory(orphan)) as session:
                await record_many(
                    session,
                    [
                        DomainEvent(uuid.UUID(org.id), "contact.created", {"n": n, "i": i})
                        for i in range(2)
                    ],
                )
    finally:
        await orphan.dispose()
    published: list[list[tuple[int, int]]] = []

    class Bus:
        async def publish(self, events: list[CommittedEvent], wake: object = ()) -> None:
            mine = [e for e in events if e.organization_id == org.id]
            published.append([(e.data["n"], e.data["i"]) for e in mine])

    relay = EventsRelay(app.state.session_factory, Bus(), grace_seconds=0)  # type: ignore[arg-type]
    while await relay.run_once() == 0:
        pass
    rounds = [r for r in published if r]
    assert rounds == [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(2, 0), (2, 1)]]
    assert not {e.id for e in await _rows(app, org.id)} & await _unpublished(app)
