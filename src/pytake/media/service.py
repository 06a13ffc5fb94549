"""Media use cases: read one, sign its URL, store an upload, the retention setting."""

from __future__ import annotations

import mimetypes
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import UploadFile
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.principal import Principal
from pytake.config import Settings
from pytake.errors import FieldError, NotFound, PayloadTooLarge, ValidationFailed
from pytake.media.limits import LARGEST, RULES, base_mime, check_for_type, kinds_for, safe_file_name
from pytake.media.schemas import MediaDetailOut
from pytake.media.serving import signed_query
from pytake.media.storage import CHUNK, MediaStorage, Staged, TooLarge, content_key, staging_dir
from pytake.media.views import of_row
from pytake.models import Media, Message, Organization
from pytake.models.base import utcnow
from pytake.tenancy import get_scoped

RETENTION_KEY = "media_retention_days"


async def get_media(session: AsyncSession, principal: Principal, media_id: uuid.UUID) -> Media:
    """A media item of the caller's organisation (another's is a 404)."""
    return await get_scoped(session, Media, media_id, principal, what="Media")


async def media_detail(session: AsyncSession, media: Media) -> MediaDetailOut:
    content: dict[str, Any] | None = None
    if media.message_id is not None:
        content = await session.scalar(
            select(Message.content).where(Message.id == media.message_id)
        )
    return MediaDetailOut(
        **of_row(media, content),
        sha256=media.sha256,
        source=media.source,
        error=media.error,
        sendable_as=sendable_as(media.mime_type, media.size),
        created_at=media.created_at,
    )


def sendable_as(mime_type: str | None, size: int | None) -> list[str]:
    return [k for k in kinds_for(mime_type) if not check_for_type("file", k, mime_type, size)]


def signed_url(settings: Settings, base_url: str, media: Media) -> tuple[str, datetime]:
    """A URL serving the bytes for `media_signed_url_ttl_seconds`, without credentials."""
    if media.status != "stored":
        from pytake.media.errors import MediaNotAvailable

        raise MediaNotAvailable(f"The media is {media.status}")
    query, expires = signed_query(
        settings.secret_key, media.id, settings.media_signed_url_ttl_seconds
    )
    base = (settings.public_base_url or base_url).rstrip("/")
    return f"{base}/v1/media/{media.id}/content?{query}", datetime.fromtimestamp(expires, UTC)


async def stored_for_signature(session: AsyncSession, media_id: uuid.UUID) -> Media:
    media = await session.get(Media, media_id)
    if media is None:
        raise NotFound("Media not found")
    return media


def _upload_mime(upload: UploadFile) -> str:
    mime = base_mime(upload.content_type)
    if mime in ("", "application/octet-stream"):
        guessed = mimetypes.guess_type(upload.filename or "")[0]
        mime = base_mime(guessed) or mime
    return mime


async def store_upload(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    storage: MediaStorage,
    upload: UploadFile,
    kind: str | None,
) -> Media:
    """Store an uploaded file (streamed through a staging file, hashed on the way)."""
    mime = _upload_mime(upload)
    if not kinds_for(mime):
        allowed = ", ".join(sorted(set().union(*(r.mime_types for r in RULES.values()))))
        raise ValidationFailed(
            details=[
                FieldError(
                    "file", f"WhatsApp does not send {mime or 'untyped'} files (one of: {allowed})"
                )
            ]
        )
    limit = min(settings.max_media_upload_bytes, LARGEST)
    with Staged(staging_dir(settings), limit=limit) as staged:
        try:
            # Starlette spooled the part to a temporary file past 1 MiB; read it in chunks.
            while chunk := await upload.read(CHUNK):
                staged.write(chunk)
        except TooLarge as exc:
            raise PayloadTooLarge(f"Media uploads are limited to {limit} bytes") from exc
        sha256_hex = staged.finish()
        if staged.size == 0:
            raise ValidationFailed(details=[FieldError("file", "The file is empty")])
        if kind is not None:
            errors = check_for_type("file", kind, mime, staged.size)
            if errors:
                raise ValidationFailed(details=errors)
        key = content_key(principal.organization_id, sha256_hex)
        if not await storage.exists(key):
            await storage.put_file(key, staged.path, mime)
        size = staged.size
    now = utcnow()
    media = Media(
        id=uuid.uuid4(),
        organization_id=principal.organization_id,
        source="upload",
        kind=kind,
        status="stored",
        mime_type=mime,
        size=size,
        file_name=safe_file_name(upload.filename, "file"),
        sha256=sha256_hex,
        storage_key=key,
        created_at=now,
        updated_at=now,
        stored_at=now,
    )
    session.add(media)
    await session.flush()
    return media


async def retention_days(session: AsyncSession, principal: Principal) -> int | None:
    org = await session.get(Organization, principal.organization_id)
    value = (org.settings or {}).get(RETENTION_KEY) if org else None
    return int(value) if isinstance(value, int) else None


async def set_retention_days(session: AsyncSession, principal: Principal, days: int | None) -> None:
    """Keep media `days` days (None: forever); the retention loop applies it."""
    org = await session.get(Organization, principal.organization_id)
    if org is None:
        raise NotFound("Organisation not found")
    org.settings = {**(org.settings or {}), RETENTION_KEY: days}
