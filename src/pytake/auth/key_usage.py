"""API keys' `last_used_at`, written in batches off the request path.

Writing it from the request (in a transaction of its own, so that it sticks when the request
fails) took a second pooled connection per request: 16 concurrent API-key requests held the
whole SQLite pool and waited on each other for a second one. A request now only notes the use
here; one UPDATE per flush writes every key used since the last one, shortly after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.db import unit_of_work
from pytake.models import ApiKey

log = logging.getLogger(__name__)

# Touching last_used_at on every call would turn every read into a write.
RESOLUTION = timedelta(seconds=60)
FLUSH_EVERY_SECONDS = 1.0

_api_keys = cast(Table, ApiKey.__table__)
_TOUCH = (
    update(_api_keys)
    .where(_api_keys.c.id == bindparam("key_id"))
    .values(last_used_at=bindparam("used_at"))
)


class KeyUsage:
    """Per process: the keys used since the last flush, and when."""

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory
        self._pending: dict[uuid.UUID, datetime] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, key_id: uuid.UUID, last_used_at: datetime | None, now: datetime) -> None:
        """A request authenticated with this key (stored `last_used_at` as read)."""
        if last_used_at is not None and now - last_used_at <= RESOLUTION:
            return
        self._pending[key_id] = now
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_soon(), name="api-key-usage")

    def last_used(self, key_id: uuid.UUID, stored: datetime | None) -> datetime | None:
        """`stored`, or this process's newer use not written yet."""
        pending = self._pending.get(key_id)
        return pending if pending is not None and (stored is None or pending > stored) else stored

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_EVERY_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            async with unit_of_work(self._factory) as session:
                await session.execute(
                    _TOUCH, [{"key_id": k, "used_at": at} for k, at in pending.items()]
                )
        except BaseException as exc:
            # Bookkeeping only: keep the uses for the next flush rather than fail anything.
            for key_id, at in pending.items():
                self._pending.setdefault(key_id, at)
            if not isinstance(exc, Exception):
                raise  # cancelled (shutdown): close() writes them
            log.warning("could not record %d API keys' last use", len(pending), exc_info=True)

    async def close(self) -> None:
        """Write what is pending (at shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
