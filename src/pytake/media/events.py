"""`message.media_updated`: a message's media was stored, failed or expired."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.events import DomainEvent, record_many
from pytake.media.views import of_row
from pytake.models import Message

MEDIA_UPDATED = "message.media_updated"


async def media_updated_events(session: AsyncSession, media: Sequence[Any]) -> list[DomainEvent]:
    """The events of inbound media (`Media` objects or rows of the table) as the caller's
    transaction leaves them (one query)."""
    ids = {item.message_id for item in media if item.message_id is not None}
    if not ids:
        return []
    m = Message
    rows = {
        row.id: row
        for row in await session.execute(
            select(m.id, m.provider_message_id, m.conversation_id, m.type, m.content).where(
                m.id.in_(ids)
            )
        )
    }
    events = []
    for item in media:
        row = rows.get(item.message_id) if item.message_id is not None else None
        if row is None:
            continue
        message = {
            "id": row.id,
            "whatsapp_message_id": row.provider_message_id,
            "conversation_id": row.conversation_id,
            "type": row.type,
        }
        data = {"message": message, "media": of_row(item, row.content)}
        events.append(DomainEvent(item.organization_id, MEDIA_UPDATED, data))
    return events


async def record_media_updated(session: AsyncSession, media: Sequence[Any]) -> None:
    """Record the events in the caller's transaction (one batch of inserts)."""
    await record_many(session, await media_updated_events(session, media))
