"""Delivery statuses of outbound messages: forward only (sent < delivered < read; failed is
terminal), idempotent, order-independent; a status for an unknown message waits as pending."""

from __future__ import annotations

import uuid
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import SAWarning
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.events import DomainEvent, record_many
from pytake.events.payloads import message_status
from pytake.kit.sql import BatchSource, among, insert_for, is_postgresql, statement
from pytake.message.sending.reupload import requeue_vanished_media
from pytake.message.tables import messages, pending_statuses
from pytake.models.base import UTCDateTime, utcnow
from pytake.whatsapp.events import StatusUpdate

# The statuses a message may be in for each incoming status to move it forward.
_BEFORE: dict[str, tuple[str, ...]] = {
    "sent": ("queued", "sending"),
    "delivered": ("queued", "sending", "sent"),
    "read": ("queued", "sending", "sent", "delivered"),
}
_STAMP = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at", "failed": "failed_at"}


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One status to apply, from a webhook or from the pending table."""

    provider_message_id: str
    status: str
    occurred_at: datetime
    error_code: int | None = None
    error_title: str | None = None
    error_details: str | None = None

    @classmethod
    def from_event(cls, event: StatusUpdate) -> StatusChange:
        error = event.errors[0] if event.errors else None
        return cls(
            provider_message_id=event.provider_message_id,
            status=event.status,
            occurred_at=event.timestamp,
            error_code=error.code if error else None,
            error_title=(error.title or error.message) if error else None,
            error_details=(error.details or error.plain_explanation) if error else None,
        )


def _changes(session: AsyncSession) -> BatchSource:
    """Where an UPDATE reads each change's values (arrays on PostgreSQL, else executemany)."""
    return BatchSource(
        session,
        "change",
        pid=String(),
        ts=UTCDateTime(),
        code=Integer(),
        title=String(),
        details=String(),
    )


# The PostgreSQL statement below joins `change` to `messages` inside a scalar subquery, which
# SQLAlchemy's FROM linter does not see as a join; a join it would see lets the planner pick
# the hash join over every message again (see _advance_statement).
warnings.filterwarnings(
    "ignore",
    message=r'UPDATE statement has a cartesian product between FROM element\(s\) "(change|messages)"',
    category=SAWarning,
)


def _advance_statement(status: str, change: Any, arrays: bool = False) -> Any:
    """UPDATE moving messages forward to `status` (outbound messages only; failed is final)."""
    m = messages
    where = and_(
        m.c.channel_id == bindparam("b_channel"),
        m.c.provider_message_id == change.pid,
        m.c.direction == "outbound",
        m.c.status != "failed",
    )
    if arrays:
        # PostgreSQL: each change finds its message by a lookup of (channel, wamid). Joined
        # directly, a prepared statement's generic plan — with the channel's row count
        # underestimated (statistics of a young table, or autovacuum off) — scanned every
        # message of the channel through `channel_id = $1` and filtered the join: 15 ms per
        # status batch at 3,000 messages, growing with the table (bench/campaigns.py), against
        # 0.15 ms this way whatever the statistics.
        found = messages.alias("found")
        message_id = (
            select(found.c.id)
            .where(
                found.c.channel_id == bindparam("b_channel"),
                found.c.provider_message_id == change.pid,
            )
            .correlate_except(found)
            .scalar_subquery()
        )
        where = and_(m.c.id == message_id, m.c.direction == "outbound", m.c.status != "failed")
    now = bindparam("b_now", type_=UTCDateTime())
    if status == "failed":
        return (
            update(m)
            .where(where)
            .values(
                status="failed",
                failed_at=change.ts,
                error_code=change.code,
                error_title=change.title,
                error_details=change.details,
                updated_at=now,
            )
        )
    stamp = m.c[_STAMP[status]]
    # Timestamps of skipped steps are still worth keeping (a late `delivered` after `read`).
    return (
        update(m)
        .where(where)
        .values(
            # Not `in_()`: its expanding parameter cannot run as executemany.
            status=case(
                (or_(*(m.c.status == s for s in _BEFORE[status])), status), else_=m.c.status
            ),
            **{stamp.name: func.coalesce(stamp, change.ts)},
            updated_at=now,
        )
    )


