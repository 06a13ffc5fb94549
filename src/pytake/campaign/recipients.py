"""GET /v1/campaigns/{id}/recipients: each contact of the audience with its state.

A recipient handed to the send pipeline shows its message's state (sending while queued or
being sent, then sent, delivered, read or failed, as status webhooks report), so the list
never lags the metrics.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from pytake.campaign.metrics import plus_hours
from pytake.campaign.schemas import RecipientErrorOut, RecipientOut
from pytake.kit.pagination import PageParams
from pytake.models import Contact, Message
from pytake.models.campaign import CampaignRecipient


def shown_status() -> ColumnElement[Any]:
    """The recipient's status as the API shows it."""
    r, m = CampaignRecipient, Message
    return case(
        (m.status.in_(("sent", "delivered", "read", "failed")), m.status),
        (m.status.in_(("queued", "sending")), "sending"),
        else_=r.status,
    )


async def list_recipients(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    params: PageParams,
    status: str | None,
    reply_window_hours: float,
) -> tuple[list[RecipientOut], int]:
    r, m, c = CampaignRecipient, Message, Contact
    shown = shown_status()
    where: list[ColumnElement[bool]] = [r.campaign_id == campaign_id]
    if status is not None:
        where.append(shown == status)
    base = (
        select(r.contact_id).select_from(r).outerjoin(m, m.id == r.message_id).where(and_(*where))
    )
    total = int(await session.scalar(select(func.count()).select_from(base.subquery())) or 0)
    inbound = aliased(Message)
    replied_at = (
        select(func.min(inbound.created_at))
        .where(
            inbound.conversation_id == r.conversation_id,
            inbound.direction == "inbound",
            inbound.created_at >= m.sent_at,
            inbound.created_at <= plus_hours(session, m.sent_at, reply_window_hours),
        )
        .correlate(r, m)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(r, m, c.name, c.profile_name, shown.label("shown"), replied_at.label("replied"))
        .select_from(r)
        .outerjoin(m, m.id == r.message_id)
        .join(c, c.id == r.contact_id)
        .where(and_(*where))
        .order_by(r.created_at, r.contact_id)
        .offset(params.offset)
        .limit(params.limit)
    )
    return [_out(*row) for row in rows.all()], total


def _out(
    r: CampaignRecipient,
    m: Message | None,
    name: str | None,
    profile_name: str | None,
    shown: str,
    replied: Any,
) -> RecipientOut:
    code = m.error_code if m is not None and m.status == "failed" else r.error_code
    title = m.error_title if m is not None and m.status == "failed" else r.error_title
    error = RecipientErrorOut(code=code, title=title) if code is not None or title else None
    return RecipientOut(
        contact_id=r.contact_id,
        contact_name=name or profile_name,
        phone=r.phone,
        status=shown,
        skip_reason=r.skip_reason,
        message_id=r.message_id,
        whatsapp_message_id=m.provider_message_id if m is not None else None,
        error=error,
        queued_at=r.queued_at,
        sent_at=m.sent_at if m is not None else r.sent_at,
        delivered_at=m.delivered_at if m is not None else None,
        read_at=m.read_at if m is not None else None,
        failed_at=m.failed_at if m is not None else r.failed_at,
        replied_at=replied,
    )
