"""`record()`: the one call producers make, inside the transaction of the change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import (
    ARRAY,
    String,
    Table,
    Text,
    Uuid,
    bindparam,
    column,
    func,
    insert,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from pytake.events.types import EVENT_TYPES, CommittedEvent, dumps, iso
from pytake.kit.sql import is_postgresql
from pytake.models.base import UTCDateTime, utcnow
from pytake.models.event import OutboxEvent, UnpublishedEvents
from pytake.webhook.fanout import deliveries_from, fan_out

_EVENTS = cast(Table, OutboxEvent.__table__)
_UNPUBLISHED = cast(Table, UnpublishedEvents.__table__)
# Statements built once (a reused statement keeps its cache key). Core, not the ORM's bulk
# insert: ingest records ten events per status body, and the ORM's per-row bookkeeping was a
# tenth of a status batch's CPU.
_INSERT_EVENTS = insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True)
_INSERT_UNPUBLISHED = insert(_UNPUBLISHED).returning(_UNPUBLISHED.c.id)


def _insert_events_from_arrays() -> Any:
    """PostgreSQL, one statement: the batch as three arrays, inserted in their order (WITH
    ORDINALITY, so the sequence gives the rows ascending ids in that order whatever order
    RETURNING uses), the batch's `events_unpublished` row, and the webhook deliveries. One row
    comes back per event: (event id, the `events_unpublished` row's id, deliveries created)."""
    new = (
        func.unnest(
            bindparam("orgs", type_=ARRAY(Uuid())),
            bindparam("types", type_=ARRAY(String())),
            # JSON text, cast by PostgreSQL: the payloads were serialised once already.
            bindparam("payloads", type_=ARRAY(Text())),
        )
        .table_valued(
            column("organization_id", Uuid()),
            column("type", String()),
            column("payload", Text()),
            with_ordinality="ord",
        )
        .render_derived(name="new")
    )
    now = bindparam("now", type_=UTCDateTime())
    payload = sql_cast(new.c.payload, JSONB())
    rows = select(new.c.organization_id, new.c.type, payload, now).order_by(new.c.ord)
    columns = ["organization_id", "type", "payload", "created_at"]
    events = (
        insert(_EVENTS)
        .from_select(columns, rows)
        .returning(_EVENTS.c.id, _EVENTS.c.organization_id, _EVENTS.c.type)
        .cte("events_in")
    )
    marker = (
        insert(_UNPUBLISHED)
        .from_select(["event_ids", "created_at"], select(func.array_agg(events.c.id), now))
        .returning(_UNPUBLISHED.c.id)
        .cte("marker")
    )
    # The webhook deliveries, joined here rather than read into Python and inserted back: one
    # round trip fewer per batch, none per event.
    deliveries = deliveries_from(events, now)
    return select(
        events.c.id,
        select(marker.c.id).scalar_subquery(),
        select(func.count()).select_from(deliveries).scalar_subquery(),
    )


_INSERT_EVENTS_FROM_ARRAYS = _insert_events_from_arrays()


async def _insert_events(
    session: AsyncSession, events: list[DomainEvent], texts: list[bytes], now: datetime
) -> tuple[list[int], int, int | None]:
    """Insert outbox rows (`texts`: their payloads as JSON) and their `events_unpublished`
    row: the events' ids, in the order of `events`, that row's id, and (PostgreSQL, where the
    same statement creates them) how many webhook deliveries were created; None elsewhere."""
    if not is_postgresql(session):
        rows = [
            {
                "organization_id": e.organization_id,
                "type": e.type,
                "payload": orjson.loads(text),
                "created_at": now,
            }
            for e, text in zip(events, texts, strict=True)
        ]
        ids = list((await session.scalars(_INSERT_EVENTS, rows)).all())
        marker = await session.scalar(_INSERT_UNPUBLISHED, {"event_ids": ids, "created_at": now})
        return ids, int(marker), None
    # One parameter set whatever the batch size: SQLAlchemy's per-row parameter handling of an
    # executemany was most of what recording ten status events cost.
    params = {
        "orgs": [e.organization_id for e in events],
        "types": [e.type for e in events],
        "payloads": [text.decode() for text in texts],
        "now": now,
    }
    result = (await session.execute(_INSERT_EVENTS_FROM_ARRAYS, params)).all()
    return sorted(row[0] for row in result), result[0][1], result[0][2]


PENDING_KEY = "pytake.events.pending"
WAKE_KEY = "pytake.events.wake"


@dataclass(slots=True)
class PendingEvent:
    """A recorded event waiting for its transaction to commit. `marker` is the id of the
    `events_unpublished` row that lists it, deleted once the bus has carried it."""

    event: CommittedEvent
    marker: int
    transaction: SessionTransaction | None


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """One event to record: what happened, in which organisation, with its payload."""

    organization_id: uuid.UUID
    type: str
    data: dict[str, Any]


async def record(
    session: AsyncSession, organization_id: uuid.UUID, type: str, data: dict[str, Any]
) -> None:
    """Record a domain event in the caller's transaction.

    Writes the outbox row and a webhook delivery for each of the organisation's active endpoints
    subscribed to `type`; the realtime bus carries it only after the transaction commits.
    """
    await record_many(session, [DomainEvent(organization_id, type, data)])


async def record_many(session: AsyncSession, events: list[DomainEvent]) -> None:
    """Record several events with one INSERT each for the outbox and the deliveries.

    For batch producers (webhook ingest, the dispatcher), where a round trip per event would
    dominate the cost of the change itself.
    """
    if not events:
        return
    for event in events:
        if event.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event.type!r}")
    now = utcnow()
    # Serialised once: PostgreSQL stores the text and the bus publishes it as is.
    texts = [dumps(e.data) for e in events]
    ids, marker, deliveries = await _insert_events(session, events, texts, now)
    if deliveries is None:
        deliveries = await fan_out(session, [(e.organization_id, e.type) for e in events], ids, now)
    if deliveries:
        wake_after_commit(session, "webhooks")
    sync = session.sync_session
    pending: list[PendingEvent] = sync.info.setdefault(PENDING_KEY, [])
    transaction = _innermost_transaction(sync)
    timestamp = iso(now)
    for event_id, event, text in zip(ids, events, texts, strict=True):
        committed = CommittedEvent(
            event_id, str(event.organization_id), event.type, None, timestamp, data_json=text
        )
        pending.append(PendingEvent(committed, marker, transaction))


def wake_after_commit(session: AsyncSession, loop_name: str) -> None:
    """Wake a background loop (in every process) once this transaction commits."""
    session.sync_session.info.setdefault(WAKE_KEY, set()).add(loop_name)


def _innermost_transaction(sync: Session) -> SessionTransaction | None:
    return sync.get_nested_transaction() or sync.get_transaction()


def drop_rolled_back(sync: Session, rolled_back: SessionTransaction) -> None:
    """Forget events recorded inside a transaction (or savepoint) that rolled back."""
    pending: list[PendingEvent] | None = sync.info.get(PENDING_KEY)
    if not pending:
        return
    kept = [p for p in pending if not _within(p.transaction, rolled_back)]
    if kept:
        sync.info[PENDING_KEY] = kept
    else:
        sync.info.pop(PENDING_KEY, None)
        sync.info.pop(WAKE_KEY, None)


def _within(txn: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while txn is not None:
        if txn is ancestor:
            return True
        txn = txn.parent
    return False
