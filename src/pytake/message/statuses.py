"""Delivery statuses of outbound messages: forward only (sent < delivered < read; failed is
terminal), idempotent, order-independent; a status for an unknown message waits as pending."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, bindparam, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.message.tables import insert_for, messages, pending_statuses
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


def _advance_statement(status: str) -> Any:
    """UPDATE for one status kind, run once per message (executemany)."""
    m = messages
    where = and_(
        m.c.channel_id == bindparam("b_channel"),
        m.c.provider_message_id == bindparam("b_pid"),
        m.c.direction == "outbound",
    )
    ts = bindparam("b_ts", type_=UTCDateTime())
    stamp = m.c[_STAMP[status]]
    if status == "failed":
        return (
            update(m)
            .where(where, m.c.status != "failed")
            .values(
                status="failed",
                failed_at=ts,
                error_code=bindparam("b_code"),
                error_title=bindparam("b_title", type_=String()),
                error_details=bindparam("b_details", type_=String()),
                updated_at=bindparam("b_now", type_=UTCDateTime()),
            )
        )
    # Timestamps of skipped steps are still worth keeping (a late `delivered` after `read`).
    return (
        update(m)
        .where(where, m.c.status != "failed")
        .values(
            # Not `in_()`: its expanding parameter cannot run as executemany.
            status=case(
                (or_(*(m.c.status == s for s in _BEFORE[status])), status), else_=m.c.status
            ),
            **{stamp.name: func.coalesce(stamp, ts)},
            updated_at=bindparam("b_now", type_=UTCDateTime()),
        )
    )


async def _apply_known(
    session: AsyncSession, channel_id: uuid.UUID, changes: list[StatusChange]
) -> None:
    by_status: dict[str, list[dict[str, Any]]] = defaultdict(list)
    now = utcnow()
    # In provider id order, so that concurrent batches lock the messages in one order.
    for change in sorted(changes, key=lambda c: c.provider_message_id):
        by_status[change.status].append(
            {
                "b_channel": channel_id,
                "b_pid": change.provider_message_id,
                "b_ts": change.occurred_at,
                "b_code": change.error_code,
                "b_title": change.error_title,
                "b_details": change.error_details,
                "b_now": now,
            }
        )
    for status in ("sent", "delivered", "read", "failed"):
        if by_status.get(status):
            await session.execute(_advance_statement(status), by_status[status])


async def apply_statuses(
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel_id: uuid.UUID,
    events: list[StatusUpdate],
) -> tuple[set[str], set[str]]:
    """Apply status webhooks; returns the provider ids (applied to known messages, kept as
    pending). Statuses of inbound messages are neither."""
    ids = {e.provider_message_id for e in events}
    known = set(
        await session.scalars(
            select(messages.c.provider_message_id).where(
                messages.c.channel_id == channel_id,
                messages.c.provider_message_id.in_(ids),
                messages.c.direction == "outbound",
            )
        )
    )
    inbound = (
        set(
            await session.scalars(
                select(messages.c.provider_message_id).where(
                    messages.c.channel_id == channel_id,
                    messages.c.provider_message_id.in_(ids - known),
                )
            )
        )
        if ids - known
        else set()
    )
    applied = [StatusChange.from_event(e) for e in events if e.provider_message_id in known]
    if applied:
        await _apply_known(session, channel_id, applied)
    waiting = [e for e in events if e.provider_message_id not in known | inbound]
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
