"""`message.media_updated`: a message's media was stored, failed or expired."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from pytake.events import record
from pytake.media.views import of_row
from pytake.models import Media, Message

MEDIA_UPDATED = "message.media_updated"


async def record_media_updated(session: AsyncSession, media_id: uuid.UUID) -> None:
    """Record the event for an inbound message's media, in the caller's transaction."""
    media = await session.get(Media, media_id, populate_existing=True)
    if media is None or media.message_id is None:
        return
    message = await session.get(Message, media.message_id)
    if message is None:
        return
    data = {
        "message": {
            "id": message.id,
            "whatsapp_message_id": message.provider_message_id,
            "conversation_id": message.conversation_id,
            "type": message.type,
        },
        "media": of_row(media, message.content),
    }
    await record(session, media.organization_id, MEDIA_UPDATED, data)
