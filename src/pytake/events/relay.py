"""The relay: publishes outbox rows that committed but were never published (a process died
between its commit and its publish, or Redis was down). Runs as a background loop."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.db import unit_of_work
from pytake.events.bus import EventBus
from pytake.events.types import CommittedEvent, iso
from pytake.models.base import utcnow
from pytake.models.event import Event

BATCH = 500


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
        # Give the normal after-commit path time to publish before treating a row as missed.
        self._grace = timedelta(seconds=grace_seconds)

    async def run_once(self) -> float | None:
        async with unit_of_work(self._factory) as session:
            rows = (
                await session.execute(
                    select(Event)
                    .where(Event.published_at.is_(None), Event.created_at < utcnow() - self._grace)
                    .order_by(Event.id)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).scalars()
            events = [
                CommittedEvent(e.id, str(e.organization_id), e.type, e.payload, iso(e.created_at))
                for e in rows
            ]
            if not events:
                return None
            await self._bus.publish(events)
            await session.execute(
                update(Event)
                .where(Event.id.in_([e.id for e in events]))
                .values(published_at=utcnow())
            )
        return 0 if len(events) == BATCH else None
