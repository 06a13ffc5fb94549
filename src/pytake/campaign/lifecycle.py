"""The campaign state machine and what each transition does to the recipients.

    draft ──start──▶ running ──(all settled)──▶ completed
    draft ──schedule──▶ scheduled ──(due, worker)──▶ running
    running ──pause (API, or a run of 131048/131049)──▶ paused ──resume──▶ running
    draft | scheduled | running | paused ──cancel──▶ cancelled

Each transition runs in the caller's transaction with the campaign row locked, so the API and
any number of workers agree on the state. Pausing or cancelling withdraws the messages handed
to the send pipeline that no worker has claimed yet (still `queued`): they are deleted and
their recipients return to `pending` (pause) or become `cancelled`; a message already claimed
is left to finish, so nothing is sent twice and nothing sent is forgotten.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.campaign.audience import materialise
from pytake.errors import Conflict
from pytake.events import record
from pytake.kit.sql import is_postgresql
from pytake.models import Conversation, Message
from pytake.models.base import utcnow
from pytake.models.campaign import Campaign, CampaignRecipient, recipients_table

# What each action may start from.
ALLOWED: dict[str, tuple[str, ...]] = {
    "start": ("draft", "scheduled"),
    "pause": ("running",),
    "resume": ("paused",),
    "cancel": ("draft", "scheduled", "running", "paused"),
    "update": ("draft", "scheduled"),
    "delete": ("draft",),
}


class CampaignStateConflict(Conflict):
    """The action does not apply to the campaign's current status (409, naming both)."""

    code = "campaign_state_conflict"
    documented_as = "duplicate_resource"
    default_message = "The campaign's status does not allow this"


def check_allowed(campaign: Campaign, action: str) -> None:
    if campaign.status not in ALLOWED[action]:
        allowed = ", ".join(ALLOWED[action])
        raise CampaignStateConflict(
            f"Cannot {action} a {campaign.status} campaign (only {allowed})",
            extra={"status": campaign.status},
        )


def event_data(campaign: Campaign, **extra: Any) -> dict[str, Any]:
    """The payload of campaign.started / paused / completed."""
    return {
        "campaign": {
            "id": campaign.id,
            "name": campaign.name,
            "status": campaign.status,
            "channel_id": campaign.channel_id,
            "template_id": campaign.template_id,
            "total_recipients": campaign.total_recipients,
            "started_at": campaign.started_at,
            "completed_at": campaign.completed_at,
            "pause_reason": campaign.pause_reason,
        },
        **extra,
    }


async def start(session: AsyncSession, campaign: Campaign) -> None:
    """Materialise the audience and set the campaign running (campaign.started)."""
    now = utcnow()
    counted = await materialise(
        session,
        campaign.id,
        campaign.organization_id,
        campaign.target_type,
        campaign.target_filters,
        now,
    )
    campaign.total_recipients = counted.reachable
    # Reasons of the rows are counted from the rows; only ids matching no contact stay here.
    campaign.skipped = {k: v for k, v in counted.skipped.items() if k == "not_found"}
    campaign.status = "running"
    campaign.started_at = now
    campaign.paced_until = now
    campaign.updated_at = now
    await session.flush()
    await record(session, campaign.organization_id, "campaign.started", event_data(campaign))


async def pause(session: AsyncSession, campaign: Campaign, reason: str | None) -> int:
    """Pause a running campaign (campaign.paused); returns how many messages were withdrawn."""
    now = utcnow()
    withdrawn = await withdraw(session, campaign.id, back_to="pending")
    campaign.status = "paused"
    campaign.paused_at = now
    campaign.pause_reason = reason
    campaign.updated_at = now
    await session.flush()
    await record(
        session,
        campaign.organization_id,
        "campaign.paused",
        event_data(campaign, reason=reason, withdrawn=withdrawn),
    )
    return withdrawn


async def resume(session: AsyncSession, campaign: Campaign) -> None:
    now = utcnow()
    campaign.status = "running"
    campaign.pause_reason = None
    campaign.policy_error_streak = 0
    campaign.paced_until = now
    campaign.updated_at = now
    await session.flush()


async def cancel(session: AsyncSession, campaign: Campaign) -> None:
    """Cancel: nothing more is sent; messages already with the provider keep their state."""
    now = utcnow()
    await withdraw(session, campaign.id, back_to="cancelled")
    r = recipients_table.c
    await session.execute(
        update(recipients_table)
        .where(r.campaign_id == campaign.id, r.status == "pending")
        .values(status="cancelled", updated_at=now)
    )
    campaign.status = "cancelled"
    campaign.cancelled_at = now
    campaign.updated_at = now
    await session.flush()


async def complete(session: AsyncSession, campaign: Campaign, metrics: dict[str, Any]) -> None:
    now = utcnow()
    campaign.status = "completed"
    campaign.completed_at = now
    campaign.updated_at = now
    await session.flush()
    await record(
        session,
        campaign.organization_id,
        "campaign.completed",
        event_data(campaign, metrics=metrics),
    )


async def withdraw(session: AsyncSession, campaign_id: uuid.UUID, back_to: str) -> int:
    """Delete the campaign's handed-over messages no worker has claimed; their recipients go
    `back_to` (pending or cancelled). Returns how many."""
    r = CampaignRecipient
    handed = list(
        (
            await session.execute(
                select(r.message_id).where(
                    r.campaign_id == campaign_id, r.status == "sending", r.message_id.is_not(None)
                )
            )
        ).scalars()
    )
    withdrawn: list[Any] = []
    for start_at in range(0, len(handed), 500):
        chunk = handed[start_at : start_at + 500]
        # `status = 'queued'` is re-checked under the row lock: a row a dispatcher has just
        # claimed (now `sending`) is not deleted, and goes out.
        result = await session.execute(
            delete(Message)
            .where(Message.id.in_(chunk), Message.status == "queued")
            .returning(Message.id, Message.conversation_id)
        )
        withdrawn.extend(result.all())
    if not withdrawn:
        return 0
    now = utcnow()
    await session.execute(
        update(recipients_table)
        .where(
            recipients_table.c.campaign_id == campaign_id,
            recipients_table.c.message_id == bindparam("b_message"),
        )
        .values(
            status=back_to,
            message_id=None,
            conversation_id=None,
            queued_at=None,
            error_code=None,
            error_title=None,
            updated_at=now,
        ),
        [{"b_message": row.id} for row in withdrawn],
    )
    conversations = cast(Table, Conversation.__table__)
    await session.execute(
        update(conversations)
        .where(conversations.c.id == bindparam("b_conversation"))
        .values(message_count=func.max(conversations.c.message_count - 1, 0))
        if not is_postgresql(session)
        else update(conversations)
        .where(conversations.c.id == bindparam("b_conversation"))
        .values(message_count=func.greatest(conversations.c.message_count - 1, 0)),
        [{"b_conversation": row.conversation_id} for row in withdrawn],
    )
    return len(withdrawn)
