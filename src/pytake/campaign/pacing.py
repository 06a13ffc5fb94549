"""How fast each running campaign sends: its share of its number's throughput.

Meta limits each phone number (80 messages/s by default, up to 1,000 once raised: the
number's `throughput`), so the campaigns running on one number share it. A campaign asks for
min(send_rate_limit, throughput) × its throttle factor (halved by 130429 answers, recovering
step by step: pytake.campaign.dispatch); the number's throughput is split max-min fairly
between those asks — a campaign asking for less than an equal share keeps its ask, the others
split the rest equally — so together they never exceed the number's throughput.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.models import WhatsAppConfig
from pytake.models.campaign import Campaign
from pytake.models.channel import DEFAULT_THROUGHPUT

MIN_RATE = 0.2  # messages per second: a campaign throttled to nothing still makes progress


@dataclass(frozen=True, slots=True)
class Ask:
    campaign_id: uuid.UUID
    channel_id: uuid.UUID | None
    send_rate_limit: int | None
    throttle_factor: float
    throughput: int

    @property
    def rate(self) -> float:
        """What the campaign would send at alone on its number."""
        cap = float(self.throughput)
        base = min(float(self.send_rate_limit or cap), cap)
        return max(MIN_RATE, base * (self.throttle_factor or 1.0))


def asked_rate(campaign: Campaign, throughput: int) -> float:
    """min(send_rate_limit, throughput) × the campaign's throttle factor."""
    ask = Ask(
        campaign.id,
        campaign.channel_id,
        campaign.send_rate_limit,
        campaign.throttle_factor,
        throughput,
    )
    return ask.rate


def share(asks: Iterable[Ask]) -> dict[uuid.UUID, float]:
    """Each campaign's rate: its number's throughput split max-min fairly between the asks."""
    by_number: dict[uuid.UUID | None, list[Ask]] = defaultdict(list)
    for ask in asks:
        by_number[ask.channel_id].append(ask)
    rates: dict[uuid.UUID, float] = {}
    for channel_id, group in by_number.items():
        if channel_id is None:  # the number was deleted: the campaign pauses on its tick
            rates.update((ask.campaign_id, ask.rate) for ask in group)
            continue
        left, count = float(group[0].throughput), len(group)
        for ask in sorted(group, key=lambda a: a.rate):
            given = max(MIN_RATE, min(ask.rate, left / count))
            rates[ask.campaign_id] = given
            left, count = max(0.0, left - given), count - 1
    return rates


async def running_rates(
    session: AsyncSession, channel_ids: Iterable[uuid.UUID] | None = None
) -> dict[uuid.UUID, float]:
    """Running campaign id → the rate it is paced at now (on the given numbers, or all)."""
    c, w = Campaign, WhatsAppConfig
    stmt = (
        select(c.id, c.channel_id, c.send_rate_limit, c.throttle_factor, w.throughput)
        .outerjoin(w, w.id == c.channel_id)
        .where(c.status == "running")
    )
    if channel_ids is not None:
        stmt = stmt.where(c.channel_id.in_(list(channel_ids)))
    rows = (await session.execute(stmt)).all()
    return share(
        Ask(row[0], row[1], row[2], row[3] or 1.0, row[4] or DEFAULT_THROUGHPUT) for row in rows
    )
