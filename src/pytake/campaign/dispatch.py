"""The campaign dispatcher: a background loop (`campaigns`) in every worker.

Each pass:
1. starts scheduled campaigns that are due (a conditional UPDATE claims each: exactly one
   worker starts it however many run);
2. for each running campaign, in one transaction holding its row (SKIP LOCKED on PostgreSQL,
   so workers take turns; SQLite has one writer):
   - settles recipients from their messages' states (sent, delivered, read, failed), counting
     runs of 131048 / 131049 (a run pauses the campaign with the reason) and noticing 130429
     answers (which halve the campaign's pace; it recovers step by step);
   - completes the campaign when nothing is pending or in flight;
   - hands the next recipients to the durable send pipeline: for each, a `queued` outbound
     message in the contact's live conversation, due at its paced slot.

Pacing is a GCRA on the campaign row (`paced_until`): message i of a hand-off is due at
`paced_until + i / rate`, rate = the campaign's share of its number's throughput
(pytake.campaign.pacing: min(send_rate_limit, throughput) × throttle factor, split fairly
between the campaigns running on the number), and hand-offs run at most
`campaign_handoff_ahead_seconds` ahead. The message
dispatcher (pytake.message.sending) claims messages as they fall due — across any number of
workers — sends them, retries 130429 with backoff, and reconciles a worker's crash from status
webhooks (`biz_opaque_callback_data`), so a recipient is never sent twice: its hand-off is one
transaction (recipient `sending` + its message), and the message is the pipeline's.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.campaign import lifecycle
from pytake.campaign.pacing import running_rates
from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.errors import PyTakeError
from pytake.events import DomainEvent, record_many, wake_after_commit
from pytake.kit.sql import is_postgresql
from pytake.message.sending.render import contact_context, render_text
from pytake.models import Contact, Conversation, Message, MessageTemplate
from pytake.models.base import utcnow
from pytake.models.campaign import Campaign, campaigns_table, recipients_table
from pytake.models.conversation import LIVE_CONVERSATION_STATUSES
from pytake.template.parameters import template_message

log = logging.getLogger(__name__)

_messages = cast(Table, Message.__table__)
_conversations = cast(Table, Conversation.__table__)
_contacts = cast(Table, Contact.__table__)

POLICY_ERRORS = (131048, 131049)
THROTTLED = 130429
_MIN_FACTOR = 0.05


@dataclass
class _Sendable:
    template: MessageTemplate | None
    problem: str | None
    expires: float


class CampaignLoop:
    """The `campaigns` background loop (runner protocol: `name`, `run_once`)."""

    name = "campaigns"

    def __init__(self, factory: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.factory = factory
        self.settings = settings
        self._templates: dict[uuid.UUID, _Sendable] = {}
        self.handed_off = 0

    async def run_once(self) -> float | None:
        await self.start_due()
        async with self.factory() as session:
            running = await running_rates(session)
            next_scheduled = await session.scalar(
                select(func.min(Campaign.scheduled_at)).where(Campaign.status == "scheduled")
            )
        for campaign_id, rate in running.items():
            await self.tick(campaign_id, rate)
        poll = self.settings.campaign_poll_seconds
        if running:
            return poll
        if next_scheduled is not None:
            return max(0.0, (next_scheduled - utcnow()).total_seconds())
        return None

    # -- scheduled starts -------------------------------------------------------------------

    async def start_due(self) -> list[uuid.UUID]:
        """Start the scheduled campaigns that are due; each by exactly one worker."""
        now = utcnow()
        c = campaigns_table.c
        due = (
            select(c.id)
            .where(c.status == "scheduled", c.scheduled_at <= now)
            .order_by(c.scheduled_at)
            .limit(20)
        )
        async with unit_of_work(self.factory) as session:
            if is_postgresql(session):
                due = due.with_for_update(skip_locked=True)
            claimed = list(
                (
                    await session.execute(
                        update(campaigns_table)
                        .where(c.id.in_(due.scalar_subquery()), c.status == "scheduled")
                        .values(status="running", updated_at=now)
                        .returning(c.id)
                    )
                ).scalars()
            )
            for campaign_id in claimed:
                campaign = await session.get(Campaign, campaign_id)
                assert campaign is not None
                await lifecycle.start(session, campaign)
                log.info("campaign %s started on schedule", campaign_id)
        return claimed

    # -- one running campaign ---------------------------------------------------------------

    async def tick(self, campaign_id: uuid.UUID, rate: float) -> None:
        """Settle, maybe pause or complete, and hand off the next paced batch at `rate` (the
        campaign's share of its number: pytake.campaign.pacing)."""
        async with unit_of_work(self.factory) as session:
            campaign = await _lock_running(session, campaign_id)
            if campaign is None:
                return
            factor = campaign.throttle_factor or 1.0
            await self.settle(session, campaign)
            # A 130429 seen now slows this hand-off already; a recovery waits for the next
            # pass's share (other campaigns on the number may have taken what this one left).
            rate *= min(1.0, (campaign.throttle_factor or 1.0) / factor)
            if campaign.status != "running":
                return
            if not await _has_unsettled(session, campaign_id):
                metrics = await _final_metrics(session, campaign, self.settings)
                await lifecycle.complete(session, campaign, metrics)
                return
            sendable = await self._sendable(session, campaign)
            if sendable.problem is not None:
                await lifecycle.pause(session, campaign, sendable.problem)
                return
            assert sendable.template is not None
            handed = await self.hand_off(session, campaign, sendable.template, rate)
            if handed:
                wake_after_commit(session, "dispatch")
        self.handed_off += handed

    async def _sendable(self, session: AsyncSession, campaign: Campaign) -> _Sendable:
        cached = self._templates.get(campaign.id)
        if cached is not None and cached.expires > time.monotonic():
            return cached
        template = (
            await session.get(MessageTemplate, campaign.template_id)
            if campaign.template_id
            else None
        )
        problem = None
        if template is None:
            problem = f"template '{campaign.template_name}' was deleted"
        elif template.status != "APPROVED":
            problem = f"template '{template.name}' is {template.status}; only APPROVED is sent"
        elif campaign.channel_id is None:
            problem = "the campaign's WhatsApp number was deleted"
        found = _Sendable(template, problem, time.monotonic() + 5.0)
        self._templates[campaign.id] = found
        return found

    # -- settling ---------------------------------------------------------------------------

    async def settle(self, session: AsyncSession, campaign: Campaign) -> None:
        """Move in-flight recipients to sent / failed from their messages; pause on a run of
        policy errors; slow down on 130429 and recover."""
        now = utcnow()
        r, m = recipients_table.c, _messages.c
        rows = (
            await session.execute(
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
                .where(r.campaign_id == campaign.id, r.status == "sending")
                .order_by(m.updated_at)
            )
        ).all()
        settle_before = now - timedelta(seconds=self.settings.campaign_settle_after_seconds)
        sent: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        throttled = False
        streak, last_policy = campaign.policy_error_streak, None
        for row in rows:
            if row.status == "failed":
                failed.append(
                    {
                        "b_contact": row.contact_id,
                        "b_code": row.error_code,
                        "b_title": (row.error_title or "")[:300] or None,
                        "b_at": row.failed_at or now,
                    }
                )
                if row.error_code in POLICY_ERRORS:
                    streak += 1
                    last_policy = row
            elif row.status in ("delivered", "read") or (
                row.status == "sent" and row.sent_at is not None and row.sent_at < settle_before
            ):
                sent.append({"b_contact": row.contact_id, "b_at": row.sent_at or now})
                if row.status != "sent":
                    streak = 0
            elif (
                row.status == "queued"
                and row.error_code == THROTTLED
                and (campaign.throttled_at is None or row.updated_at > campaign.throttled_at)
            ):
                throttled = True
        await _write_settled(session, campaign.id, sent, failed, now)
        campaign.policy_error_streak = streak
        self._pace_feedback(campaign, throttled, now)
        threshold = self.settings.campaign_pause_after_policy_errors
        if streak >= threshold and last_policy is not None:
            reason = (
                f"{streak} messages in a row failed with {last_policy.error_code}"
                f" ({last_policy.error_title or 'policy error'}); paused to protect the number"
            )
            log.warning("campaign %s paused: %s", campaign.id, reason)
            await lifecycle.pause(session, campaign, reason[:500])

    def _pace_feedback(self, campaign: Campaign, throttled: bool, now: datetime) -> None:
        factor = campaign.throttle_factor or 1.0
        last = campaign.throttled_at
        # At most one halving a second: the answers of messages sent at the old pace (and
        # their retries, which the pipeline sends with backoff) arrive after the first one.
        if throttled and (last is None or now - last >= timedelta(seconds=1)):
            campaign.throttle_factor = max(_MIN_FACTOR, factor / 2)
            campaign.throttled_at = now
            # Messages already paced at the old rate keep their slots; new ones start after.
            log.info(
                "campaign %s: 130429 from the provider, pace now %.2f of its share",
                campaign.id,
                campaign.throttle_factor,
            )
        elif not throttled and factor < 1.0 and last is not None:
            recover = timedelta(seconds=self.settings.campaign_throttle_recover_seconds)
            if now - last >= recover:
                campaign.throttle_factor = min(1.0, factor * 1.25)
                campaign.throttled_at = now

    # -- hand-off ---------------------------------------------------------------------------

    async def hand_off(
        self, session: AsyncSession, campaign: Campaign, template: MessageTemplate, rate: float
    ) -> int:
        """Queue the next batch of pending recipients paced at `rate` messages/s; returns how
        many were queued."""
        now = utcnow()
        slot = max(campaign.paced_until or now, now)
        ahead = now + timedelta(seconds=self.settings.campaign_handoff_ahead_seconds)
        budget = int((ahead - slot).total_seconds() * rate)
        if budget <= 0:
            return 0
        limit = min(budget, self.settings.campaign_batch_size)
        r, c = recipients_table.c, _contacts.c
        rows = (
            await session.execute(
                select(
                    r.contact_id,
                    r.phone,
                    c.id,
                    c.organization_id,
                    c.name,
                    c.profile_name,
                    c.whatsapp_id,
                    c.email,
                    c.attributes,
                    c.opt_in,
                    c.is_blocked,
                    c.deleted_at,
                )
                .join(_contacts, c.id == r.contact_id)
                .where(r.campaign_id == campaign.id, r.status == "pending")
                .limit(limit)
            )
        ).all()
        if not rows:
            return 0
        batch = _Batch(campaign, now)
        variables = dict((campaign.message_content or {}).get("variables") or {})
        for row in rows:
            reason = _unreachable(row)
            if reason is not None:
                batch.skip(row.contact_id, reason, None)
                continue
            try:
                content = template_message(template, _rendered(variables, row))
            except PyTakeError as exc:
                batch.skip(row.contact_id, "missing_variable", exc.message)
                continue
            batch.send(row, content)
        if batch.sends:
            await batch.write(session, slot, rate)
            campaign.paced_until = slot + timedelta(seconds=len(batch.sends) / rate)
        await batch.write_skipped(session)
        return len(batch.sends)


def _unreachable(row: Any) -> str | None:
    """Why a contact may not be messaged now (it opted out or was blocked mid-campaign)."""
    if row.deleted_at is not None:
        return "deleted"
    if row.is_blocked:
        return "blocked"
    if not row.opt_in:
        return "opted_out"
    return None


def _rendered(variables: dict[str, Any], contact: Any) -> dict[str, Any]:
    """The campaign's variables with `{{contact.…}}` filled in for this contact."""
    if not any(isinstance(v, str) and "{" in v for v in variables.values()):
        return variables
    context = {"contact": contact_context(cast(Contact, contact))}
    return {
        key: render_text(value, context, f"message_content.variables.{key}")
        if isinstance(value, str)
        else value
        for key, value in variables.items()
    }


class _Batch:
    """One hand-off's rows: messages, new conversations, recipient updates."""

    def __init__(self, campaign: Campaign, now: datetime) -> None:
        self.campaign = campaign
        self.now = now
        self.sends: list[tuple[Any, dict[str, Any]]] = []
        self.skipped: list[dict[str, Any]] = []

    def skip(self, contact_id: uuid.UUID, reason: str, title: str | None) -> None:
        self.skipped.append(
            {"b_contact": contact_id, "b_reason": reason, "b_title": (title or "")[:300] or None}
        )

    def send(self, row: Any, content: dict[str, Any]) -> None:
        self.sends.append((row, content))

    async def write(self, session: AsyncSession, slot: datetime, rate: float) -> None:
        campaign, now = self.campaign, self.now
        assert campaign.channel_id is not None
        conversations = await _live_conversations(session, campaign, [r for r, _ in self.sends])
        message_rows, recipient_rows = [], []
        for index, (row, content) in enumerate(self.sends):
            message_id = uuid.uuid4()
            conversation_id = conversations[row.contact_id]
            message_rows.append(
                {
                    "id": message_id,
                    "organization_id": campaign.organization_id,
                    "conversation_id": conversation_id,
                    "contact_id": row.contact_id,
                    "channel_id": campaign.channel_id,
                    "direction": "outbound",
                    "type": "template",
                    "content": content,
                    "status": "queued",
                    "callback_data": str(message_id),
                    "recipient": row.whatsapp_id,
                    "attempts": 0,
                    "next_attempt_at": slot + timedelta(seconds=index / rate),
                    "created_at": now,
                    "updated_at": now,
                }
            )
            recipient_rows.append(
                {"b_contact": row.contact_id, "b_message": message_id, "b_conv": conversation_id}
            )
        await session.execute(insert(_messages), message_rows)
        conv = _conversations
        await session.execute(
            update(conv)
            .where(conv.c.id == bindparam("b_id"))
            .values(message_count=conv.c.message_count + 1, last_message_at=now, updated_at=now),
            [{"b_id": conversation_id} for conversation_id in conversations.values()],
        )
        r = recipients_table.c
        await session.execute(
            update(recipients_table)
            .where(r.campaign_id == campaign.id, r.contact_id == bindparam("b_contact"))
            .values(
                status="sending",
                message_id=bindparam("b_message"),
                conversation_id=bindparam("b_conv"),
                queued_at=now,
                updated_at=now,
            ),
            recipient_rows,
        )

    async def write_skipped(self, session: AsyncSession) -> None:
        if not self.skipped:
            return
        r = recipients_table.c
        await session.execute(
            update(recipients_table)
            .where(r.campaign_id == self.campaign.id, r.contact_id == bindparam("b_contact"))
            .values(
                status="skipped",
                skip_reason=bindparam("b_reason"),
                error_title=bindparam("b_title"),
                updated_at=self.now,
            ),
            self.skipped,
        )


async def _live_conversations(
    session: AsyncSession, campaign: Campaign, rows: list[Any]
) -> dict[uuid.UUID, uuid.UUID]:
    """contact id → its newest live conversation on the campaign's number (opened if none,
    with conversation.created as a send opens one)."""
    conv = _conversations.c
    contact_ids = [row.contact_id for row in rows]
    found: dict[uuid.UUID, uuid.UUID] = {}
    existing = await session.execute(
        select(conv.id, conv.contact_id)
        .where(
            conv.contact_id.in_(contact_ids),
            conv.channel_id == campaign.channel_id,
            conv.status.in_(LIVE_CONVERSATION_STATUSES),
        )
        .order_by(conv.created_at)
    )
    for conversation_id, contact_id in existing.all():
        found[contact_id] = conversation_id  # the newest wins
    now = utcnow()
    new_rows, events = [], []
    for row in rows:
        if row.contact_id in found:
            continue
        conversation_id = uuid.uuid4()
        found[row.contact_id] = conversation_id
        new_rows.append(
            {
                "id": conversation_id,
                "organization_id": campaign.organization_id,
                "contact_id": row.contact_id,
                "channel_id": campaign.channel_id,
                "status": "open",
                "is_bot_active": True,
                "tags": [],
                "message_count": 0,
                "unread_count": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
        events.append(
            DomainEvent(
                campaign.organization_id,
                "conversation.created",
                {
                    "conversation": {
                        "id": conversation_id,
                        "status": "open",
                        "contact_id": row.contact_id,
                        "channel_id": campaign.channel_id,
                        "assigned_to_id": None,
                        "team_id": None,
                    },
                    "contact": {
                        "id": row.contact_id,
                        "name": row.name or row.profile_name,
                        "whatsapp_id": row.whatsapp_id,
                        "opt_in": row.opt_in,
                    },
                },
            )
        )
    if new_rows:
        await session.execute(insert(_conversations), new_rows)
        await record_many(session, events)
    return found


async def _write_settled(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    sent: list[dict[str, Any]],
    failed: list[dict[str, Any]],
    now: datetime,
) -> None:
    r = recipients_table.c
    mine = (r.campaign_id == campaign_id, r.contact_id == bindparam("b_contact"))
    if sent:
        await session.execute(
            update(recipients_table)
            .where(*mine)
            .values(status="sent", sent_at=bindparam("b_at"), updated_at=now),
            sent,
        )
    if failed:
        await session.execute(
            update(recipients_table)
            .where(*mine)
            .values(
                status="failed",
                failed_at=bindparam("b_at"),
                error_code=bindparam("b_code"),
                error_title=bindparam("b_title"),
                updated_at=now,
            ),
            failed,
        )


async def _lock_running(session: AsyncSession, campaign_id: uuid.UUID) -> Campaign | None:
    """The running campaign, its row held for this transaction; None when another worker
    holds it (PostgreSQL) or it is no longer running."""
    if is_postgresql(session):
        return cast(
            Campaign | None,
            await session.scalar(
                select(Campaign)
                .where(Campaign.id == campaign_id, Campaign.status == "running")
                .with_for_update(skip_locked=True)
            ),
        )
    # SQLite: the first write takes the database's write lock, so reads after it are current.
    touched = await session.execute(
        update(campaigns_table)
        .where(campaigns_table.c.id == campaign_id, campaigns_table.c.status == "running")
        .values(updated_at=utcnow())
    )
    if not touched.rowcount:  # type: ignore[attr-defined]
        return None
    return await session.get(Campaign, campaign_id, populate_existing=True)


async def _has_unsettled(session: AsyncSession, campaign_id: uuid.UUID) -> bool:
    r = recipients_table.c
    found = await session.scalar(
        select(r.contact_id)
        .where(r.campaign_id == campaign_id, r.status.in_(("pending", "sending")))
        .limit(1)
    )
    return found is not None


async def _final_metrics(
    session: AsyncSession, campaign: Campaign, settings: Settings
) -> dict[str, Any]:
    from pytake.campaign.metrics import campaign_metrics

    metrics = (
        await campaign_metrics(session, [campaign.id], settings.campaign_reply_window_hours)
    )[campaign.id]
    return {
        "sent_count": metrics.sent,
        "delivered_count": metrics.delivered,
        "read_count": metrics.read,
        "failed_count": metrics.failed,
        "skipped_count": metrics.skipped_count,
    }