async def _apply_known(
    session: AsyncSession,
    channel_id: uuid.UUID,
    changes: list[StatusChange],
    before: dict[str, Any] | None = None,
) -> None:
    """Move the messages forward and record an event per real move. `before` is the messages'
    current state when the caller has already read (and locked) it."""
    by_status: dict[str, list[StatusChange]] = defaultdict(list)
    # In provider id order, so that concurrent batches lock the messages in one order.
    for change in sorted(changes, key=lambda c: c.provider_message_id):
        by_status[change.status].append(change)
    if before is None:
        found = await _current_states(session, channel_id, {c.provider_message_id for c in changes})
        before = {pid: row for pid, row in found.items() if row.direction == "outbound"}
    resent = await requeue_vanished_media(session, channel_id, by_status.get("failed", ()), before)
    if resent:
        # Queued again under no wamid: what else this batch says of the old one is moot.
        by_status = {
            status: [c for c in group if c.provider_message_id not in resent]
            for status, group in by_status.items()
        }
    await _advance(session, channel_id, by_status)
    await record_many(session, _status_events(before, by_status))


# PostgreSQL: one lookup of (channel, wamid) per id, in a LATERAL subquery with a LIMIT (which
# the planner cannot flatten into a join), each locking its row — in the order of the sorted
# array the nested loop walks. As `channel_id = $1 AND provider_message_id = ANY($2)` the
# prepared statement's generic plan could probe the channel's whole prefix of the unique
# index: it was 48-67 % of the database's busy time in bench/campaigns.py runs at 10,000 and
# 20,000 recipients, all on CPU.
_STATES_PG = text(
    """
    SELECT found.provider_message_id, found.id, found.organization_id, found.conversation_id,
           found.status, found.direction, found.type
    FROM unnest(CAST(:ids AS varchar[])) WITH ORDINALITY AS wanted(pid, n)
    JOIN LATERAL (
        SELECT m.provider_message_id, m.id, m.organization_id, m.conversation_id, m.status,
               m.direction, m.type
        FROM messages AS m
        WHERE m.channel_id = :channel AND m.provider_message_id = wanted.pid
        LIMIT 1
        FOR UPDATE
    ) AS found ON true
    ORDER BY wanted.n
    """
)


async def _current_states(
    session: AsyncSession, channel_id: uuid.UUID, provider_ids: set[str]
) -> dict[str, Any]:
    """The messages (either direction) with these provider ids, locked on PostgreSQL in
    provider id order (as the UPDATEs will), so that what we compare against is what the
    UPDATEs change. One statement answers which ids are ours, which are inbound, and where
    each outbound message stands."""
    ids = sorted(provider_ids)
    if is_postgresql(session):
        rows = await session.execute(_STATES_PG, {"channel": channel_id, "ids": ids})
        return {row.provider_message_id: row for row in rows.all()}
    m = messages

    def build() -> Any:
        return (
            select(
                m.c.provider_message_id,
                m.c.id,
                m.c.organization_id,
                m.c.conversation_id,
                m.c.status,
                m.c.direction,
                m.c.type,
            )
            .where(
                m.c.channel_id == bindparam("channel"),
                among(session, m.c.provider_message_id, "ids"),
            )
            .order_by(m.c.provider_message_id)
        )

    stmt = statement(session, "message_states", build)
    rows = await session.execute(stmt, {"channel": channel_id, "ids": ids})
    return {row.provider_message_id: row for row in rows.all()}


def _status_events(
    before: dict[str, Any], by_status: dict[str, list[StatusChange]]
) -> list[DomainEvent]:
    """`message.<status>` for each message a change really moved forward, replayed in the
    order the UPDATEs ran, so duplicates and late statuses record nothing."""
    current = {pid: row.status for pid, row in before.items()}
    events: list[DomainEvent] = []
    for status in ("sent", "delivered", "read", "failed"):
        for change in by_status.get(status, ()):
            pid, state = change.provider_message_id, current.get(change.provider_message_id)
            if state is None or state == "failed":
                continue
            if status != "failed" and state not in _BEFORE[status]:
                continue
            current[pid] = status
            events.append(_status_event(before[pid], change))
    return events


def _status_event(row: Any, change: StatusChange) -> DomainEvent:
    return message_status(
        row.organization_id,
        message_id=row.id,
        whatsapp_message_id=change.provider_message_id,
        conversation_id=row.conversation_id,
        type=row.type,
        status=change.status,
        at=change.occurred_at,
        error=(change.error_code, change.error_title, change.error_details),
    )


async def _advance(
    session: AsyncSession, channel_id: uuid.UUID, by_status: dict[str, list[StatusChange]]
) -> None:
    """One statement per kind of status. A message joins one change of a kind (the first): an
    UPDATE … FROM updates a row once however many rows it joins."""
    now = utcnow()
    for status in ("sent", "delivered", "read", "failed"):
        if not by_status.get(status):
            continue
        first: dict[str, StatusChange] = {}
        for change in by_status[status]:
            first.setdefault(change.provider_message_id, change)
        source = _changes(session)
        stmt = statement(
            session,
            f"advance_{status}",
            partial(_advance_statement, status, source.c, source.unnest),
        )
        rows = [
            {"pid": c.provider_message_id, "ts": c.occurred_at, "code": c.error_code,
             "title": c.error_title, "details": c.error_details}
            for c in first.values()
        ]  # fmt: skip
        await session.execute(stmt, source.params(rows, channel=channel_id, now=now))


