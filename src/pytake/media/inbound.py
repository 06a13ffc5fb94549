"""The one hook ingest calls: a `pending` media row for each stored inbound media message (and
each echo of a file the business sent from its own phone).

In the message's own transaction, so the fetch is as durable as the message (a crash after the
webhook's 200 loses nothing) and a duplicate webhook, whose message is not stored again, asks
for no second fetch (the unique message id makes even a race harmless). The media id is derived
from the message id, so the message.received event can name it without a read back.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.events import wake_after_commit
from pytake.kit.sql import insert_for
from pytake.models import Media
from pytake.models.base import utcnow
from pytake.whatsapp.provider import MEDIA_TYPES

MEDIA = cast(Table, Media.__table__)
FETCH_LOOP = "media-fetch"  # the loop's name (pytake.media.fetch), woken after commit
_NAMESPACE = uuid.UUID("6f1d9c6e-7d43-4f0e-9a55-3b7f2c1e8d20")


def inbound_media_id(message_id: uuid.UUID) -> uuid.UUID:
    """The media id of an inbound message's or a phone echo's attachment (a pure function of
    the message id)."""
    return uuid.uuid5(_NAMESPACE, str(message_id))


def _text(value: Any, limit: int) -> str | None:
    return str(value)[:limit] if isinstance(value, str | int) and str(value) else None


def _size(value: Any) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def media_row(
    organization_id: uuid.UUID,
    channel_id: uuid.UUID,
    message_id: uuid.UUID,
    kind: str,
    content: dict[str, Any],
) -> dict[str, Any]:
    """The pending media row of one inbound message or phone echo."""
    now = utcnow()
    return {
        "id": inbound_media_id(message_id),
        "organization_id": organization_id,
        "channel_id": channel_id,
        "message_id": message_id,
        "source": "inbound",
        "kind": kind,
        "status": "pending",
        "provider_media_id": _text(content.get("media_id"), 200),
        "expected_sha256": _text(content.get("sha256"), 100),
        "expected_size": _size(content.get("file_size")),
        "mime_type": _text(content.get("mime_type"), 200),
        "file_name": _text(content.get("filename"), 255),
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


async def enqueue_fetches(session: AsyncSession, channel: Any, stored: Any) -> None:
    """Queue the fetch of every attachment an ingest batch stored from WhatsApp: customers'
    messages, and echoes of what the business sent from its own phone when they name a media
    id (`message.ingest.batch.Stored`; flushes, never commits)."""
    rows = []
    for row in stored.rows:
        event = row.event
        if event.type not in MEDIA_TYPES:
            continue
        # PyTake never saw the phone's file: without the fetch the thread would show nothing.
        if not row.inbound and not event.content.get("media_id"):
            continue
        message_id = stored.message_ids[event.provider_message_id]
        rows.append(
            media_row(channel.organization_id, channel.id, message_id, event.type, event.content)
        )
    if not rows:
        return
    await session.execute(insert_for(session, MEDIA).on_conflict_do_nothing(), rows)
    wake_after_commit(session, FETCH_LOOP)
