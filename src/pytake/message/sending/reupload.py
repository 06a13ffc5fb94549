"""A media message Meta accepted and then reported `failed` with 131053 (media upload error):
the media id it was sent under has vanished on Meta's side (deleted, or expired before the 30
days we count on). When we sent it by a stored file, the failure is not final: the upload on
record is forgotten and the message goes back to the send queue, whose dispatch uploads the
file again and sends it once more. Once only: a second 131053 fails it.

Idempotent under duplicate and out-of-order webhooks: only a message still `sent` under the
failing wamid qualifies, and the re-queue clears that wamid, so a second copy of the status
(or a late `delivered` of the old send) no longer finds the message and waits as pending."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.events import wake_after_commit
from pytake.media.outbound import stored_media_ref, uses_stored_media
from pytake.message.tables import messages
from pytake.models import MediaUpload
from pytake.models.base import utcnow
from pytake.whatsapp.provider import OutboundMessage

log = logging.getLogger(__name__)

# Meta's "media upload error": on a status webhook, the media id the send named is gone.
VANISHED_MEDIA = 131053


class FailedChange(Protocol):
    """A `failed` status to apply (`pytake.message.statuses.StatusChange`)."""

    @property
    def provider_message_id(self) -> str: ...
    @property
    def error_code(self) -> int | None: ...
    @property
    def error_title(self) -> str | None: ...
    @property
    def error_details(self) -> str | None: ...


def _candidates(
    failed: Iterable[FailedChange], before: Mapping[str, Any]
) -> dict[str, FailedChange]:
    """The 131053 failures of media messages that are still `sent` (not yet delivered)."""
    found: dict[str, FailedChange] = {}
    for change in failed:
        row = before.get(change.provider_message_id)
        if change.error_code == VANISHED_MEDIA and row is not None and row.status == "sent":
            found.setdefault(change.provider_message_id, change)
    return found


async def requeue_vanished_media(
    session: AsyncSession,
    channel_id: uuid.UUID,
    failed: Iterable[FailedChange],
    before: Mapping[str, Any],
) -> set[str]:
    """Queue again, for a fresh upload, the messages these `failed` changes report as 131053
    that were sent by a stored file and never re-sent; returns their (old) provider ids, whose
    changes the caller then does not apply. `before` is the messages' state, as read (and
    locked) by the caller."""
    candidates = _candidates(failed, before)
    if not candidates:
        return set()
    m = messages.c
    rows = (
        await session.execute(
            select(m.id, m.provider_message_id, m.type, m.content, m.sent_at).where(
                m.channel_id == channel_id,
                m.provider_message_id.in_(sorted(candidates)),
                m.media_resent_from.is_(None),
            )
        )
    ).all()
    resent: set[str] = set()
    for row in rows:
        content = row.content or {}
        if not uses_stored_media(OutboundMessage(to="", type=row.type, content=content)):
            continue
        if await _requeue(
            session, row.id, row.provider_message_id, candidates[row.provider_message_id]
        ):
            await _forget_upload(session, stored_media_ref(content), channel_id, row.sent_at)
            resent.add(row.provider_message_id)
    if resent:
        log.info(
            "131053 after acceptance: %d media message(s) queued for a fresh upload", len(resent)
        )
        wake_after_commit(session, "dispatch")
    return resent


async def _requeue(
    session: AsyncSession, message_id: uuid.UUID, old_pid: str, change: FailedChange
) -> bool:
    m = messages.c
    now = utcnow()
    result = await session.execute(
        update(messages)
        .where(
            m.id == message_id,
            m.status == "sent",
            m.provider_message_id == old_pid,
            m.media_resent_from.is_(None),
        )
        .values(
            status="queued",
            provider_message_id=None,
            media_resent_from=old_pid,
            next_attempt_at=now,
            claimed_by=None,
            claimed_at=None,
            # Kept while it waits: why it is being sent again (a successful send clears them).
            error_code=change.error_code,
            error_title=change.error_title,
            error_details=change.error_details,
            updated_at=now,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def _forget_upload(
    session: AsyncSession,
    media_id: uuid.UUID | None,
    channel_id: uuid.UUID,
    sent_at: datetime | None,
) -> None:
    """Drop the upload the failed send used (not one made since), so the dispatch uploads the
    file again instead of naming the vanished id."""
    if media_id is None:
        return
    condition = and_(MediaUpload.media_id == media_id, MediaUpload.channel_id == channel_id)
    if sent_at is not None:
        condition = and_(condition, MediaUpload.uploaded_at <= sent_at)
    await session.execute(delete(MediaUpload).where(condition))
