"""Ingest's counters: stored messages counted on their conversations (with the customer-service
window) and their contacts' activity, as one multi-row UPDATE per table."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.kit.sql import BatchSource, is_postgresql, later, statement
from pytake.kit.text import without_nul
from pytake.message.ingest.batch import BatchMessage
from pytake.message.tables import contacts, conversations
from pytake.models.base import UTCDateTime, utcnow
from pytake.whatsapp.events import InboundMessage

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)


async def count_messages(
    session: AsyncSession,
    rows: list[BatchMessage],
    contact_ids: dict[str, uuid.UUID],
    conversation_ids: dict[uuid.UUID, uuid.UUID],
) -> dict[uuid.UUID, str | None]:
    """Count the stored messages on their conversations (and the customer-service window) and
    bump their contacts' activity, keeping each contact's newest WhatsApp profile name;
    returns that name (None: unchanged) per contact."""
    by_conversation: dict[uuid.UUID, list[BatchMessage]] = {}
    by_contact: dict[uuid.UUID, list[BatchMessage]] = {}
    for row in rows:
        contact_id = contact_ids[row.key]
        by_conversation.setdefault(conversation_ids[contact_id], []).append(row)
        by_contact.setdefault(contact_id, []).append(row)
    conversation_rows = [
        _conversation_counts(i, group) for i, group in sorted(by_conversation.items())
    ]
    contact_rows = [_contact_activity(i, group) for i, group in sorted(by_contact.items())]
    now = utcnow()
    conversation_source, contact_source = _conversation_source(session), _contact_source(session)
    if is_postgresql(session):
        stmt = statement(session, "touch_both", lambda: _touch_both_stmt(session))
        params = {
            **conversation_source.params(conversation_rows, now=now),
            **contact_source.params(contact_rows, now=now),
        }
        await session.execute(stmt, params)
    else:
        stmt = statement(
            session,
            "touch_conversations",
            lambda: _touch_conversations_stmt(conversation_source.c),
        )
        await session.execute(stmt, conversation_source.params(conversation_rows, now=now))
        stmt = statement(session, "touch_contacts", lambda: _touch_contacts_stmt(contact_source.c))
        await session.execute(stmt, contact_source.params(contact_rows, now=now))
    return {row["contact"]: row["profile"] for row in contact_rows}


def _latest(times: list[datetime]) -> datetime | None:
    return max(times) if times else None


def _conversation_counts(conversation_id: uuid.UUID, group: list[BatchMessage]) -> dict[str, Any]:
    last_in = _latest([r.event.timestamp for r in group if r.inbound])
    return {
        "id": conversation_id,
        "count": len(group),
        "unread": sum(1 for r in group if r.inbound),
        "last": _latest([r.event.timestamp for r in group]),
        "last_in": last_in,
        "window": last_in + CUSTOMER_SERVICE_WINDOW if last_in else None,
    }


def _contact_activity(contact_id: uuid.UUID, group: list[BatchMessage]) -> dict[str, Any]:
    inbound = [r for r in group if r.inbound]
    profiles = [
        without_nul(r.event.profile_name) for r in inbound if isinstance(r.event, InboundMessage)
    ]
    return {
        "contact": contact_id,
        "profile": next((p for p in reversed(profiles) if p), None),
        "wa": inbound[-1].party if inbound else None,
        "contact_last": _latest([r.event.timestamp for r in group]),
        "contact_last_in": _latest([r.event.timestamp for r in inbound]),
    }


def _conversation_source(session: AsyncSession) -> BatchSource:
    ts = UTCDateTime()
    return BatchSource(
        session, "conversation_touch", id=conversations.c.id.type, count=Integer(),
        unread=Integer(), last=ts, last_in=ts, window=ts,
    )  # fmt: skip


def _contact_source(session: AsyncSession) -> BatchSource:
    # Its own names: on PostgreSQL both sources bind in one statement (see `_touch_both_stmt`).
    ts = UTCDateTime()
    return BatchSource(
        session, "contact_touch", contact=contacts.c.id.type, profile=String(), wa=String(),
        contact_last=ts, contact_last_in=ts,
    )  # fmt: skip


def _touch_conversations_stmt(touch: Any) -> Any:
    c = conversations.c
    return (
        update(conversations)
        .where(c.id == touch.id)
        .values(
            message_count=c.message_count + touch.count,
            unread_count=c.unread_count + touch.unread,
            last_message_at=later(c.last_message_at, touch.last),
            last_inbound_at=later(c.last_inbound_at, touch.last_in),
            window_expires_at=later(c.window_expires_at, touch.window),
            updated_at=bindparam("b_now", type_=UTCDateTime()),
        )
    )


def _touch_contacts_stmt(touch: Any) -> Any:
    c = contacts.c
    return (
        update(contacts)
        .where(c.id == touch.contact)
        .values(
            profile_name=func.coalesce(touch.profile, c.profile_name),
            wa_id=func.coalesce(touch.wa, c.wa_id),
            last_message_at=later(c.last_message_at, touch.contact_last),
            last_inbound_at=later(c.last_inbound_at, touch.contact_last_in),
            updated_at=bindparam("b_now", type_=UTCDateTime()),
        )
    )


def _touch_both_stmt(session: AsyncSession) -> Any:
    """PostgreSQL: both UPDATEs in one statement (a round trip fewer per batch; a batch costs
    its statements whatever its size, see docs/benchmarks.md). The contacts are already
    locked by this transaction, so the order PostgreSQL runs the two in does not matter."""
    touched = _touch_conversations_stmt(_conversation_source(session).c)
    touched = touched.returning(conversations.c.id).cte("conversations_touched")
    bumped = _touch_contacts_stmt(_contact_source(session).c)
    bumped = bumped.returning(contacts.c.id).cte("contacts_touched")
    return select(
        select(func.count()).select_from(touched).scalar_subquery(),
        select(func.count()).select_from(bumped).scalar_subquery(),
    )
