"""Ingest's messages: drop the ones already stored, insert the rest in one statement."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.kit.rows import RowBuilder
from pytake.kit.sql import BatchSource, among, insert_for, statement
from pytake.kit.text import without_nul
from pytake.message.ingest.batch import BatchMessage, ChannelRef
from pytake.message.tables import messages
from pytake.models.base import utcnow
from pytake.whatsapp.events import InboundMessage

message_rows = RowBuilder(messages)


async def without_known(
    session: AsyncSession, channel: ChannelRef, rows: list[BatchMessage]
) -> list[BatchMessage]:
    """The rows whose messages are not stored yet, each message once."""
    m = messages.c
    stmt = statement(
        session,
        "known_messages",
        lambda: select(m.provider_message_id).where(
            m.channel_id == bindparam("channel"), among(session, m.provider_message_id, "ids")
        ),
    )
    ids = list({row.event.provider_message_id for row in rows})
    known = set(await session.scalars(stmt, {"channel": channel.id, "ids": ids}))
    fresh: list[BatchMessage] = []
    for row in rows:
        pid = row.event.provider_message_id
        if pid not in known:
            known.add(pid)  # a body may carry the same message twice
            fresh.append(row)
    return fresh


def message_row(
    channel: ChannelRef,
    row: BatchMessage,
    contact_id: uuid.UUID,
    conversation_id: uuid.UUID,
    now: datetime,
) -> dict[str, Any]:
    """The messages row for an inbound message or an echo of one sent from the phone."""
    event = row.event
    content = without_nul(dict(event.content))
    error = None
    if isinstance(event, InboundMessage):
        if event.forwarded:
            content["forwarded"] = True
        if event.referral:
            content["referral"] = event.referral
        error = event.errors[0] if event.errors else None
    return message_rows.row(
        id=uuid.uuid4(),
        organization_id=channel.organization_id,
        conversation_id=conversation_id,
        contact_id=contact_id,
        channel_id=channel.id,
        direction="inbound" if row.inbound else "outbound",
        type=event.type[:30],
        content=content,
        status="received" if row.inbound else "sent",
        provider_message_id=event.provider_message_id,
        context_provider_message_id=event.context_message_id,
        provider_timestamp=event.timestamp,
        sent_at=None if row.inbound else event.timestamp,
        error_code=error.code if error else None,
        error_title=(error.title or error.message) if error else None,
        error_details=(error.details or error.plain_explanation) if error else None,
        created_at=now,
        updated_at=now,
    )


async def insert_messages(
    session: AsyncSession,
    channel: ChannelRef,
    rows: list[BatchMessage],
    contact_ids: dict[str, uuid.UUID],
    conversation_ids: dict[uuid.UUID, uuid.UUID],
) -> dict[str, uuid.UUID]:
    """Insert new messages; returns provider id → row id of those actually inserted."""
    now = utcnow()
    values = []
    # In provider id order: concurrent batches then meet on the unique index in one order.
    for row in sorted(rows, key=lambda r: r.event.provider_message_id):
        contact_id = contact_ids[row.key]
        values.append(message_row(channel, row, contact_id, conversation_ids[contact_id], now))
    m = messages.c
    names = message_rows.columns
    source = BatchSource(session, "new", **{name: m[name].type for name in names})

    def build() -> Any:
        stmt = insert_for(session, messages)
        if source.unnest:
            stmt = stmt.from_select(names, select(*(source.c[n] for n in names)))
        return stmt.on_conflict_do_nothing().returning(m.provider_message_id, m.id)

    # SQLite: an executemany of VALUES, which SQLAlchemy sends as multi-row INSERTs.
    params = source.params(values) if source.unnest else values
    stmt = statement(session, "insert_messages", build)
    return {pid: mid for pid, mid in (await session.execute(stmt, params)).all()}
