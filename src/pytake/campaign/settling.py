"""Settling: a campaign's in-flight (`sending`) recipients become `sent` or `failed` from their
messages' states, in one UPDATE per pass.

The SELECT returns only what changes something — messages delivered, read or failed, `sent`
ones older than the settle delay, and 130429 answers newer than the last one the campaign
reacted to — not every message in flight (most of them wait for their paced slot, or for a
status webhook), so a pass costs what settles, not what is queued.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Integer, String, Table, and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.kit.sql import BatchSource, statement
from pytake.models import Message
from pytake.models.base import UTCDateTime
from pytake.models.campaign import Campaign, recipients_table

THROTTLED = 130429
_messages = cast(Table, Message.__table__)
_NEVER = datetime(2000, 1, 1, tzinfo=UTC)


def _settled_stmt() -> Any:
    r, m = recipients_table.c, _messages.c
    return (
        select(
            r.contact_id,
            m.status,
            m.error_code,
            m.error_title,
            m.sent_at,
            m.failed_at,
            m.updated_at,
        )
        .join(_messages, m.id == r.message_id)
        .where(
            r.campaign_id == bindparam("b_campaign"),
            r.status == "sending",
            or_(
                m.status.in_(("delivered", "read", "failed")),
                and_(m.status == "sent", m.sent_at < bindparam("b_settle_before")),
                and_(
                    m.status == "queued",
                    m.error_code == THROTTLED,
                    m.updated_at > bindparam("b_throttled_at"),
                ),
            ),
        )
        .order_by(m.updated_at)
    )


async def settled_messages(
    session: AsyncSession, campaign: Campaign, settle_before: datetime
) -> list[Any]:
    """The campaign's in-flight messages that settle now, and its new 130429 answers
    (status `queued`), in the order they changed."""
    stmt = statement(session, "campaign.settled", _settled_stmt)
    params = {
        "b_campaign": campaign.id,
        "b_settle_before": settle_before,
        "b_throttled_at": campaign.throttled_at or _NEVER,
    }
    return list((await session.execute(stmt, params)).all())


def sent(row: Any, now: datetime) -> dict[str, Any]:
    return {
        "contact": row.contact_id,
        "status": "sent",
        "sent": row.sent_at or now,
        "failed": None,
        "code": None,
        "title": None,
    }


def failed(row: Any, now: datetime) -> dict[str, Any]:
    return {
        "contact": row.contact_id,
        "status": "failed",
        "sent": None,
        "failed": row.failed_at or now,
        "code": row.error_code,
        "title": (row.error_title or "")[:300] or None,
    }


def _source(session: AsyncSession) -> BatchSource:
    ts = UTCDateTime()
    return BatchSource(
        session, "settled", contact=recipients_table.c.contact_id.type, status=String(),
        sent=ts, failed=ts, code=Integer(), title=String(),
    )  # fmt: skip


def _write_stmt(session: AsyncSession) -> Any:
    settled, r = _source(session).c, recipients_table.c
    return (
        update(recipients_table)
        .where(
            r.campaign_id == bindparam("b_campaign"),
            r.contact_id == settled.contact,
            r.status == "sending",
        )
        .values(
            status=settled.status,
            sent_at=settled.sent,
            failed_at=settled.failed,
            error_code=settled.code,
            error_title=settled.title,
            updated_at=bindparam("b_now", type_=UTCDateTime()),
        )
    )


async def write(
    session: AsyncSession, campaign_id: uuid.UUID, settled: list[dict[str, Any]], now: datetime
) -> None:
    """Set the recipients `sent` / `failed` (rows of `sent()` / `failed()`), one statement."""
    if not settled:
        return
    await session.execute(
        statement(session, "campaign.settle", lambda: _write_stmt(session)),
        _source(session).params(settled, campaign=campaign_id, now=now),
    )
