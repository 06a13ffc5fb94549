"""How messages show their media: the `media` object of message views and events."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.media.inbound import inbound_media_id
from pytake.models import Media, Message
from pytake.whatsapp.provider import MEDIA_TYPES


def media_path(media_id: uuid.UUID) -> str:
    """Where an authorised caller fetches the bytes."""
    return f"/v1/media/{media_id}"


def media_object(
    media_id: uuid.UUID,
    status: str,
    mime_type: str | None,
    size: int | None,
    file_name: str | None,
    caption: str | None,
) -> dict[str, Any]:
    """The `media` object (keys as docs/media.md shows them)."""
    return {
        "id": media_id,
        "status": status,
        "mime_type": mime_type,
        "size": size,
        "file_name": file_name,
        "caption": caption,
        "url": media_path(media_id),
    }


def of_row(media: Media, content: dict[str, Any] | None) -> dict[str, Any]:
    caption = (content or {}).get("caption")
    return media_object(
        media.id,
        media.status,
        media.mime_type,
        media.size,
        media.file_name or (content or {}).get("filename"),
        caption if isinstance(caption, str) else None,
    )


def pending_inbound(message_id: uuid.UUID, content: dict[str, Any]) -> dict[str, Any]:
    """The media object of an inbound message just stored (its fetch is queued)."""
    caption = content.get("caption")
    filename = content.get("filename")
    mime = content.get("mime_type")
    return media_object(
        inbound_media_id(message_id),
        "pending",
        mime if isinstance(mime, str) else None,
        None,
        filename if isinstance(filename, str) else None,
        caption if isinstance(caption, str) else None,
    )


def referenced_media_id(message: Message) -> uuid.UUID | None:
    """The media row a message shows: its own (inbound, or an echo of the business phone's
    send) or the upload it sends (outbound through PyTake)."""
    if message.type not in MEDIA_TYPES:
        return None
    if message.direction == "inbound":
        return inbound_media_id(message.id)
    ref = (message.content or {}).get("media_id")
    if not ref:
        return None
    try:
        return uuid.UUID(str(ref))
    except ValueError:
        # A provider's id (Meta's digits, an Evolution key): a phone echo, fetched as its own.
        return inbound_media_id(message.id)


async def media_for_messages(
    session: AsyncSession, messages: list[Message]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Message id → its media object, for the messages that have one (one query)."""
    refs = {m.id: ref for m in messages if (ref := referenced_media_id(m)) is not None}
    if not refs:
        return {}
    rows = {
        row.id: row
        for row in await session.scalars(
            select(Media).where(
                Media.id.in_(set(refs.values())),
                Media.organization_id.in_({m.organization_id for m in messages}),
            )
        )
    }
    by_id = {m.id: m for m in messages}
    return {
        message_id: of_row(rows[ref], by_id[message_id].content)
        for message_id, ref in refs.items()
        if ref in rows
    }
