"""Campaign metrics, counted from the recipients and their messages as they are now.

A recipient's delivery state is its message's (status webhooks move messages forward:
sent < delivered < read, failed terminal), so nothing is counted twice and a late or duplicate
webhook changes nothing. `replied_count` counts recipients with an inbound message in their
conversation within `reply_window_hours` (setting `campaign_reply_window_hours`, default 72)
after their message was sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, case, exists, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from pytake.kit.sql import is_postgresql
from pytake.models import Message
from pytake.models.campaign import CampaignRecipient

ACCEPTED = ("sent", "delivered", "read")


@dataclass
class Metrics:
    pending: int = 0
    sending: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0
    replied: int = 0
    cancelled: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def skipped_count(self) -> int:
        return sum(self.skipped.values())

    def rate(self, part: int) -> float:
        """`part` of the sent messages, in percent with one decimal."""
        return round(part * 100.0 / self.sent, 1) if self.sent else 0.0


def plus_hours(session: AsyncSession, column: Any, hours: float) -> ColumnElement[Any]:
    """`column + hours` in SQL on either engine."""
    if is_postgresql(session):
        return cast(ColumnElement[Any], column + literal_column(f"interval '{float(hours)} hours'"))
    # SQLite stores UTCDateTime as 'YYYY-MM-DD HH:MM:SS.ffffff'; strftime keeps the fraction.
    return func.strftime("%Y-%m-%d %H:%M:%f", column, f"+{int(hours * 3600)} seconds")


def replied_clause(
    session: AsyncSession, message: Any, recipient: Any, hours: float
) -> ColumnElement[bool]:
    """An inbound message in the recipient's conversation within the window after its send."""
    inbound = aliased(Message)
    return exists().where(
        inbound.conversation_id == recipient.conversation_id,
        inbound.direction == "inbound",
        inbound.created_at >= message.sent_at,
        inbound.created_at <= plus_hours(session, message.sent_at, hours),
    )


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


async def campaign_metrics(
    session: AsyncSession, campaign_ids: Sequence[uuid.UUID], reply_window_hours: float
) -> dict[uuid.UUID, Metrics]:
    """Metrics of several campaigns in one grouped query (and one for skip reasons)."""
    result = {cid: Metrics() for cid in campaign_ids}
    if not campaign_ids:
        return result
    r, m = CampaignRecipient, Message
    accepted = m.status.in_(ACCEPTED)
    stmt = (
        select(
            r.campaign_id,
            _count(r.status == "pending"),
            _count(and_(r.status == "sending", m.status.not_in((*ACCEPTED, "failed")))),
            _count(accepted),
            _count(m.status.in_(("delivered", "read"))),
            _count(m.status == "read"),
            _count((m.status == "failed") | ((r.status == "failed") & m.id.is_(None))),
            _count(and_(accepted, replied_clause(session, m, r, reply_window_hours))),
            _count(r.status == "cancelled"),
        )
        .select_from(r)
        .outerjoin(m, m.id == r.message_id)
        .where(r.campaign_id.in_(list(campaign_ids)))
        .group_by(r.campaign_id)
    )
    for cid, *counts in (await session.execute(stmt)).all():
        metric = result[cid]
        (
            metric.pending,
            metric.sending,
            metric.sent,
            metric.delivered,
            metric.read,
            metric.failed,
            metric.replied,
            metric.cancelled,
        ) = (int(c) for c in counts)
    reasons = await session.execute(
        select(r.campaign_id, r.skip_reason, func.count())
        .where(r.campaign_id.in_(list(campaign_ids)), r.status == "skipped")
        .group_by(r.campaign_id, r.skip_reason)
    )
    for cid, reason, n in reasons.all():
        result[cid].skipped[str(reason or "unknown")] = int(n)
    return result
