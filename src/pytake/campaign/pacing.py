"""How fast each running campaign sends: its share of its number's throughput.

Meta limits each phone number (80 messages/s by default, up to 1,000 once raised: the
number's `throughput`), so the campaigns running on one number share it. A campaign asks for
min(send_rate_limit, throughput); the number can take throughput × its throttle factor (halved
by 130429 answers, whichever campaign's message got one, recovering step by step:
`slow_down` / `recover`), split max-min fairly between those asks — a campaign asking for less
than an equal share keeps its ask, the others split the rest equally — so together they never
exceed what the number can take now.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.models import Channel
from pytake.models.campaign import Campaign
from pytake.models.channel import DEFAULT_THROUGHPUT

MIN_RATE = 0.2  # messages per second: a campaign throttled to nothing still makes progress
MIN_FACTOR = 0.05
_numbers = cast(Table, Channel.__table__)


@dataclass(frozen=True, slots=True)
class Ask:
    campaign_id: uuid.UUID
    channel_id: uuid.UUID | None
    send_rate_limit: int | None
    throughput: int
    # The number's throttle factor (Channel.throttle_factor), the same for every
    # campaign on it.
    number_factor: float = 1.0

    @property
    def rate(self) -> float:
        """What the campaign would send at alone on its number, unthrottled."""
        cap = float(self.throughput)
        return max(MIN_RATE, min(float(self.send_rate_limit or cap), cap))

    @property
    def capacity(self) -> float:
        """What its number may send now: throughput × the number's throttle factor."""
        return max(MIN_RATE, self.throughput * (self.number_factor or 1.0))


def share(asks: Iterable[Ask]) -> dict[uuid.UUID, float]:
    """Each campaign's rate: its number's capacity split max-min fairly between the asks."""
    by_number: dict[uuid.UUID | None, list[Ask]] = defaultdict(list)
    for ask in asks:
        by_number[ask.channel_id].append(ask)
    rates: dict[uuid.UUID, float] = {}
    for channel_id, group in by_number.items():
        if channel_id is None:  # the number was deleted: the campaign pauses on its tick
            rates.update((ask.campaign_id, ask.rate) for ask in group)
            continue
        left, count = group[0].capacity, len(group)
        for ask in sorted(group, key=lambda a: a.rate):
            given = max(MIN_RATE, min(ask.rate, left / count))
            rates[ask.campaign_id] = given
            left, count = max(0.0, left - given), count - 1
    return rates


async def running_rates(
    session: AsyncSession, channel_ids: Iterable[uuid.UUID] | None = None
) -> dict[uuid.UUID, float]:
    """Running campaign id → the rate it is paced at now (on the given numbers, or all)."""
    c, w = Campaign, Channel
    stmt = (
        select(c.id, c.channel_id, c.send_rate_limit, w.throughput, w.throttle_factor)
        .outerjoin(w, w.id == c.channel_id)
        .where(c.status == "running")
    )
    if channel_ids is not None:
        stmt = stmt.where(c.channel_id.in_(list(channel_ids)))
    rows = (await session.execute(stmt)).all()
    return share(
        Ask(row[0], row[1], row[2], row[3] or DEFAULT_THROUGHPUT, row[4] or 1.0) for row in rows
    )


async def slow_down(session: AsyncSession, channel_id: uuid.UUID, now: datetime) -> float | None:
    """A 130429 answer on the number: halve its throttle factor — at most once a second, as
    the answers of messages sent at the old pace (and their retries) follow the first one,
    whichever campaign or worker reports them. Returns the new factor (None: not halved)."""
    w = _numbers.c
    halved = w.throttle_factor / 2
    stmt = (
        update(_numbers)
        .where(
            w.id == channel_id,
            or_(w.throttled_at.is_(None), w.throttled_at <= now - timedelta(seconds=1)),
        )
        .values(
            throttle_factor=case((halved < MIN_FACTOR, MIN_FACTOR), else_=halved),
            throttled_at=now,
        )
        .returning(w.throttle_factor)
    )
    factor = (await session.execute(stmt)).scalar()
    return float(factor) if factor is not None else None


async def recover(
    session: AsyncSession, channel_id: uuid.UUID, now: datetime, after_seconds: float
) -> None:
    """No 130429 for `after_seconds` since the number's last change: its factor grows by a
    quarter, up to 1 (a conditional UPDATE: one step per period however many report it)."""
    w = _numbers.c
    grown = w.throttle_factor * 1.25
    await session.execute(
        update(_numbers)
        .where(
            w.id == channel_id,
            w.throttle_factor < 1.0,
            w.throttled_at <= now - timedelta(seconds=after_seconds),
        )
        .values(throttle_factor=case((grown > 1.0, 1.0), else_=grown), throttled_at=now)
    )
