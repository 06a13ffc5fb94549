"""The relay: publishes events that committed but were never published (a process died
between its commit and its publish, or Redis was down). Runs as a background loop."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.db import unit_of_work
from pytake.events.bus import EventBus
from pytake.events.types import CommittedEvent, iso
from pytake.models.base import utcnow
from pytake.models.event import OutboxEvent, UnpublishedEvents

# Per round: at most this many `events_unpublished` rows, and no more of them than fit in
# MAX_EVENTS events (a row lists one batch's events, up to ingest's 2,000), so that one publish
# stays a bounded message.
BATCH = 20
MAX_EVENTS = 2_000


class EventsRelay:
    name = "events-relay"

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        bus: EventBus,
        grace_seconds: float,
    ) -> None:
        self._factory = factory
        self._bus = bus
        # Give the normal after-commit path time to publish before treating a batch as missed.
        self._grace = timedelta(seconds=grace_seconds)

    async def run_once(self) -> float | None:
        async with unit_of_work(self._factory) as session:
            missed = (
                await session.execute(
                    select(UnpublishedEvents.id, UnpublishedEvents.event_ids)
                    .where(UnpublishedEvents.created_at < utcnow() - self._grace)
                    .order_by(UnpublishedEvents.id)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not missed:
                return None
            found, missed = len(missed), _within_budget(missed)
            ids = sorted({event_id for _, event_ids in missed for event_id in event_ids})
            rows = await session.scalars(
                select(OutboxEvent).where(OutboxEvent.id.in_(ids)).order_by(OutboxEvent.id)
            )
            events = [
                CommittedEvent(e.id, str(e.organization_id), e.type, e.payload, iso(e.created_at))
                for e in rows
            ]
            # Their transaction's wake-ups went with the process that missed publishing them:
            # the webhook loop looks for deliveries they may have created.
            await self._bus.publish(events, wake={"webhooks"})
            await session.execute(
                delete(UnpublishedEvents).where(UnpublishedEvents.id.in_([m.id for m in missed]))
            )
        # At once again while rows were left for the next round.
        return 0 if found == BATCH or len(missed) < found else None


def _within_budget(rows: Sequence[Any]) -> list[Any]:
    """The first rows whose events add up to MAX_EVENTS at most (always at least one row)."""
    taken: list[Any] = []
    total = 0
    for row in rows:
        if taken and total + len(row.event_ids) > MAX_EVENTS:
            break
        taken.append(row)
        total += len(row.event_ids)
    return taken