_LOCK_PROVIDER_IDS = text(
    """
    SELECT pg_advisory_xact_lock(k)
    FROM (SELECT DISTINCT hashtextextended(CAST(:channel AS text) || w, 0) AS k
          FROM unnest(CAST(:pids AS text[])) AS w) AS keys
    ORDER BY k
    """
)


async def lock_provider_ids(
    session: AsyncSession, channel_id: uuid.UUID, provider_ids: Iterable[str]
) -> None:
    """Serialise, per provider id, a status arriving for an id not yet recorded with the
    recording of that id (PostgreSQL; SQLite has one writer).

    Without it, both transactions can miss each other: the webhook reads "unknown" before the
    sender's UPDATE commits, the sender looks for pending statuses before the webhook's insert
    commits, and the status waits for the reconciler. Whichever takes the lock second sees
    what the first committed. Held until commit, and taken in key order (PostgreSQL runs a
    volatile SELECT-list function after the ORDER BY), so two transactions never wait on each
    other's advisory locks in a circle."""
    ids = sorted(set(provider_ids))
    if ids and is_postgresql(session):
        await session.execute(_LOCK_PROVIDER_IDS, {"channel": str(channel_id), "pids": ids})


async def apply_statuses(
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel_id: uuid.UUID,
    events: list[StatusUpdate],
) -> tuple[set[str], set[str]]:
    """Apply status webhooks; returns the provider ids (applied to known messages, kept as
    pending). Statuses of inbound messages are neither."""
    ids = {e.provider_message_id for e in events}
    found = await _current_states(session, channel_id, ids)
    if unknown := ids - set(found):
        # Perhaps being recorded right now: wait for that, then look again.
        await lock_provider_ids(session, channel_id, unknown)
        if is_postgresql(session):
            found.update(await _current_states(session, channel_id, unknown))
    before = {pid: row for pid, row in found.items() if row.direction == "outbound"}
    known = set(before)
    applied = [StatusChange.from_event(e) for e in events if e.provider_message_id in known]
    if applied:
        await _apply_known(session, channel_id, applied, before)
    waiting = [e for e in events if e.provider_message_id not in found]
    if waiting:
        await _keep_pending(session, organization_id, channel_id, waiting)
    return known, {e.provider_message_id for e in waiting}


async def _keep_pending(
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel_id: uuid.UUID,
    events: list[StatusUpdate],
) -> None:
    now = utcnow()
    rows = []
    for event in events:
        change = StatusChange.from_event(event)
        rows.append(
            {
                "id": uuid.uuid4(),
                "organization_id": organization_id,
                "channel_id": channel_id,
                "provider_message_id": event.provider_message_id,
                "status": event.status,
                "occurred_at": event.timestamp,
                "recipient": event.recipient,
                "callback_data": event.callback_data,
                "error_code": change.error_code,
                "error_title": change.error_title,
                "error_details": change.error_details,
                "payload": event.raw,
                "received_at": now,
                "applied_at": None,
            }
        )
    stmt = insert_for(session, pending_statuses).on_conflict_do_nothing()
    await session.execute(stmt, rows)


async def apply_pending_statuses(
    session: AsyncSession, channel_id: uuid.UUID, provider_message_ids: Iterable[str]
) -> int:
    """Apply statuses that arrived before their message; call after storing an outbound
    message's provider id (sending does, and ingest does for echoes). Returns how many."""
    ids = list(set(provider_message_ids))
    if not ids:
        return 0
    await lock_provider_ids(session, channel_id, ids)
    p = pending_statuses
    rows = (
        await session.execute(
            select(p).where(
                p.c.channel_id == channel_id,
                p.c.provider_message_id.in_(ids),
                p.c.applied_at.is_(None),
            )
        )
    ).all()
    if not rows:
        return 0
    changes = [
        StatusChange(
            r.provider_message_id,
            r.status,
            r.occurred_at,
            r.error_code,
            r.error_title,
            r.error_details,
        )
        for r in rows
    ]
    await _apply_known(session, channel_id, changes)
    await session.execute(
        update(p).where(p.c.id.in_([r.id for r in rows])).values(applied_at=utcnow())
    )
    return len(rows)
