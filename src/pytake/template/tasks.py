"""The periodic template sync: every Cloud API number's templates read from Meta again every
`template_sync_interval_seconds`, wherever the background loops run.

Each number has a row in `template_sync_states` (added here when missing) with its next due
time; a loop claims due rows with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so several
workers never read the same account at once, and a worker that dies mid-sync only delays that
number until its lease runs out.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import aiohttp
from sqlalchemy import and_, delete, exists, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.errors import PyTakeError
from pytake.kit.sql import is_postgresql
from pytake.models import Channel, TemplateSyncState
from pytake.models.base import UTCDateTime, utcnow
from pytake.template.sync import sync_channel
from pytake.whatsapp.provider import ProviderError

log = logging.getLogger(__name__)

BATCH = 10
LEASE = timedelta(minutes=5)
# After a failure (Meta down, a revoked token) the number is tried again sooner than a full
# interval, but not at every poll.
RETRY_AFTER = timedelta(minutes=15)


def _syncable() -> list[object]:
    return [
        Channel.provider == "official",
        Channel.business_account_id.is_not(None),
        Channel.is_active.is_(True),
    ]


async def add_missing_states(session: AsyncSession) -> None:
    """A due state row for every syncable number that has none (safe to race)."""
    now = utcnow()
    missing = select(Channel.id, Channel.organization_id, literal(now, UTCDateTime())).where(
        *_syncable(),  # type: ignore[arg-type]
        ~exists().where(TemplateSyncState.channel_id == Channel.id),
    )
    dialect = postgresql if is_postgresql(session) else sqlite
    stmt = (
        dialect.insert(TemplateSyncState)
        .from_select(["channel_id", "organization_id", "next_sync_at"], missing)
        .on_conflict_do_nothing()
    )
    await session.execute(stmt)


async def claim_due(session: AsyncSession, limit: int = BATCH) -> list[uuid.UUID]:
    """Lease up to `limit` numbers whose sync is due, the longest-waiting first."""
    now = utcnow()
    state = TemplateSyncState
    ids = list(
        await session.scalars(
            select(state.channel_id)
            .where(
                state.next_sync_at <= now,
                or_(state.leased_until.is_(None), state.leased_until < now),
            )
            .order_by(state.next_sync_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if ids:
        await session.execute(
            update(state).where(state.channel_id.in_(ids)).values(leased_until=now + LEASE)
        )
    return ids


class TemplateSyncLoop:
    """Claims due numbers in batches and syncs each in its own transaction."""

    name = "template-sync"

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        http: aiohttp.ClientSession,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.http = http
        self.interval = timedelta(seconds=settings.template_sync_interval_seconds)

    async def run_once(self) -> float | None:
        """Sync one batch of due numbers; 0 when more may be due, else a slow poll."""
        async with unit_of_work(self.factory) as session:
            await add_missing_states(session)
            claimed = await claim_due(session)
        for channel_id in claimed:
            await self.sync_one(channel_id)
        return 0 if len(claimed) == BATCH else min(60.0, self.interval.total_seconds())

    async def sync_one(self, channel_id: uuid.UUID) -> None:
        """Sync a claimed number and set its next due time (sooner after a failure)."""
        error: str | None = None
        async with unit_of_work(self.factory) as session:
            channel = await session.scalar(
                select(Channel).where(
                    and_(Channel.id == channel_id, *_syncable())  # type: ignore[arg-type]
                )
            )
            if channel is None:  # deleted, deactivated or no longer a Cloud API number
                await session.execute(
                    delete(TemplateSyncState).where(TemplateSyncState.channel_id == channel_id)
                )
                return
            try:
                await sync_channel(session, self.settings, self.http, channel)
            except ProviderError as exc:
                error = exc.plain_explanation[:500]
            except PyTakeError as exc:  # e.g. the access token cannot be decrypted
                error = exc.message[:500]
        if error is not None:
            log.warning("template sync of number %s failed: %s", channel_id, error)
        now = utcnow()
        async with unit_of_work(self.factory) as session:
            values: dict[str, object] = {"leased_until": None, "last_error": error}
            if error is None:
                values.update(last_synced_at=now, next_sync_at=now + self.interval)
            else:
                values["next_sync_at"] = now + min(RETRY_AFTER, self.interval)
            await session.execute(
                update(TemplateSyncState)
                .where(TemplateSyncState.channel_id == channel_id)
                .values(**values)
            )
