"""Forgetting expired `Idempotency-Key`s: a background loop deletes them in small batches.

A key is remembered for at least `idempotency_ttl_seconds` (a replay within that time returns
the first answer); after that the worker may delete it, and the same key then starts a new send.
Batches are small transactions so pruning a large backlog never holds long locks on the table
the send path inserts into.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.kit.sql import is_postgresql
from pytake.models.base import utcnow
from pytake.models.idempotency import idempotency_keys_table

log = logging.getLogger(__name__)


async def prune_expired_keys(session: AsyncSession, expired_before: datetime, limit: int) -> int:
    """Delete up to `limit` idempotency keys created before `expired_before`; returns how many."""
    keys = idempotency_keys_table.c
    oldest = select(keys.id).where(keys.created_at < expired_before).limit(limit)
    if is_postgresql(session):
        # Two workers pruning at once take different rows instead of waiting on each other.
        oldest = oldest.with_for_update(skip_locked=True)
    result = await session.execute(
        delete(idempotency_keys_table).where(keys.id.in_(oldest.scalar_subquery()))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class IdempotencyPruner:
    """The `idempotency-prune` background loop (runner protocol: `name`, `run_once`)."""

    name = "idempotency-prune"

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        ttl_seconds: float,
        every_seconds: float,
        batch_size: int,
    ) -> None:
        self.factory = factory
        self.ttl = timedelta(seconds=ttl_seconds)
        self.every = every_seconds
        self.batch_size = batch_size
        self._next_run = 0.0
        self._sweep = 0  # deleted by the batches of the current sweep, for one log line
        self.pruned = 0

    @classmethod
    def from_settings(
        cls, factory: async_sessionmaker[AsyncSession], settings: Settings
    ) -> IdempotencyPruner:
        return cls(
            factory,
            settings.idempotency_ttl_seconds,
            settings.idempotency_prune_every_seconds,
            settings.idempotency_prune_batch_size,
        )

    async def run_once(self) -> float | None:
        """Delete one batch when due; 0 while a full batch came back (more to delete)."""
        wait = self._next_run - time.monotonic()
        if wait > 0:
            # The runner wakes every loop at its poll interval; only the clock decides here.
            return wait
        async with unit_of_work(self.factory) as session:
            deleted = await prune_expired_keys(session, utcnow() - self.ttl, self.batch_size)
        self.pruned += deleted
        self._sweep += deleted
        if deleted >= self.batch_size:
            return 0
        if self._sweep:
            log.info("pruned %d expired idempotency keys", self._sweep)
        self._sweep = 0
        self._next_run = time.monotonic() + self.every
        return self.every
