"""What sending asks of media: check a `media_id` at enqueue, and turn it into something the
provider takes at dispatch (Meta's media id, uploaded on first use per number; base64 for
Evolution, which has no upload step)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.auth.principal import Principal
from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.errors import FieldError, ValidationFailed
from pytake.kit.sql import insert_for
from pytake.media.limits import check_for_type
from pytake.media.storage import MediaStorage, Staged, build_storage, staging_dir
from pytake.models import Media, MediaUpload
from pytake.models.base import utcnow
from pytake.whatsapp.cloud import CloudProvider
from pytake.whatsapp.provider import (
    MEDIA_TYPES,
    OutboundMessage,
    ProviderError,
    SendResult,
    WhatsAppProvider,
)

# Meta keeps an uploaded media id 30 days; a day's margin so a queued send never meets its end.
UPLOAD_VALID_FOR = timedelta(days=29)
MEDIA_REF = "media_id"


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def stored_media_ref(content: dict[str, Any]) -> uuid.UUID | None:
    """The PyTake media a send names: `media_id`, or Meta's own `id` when it is a PyTake id
    (Meta's ids are digits, never UUIDs)."""
    if content.get(MEDIA_REF):
        return _as_uuid(content[MEDIA_REF])
    return _as_uuid(content["id"]) if content.get("id") else None


async def check_media_send(
    session: AsyncSession, principal: Principal, kind: str, content: dict[str, Any]
) -> dict[str, Any]:
    """The content to queue for a media send by PyTake media id (422 naming the field when the
    file is unknown, not stored, or breaks WhatsApp's rules for `kind`); other content as is."""
    if kind not in MEDIA_TYPES:
        return content
    field = f"{kind}.{MEDIA_REF}" if content.get(MEDIA_REF) else f"{kind}.id"
    if content.get(MEDIA_REF) and stored_media_ref(content) is None:
        raise ValidationFailed(details=[FieldError(field, "Not a media id from POST /v1/media")])
    media_id = stored_media_ref(content)
    if media_id is None:
        return content
    media = await session.scalar(
        select(Media).where(
            Media.id == media_id, Media.organization_id == principal.organization_id
        )
    )
    if media is None:
        raise ValidationFailed(details=[FieldError(field, "No such media in this organisation")])
    if media.status != "stored":
        raise ValidationFailed(details=[FieldError(field, f"The media is {media.status}")])
    errors = check_for_type(field, kind, media.mime_type, media.size)
    if errors:
        raise ValidationFailed(details=errors)
    queued = {k: v for k, v in content.items() if k not in ("id", MEDIA_REF)}
    queued[MEDIA_REF] = str(media.id)
    if kind == "document" and not queued.get("filename") and media.file_name:
        queued["filename"] = media.file_name
    return queued


def upload_vanished(exc: ProviderError, provider_media_id: str) -> bool:
    """Whether Meta refused a send because the media id it was given is unknown to it: 131053
    (media upload error), or an invalid parameter (100, 131009) that names the id we sent."""
    if exc.code == 131053:
        return True
    said = f"{exc.message} {exc.details or ''}"
    return exc.code in (100, 131009) and bool(provider_media_id) and provider_media_id in said


def uses_stored_media(message: OutboundMessage) -> bool:
    return message.type in MEDIA_TYPES and bool(message.content.get(MEDIA_REF))


class OutboundMedia:
    """Resolves queued `media_id`s for the dispatcher (one per process, storage opened lazily)."""

    def __init__(self, factory: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.factory = factory
        self.settings = settings
        self._storage: MediaStorage | None = None

    @property
    def storage(self) -> MediaStorage:
        if self._storage is None:
            self._storage = build_storage(self.settings)
        return self._storage

    async def send(
        self,
        provider: WhatsAppProvider,
        organization_id: uuid.UUID,
        channel_id: uuid.UUID,
        message: OutboundMessage,
    ) -> SendResult:
        """Send a message naming a stored file; when Meta no longer knows the id it was
        uploaded under (deleted or expired before its 30 days), upload again and send once more."""
        attached = await self.attach(provider, organization_id, channel_id, message)
        try:
            return await provider.send(attached)
        except ProviderError as exc:
            sent_id = str(attached.content.get("id", ""))
            if not isinstance(provider, CloudProvider) or not upload_vanished(exc, sent_id):
                raise
        attached = await self.attach(provider, organization_id, channel_id, message, fresh=True)
        return await provider.send(attached)

    async def attach(
        self,
        provider: WhatsAppProvider,
        organization_id: uuid.UUID,
        channel_id: uuid.UUID,
        message: OutboundMessage,
        *,
        fresh: bool = False,
    ) -> OutboundMessage:
        """The message with its `media_id` replaced by what the provider takes (`fresh`: upload
        to Meta again even when an upload of the file is on record)."""
        content = dict(message.content)
        media_id = _as_uuid(content.pop(MEDIA_REF))
        async with self.factory() as session:
            media = await session.scalar(
                select(Media).where(Media.id == media_id, Media.organization_id == organization_id)
            )
        if media is None or media.status != "stored" or not media.storage_key:
            state = "deleted" if media is None else media.status
            raise ProviderError(
                f"the media to send is {state}", retryable=False, kind="not_supported"
            )
        if isinstance(provider, CloudProvider):
            content["id"] = await self._uploaded_id(provider, media, channel_id, fresh)
        else:
            content["base64"] = await self._base64(media)
            content.setdefault("mime_type", media.mime_type)
        return replace(message, content=content)

    async def _uploaded_id(
        self, provider: CloudProvider, media: Media, channel_id: uuid.UUID, fresh: bool
    ) -> str:
        if not fresh:
            async with self.factory() as session:
                upload = await session.get(MediaUpload, (media.id, channel_id))
            if upload is not None and upload.uploaded_at > utcnow() - UPLOAD_VALID_FOR:
                return upload.provider_media_id
        assert media.storage_key is not None
        async with self._local_file(media.storage_key) as path, _open(path) as file:
            provider_id = await provider.upload_media(
                file, media.mime_type or "application/octet-stream", media.file_name or "file"
            )
        await self._remember(media.id, channel_id, provider_id)
        return provider_id

    async def _remember(self, media_id: uuid.UUID, channel_id: uuid.UUID, provider_id: str) -> None:
        now = utcnow()
        async with unit_of_work(self.factory) as session:
            stmt = insert_for(session, MediaUpload.__table__)  # type: ignore[arg-type]
            stmt = stmt.values(
                media_id=media_id,
                channel_id=channel_id,
                provider_media_id=provider_id,
                uploaded_at=now,
            ).on_conflict_do_update(
                index_elements=["media_id", "channel_id"],
                set_={"provider_media_id": provider_id, "uploaded_at": now},
            )
            await session.execute(stmt)

    @asynccontextmanager
    async def _local_file(self, key: str) -> AsyncIterator[Path]:
        """The stored file as a local path (the local store's own file; S3: a staged copy)."""
        path_of = getattr(self.storage, "path_of", None)
        if path_of is not None:
            yield path_of(key)
            return
        with Staged(staging_dir(self.settings)) as staged:
            async for chunk in self.storage.read(key):
                staged.write(chunk)
            staged.finish()
            yield staged.path

    async def _base64(self, media: Media) -> str:
        assert media.storage_key is not None
        # Evolution takes the file inline: this send holds it in memory (WhatsApp's largest
        # file is 100 MB; Evolution numbers are small-volume by nature).
        chunks = [chunk async for chunk in self.storage.read(media.storage_key)]
        return base64.b64encode(b"".join(chunks)).decode()

    async def close(self) -> None:
        if self._storage is not None:
            await self._storage.close()


@asynccontextmanager
async def _open(path: Path) -> AsyncIterator[Any]:
    with path.open("rb") as file:
        yield file
