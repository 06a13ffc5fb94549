"""Retention: each organisation may keep media N days (`media_retention_days` in its settings;
default: forever). Older stored files are deleted; their rows, and the messages, stay, with
the media `expired` (and a `message.media_updated` event for inbound ones).

A blob is shared by every row of the organisation with the same content, so it is deleted only
once no `stored` row names it any more.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.media.events import record_media_updated
from pytake.media.service import RETENTION_KEY
from pytake.media.storage import MediaStorage
from pytake.models import Media, Organization
from pytake.models.base import utcnow

log = logging.getLogger("pytake.media.retention")

BATCH = 500


async def retention_by_organization(session: AsyncSession) -> dict[uuid.UUID, int]:
    """Organisations that limit how long media is kept, and their days."""
    rows = await session.execute(select(Organization.id, Organization.settings))
    return {
        org_id: int(settings[RETENTION_KEY])
        for org_id, settings in rows
        if isinstance(settings, dict) and isinstance(settings.get(RETENTION_KEY), int)
    }


async def expire_batch(
    session: AsyncSession, organization_id: uuid.UUID, days: int, limit: int = BATCH
) -> tuple[int, list[str]]:
    """Mark up to `limit` stored media older than `days` expired; returns how many, and the
    storage keys no stored row names any more (to delete once this commits)."""
    now = utcnow()
    rows = (
        await session.execute(
            select(Media.id, Media.storage_key)
            .where(
                Media.organization_id == organization_id,
                Media.status == "stored",
                Media.created_at < now - timedelta(days=days),
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return 0, []
    ids = [row.id for row in rows]
    expired = await session.scalars(
        update(Media)
        .where(Media.id.in_(ids))
        .values(status="expired", expired_at=now, updated_at=now)
        .returning(Media)
        .execution_options(synchronize_session=False)
    )
    await record_media_updated(session, list(expired.all()))
    keys = {row.storage_key for row in rows if row.storage_key}
    still_used = set(
        await session.scalars(
            select(Media.storage_key).where(
                Media.organization_id == organization_id,
                Media.status == "stored",
                Media.storage_key.in_(keys),
            )
        )
    )
    return len(ids), sorted(keys - still_used)


class MediaRetentionLoop:
    """The `media-retention` background loop."""

    name = "media-retention"

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        storage: MediaStorage,
    ) -> None:
        self.factory = factory
        self.storage = storage
        self.every = settings.media_retention_every_seconds
        self.expired = 0
        self._next_run = 0.0

    async def run_once(self) -> float | None:
        """Expire one batch per organisation; 0 while any had a full batch, else not before
        `media_retention_every_seconds` (the runner looks in at every poll)."""
        wait = self._next_run - time.monotonic()
        if wait > 0:
            return wait
        async with self.factory() as session:
            policies = await retention_by_organization(session)
        more = False
        for organization_id, days in policies.items():
            async with unit_of_work(self.factory) as session:
                count, keys = await expire_batch(session, organization_id, days)
            for key in keys:
                await self.storage.delete(key)
            self.expired += count
            more = more or count == BATCH
        if more:
            return 0
        self._next_run = time.monotonic() + self.every
        return self.every


__all__ = ["MediaRetentionLoop", "expire_batch"]
