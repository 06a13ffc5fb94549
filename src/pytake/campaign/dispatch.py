"""The campaign dispatcher: a background loop (`campaigns`) in every worker.

Each pass:
1. starts scheduled campaigns that are due (a conditional UPDATE claims each: exactly one
   worker starts it however many run);
2. for each running campaign, in one transaction holding its row (SKIP LOCKED on PostgreSQL,
   so workers take turns; SQLite has one writer):
   - settles recipients from their messages' states (sent, delivered, read, failed), counting
     runs of 131048 / 131049 (a run pauses the campaign with the reason) and noticing 130429
     answers (which halve the number's pace, every campaign on it; it recovers step by step);
   - completes the campaign when nothing is pending or in flight;
   - hands the next recipients to the durable send pipeline: for each, a `queued` outbound
     message in the contact's live conversation, due at its paced slot.

Pacing is a GCRA on the campaign row (`paced_until`): message i of a hand-off is due at
`paced_until + i / rate`, rate = the campaign's share of its number's throughput
(pytake.campaign.pacing: min(send_rate_limit, throughput), the number's throughput × its
throttle factor split fairly between the campaigns running on it), and hand-offs run at most
`campaign_handoff_ahead_seconds` ahead. The message
dispatcher (pytake.message.sending) claims messages as they fall due — across any number of
workers — sends them, retries 130429 with backoff, and reconciles a worker's crash from status
webhooks (`biz_opaque_callback_data`), so a recipient is never sent twice: its hand-off is one
transaction (recipient `sending` + its message), and the message is the pipeline's.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.campaign import handoff, lifecycle, pacing, settling
from pytake.campaign.pacing import running_rates
from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.errors import PyTakeError
from pytake.events import wake_after_commit
from pytake.kit.sql import is_postgresql
from pytake.models import MessageTemplate
from pytake.models.base import utcnow
from pytake.models.campaign import Campaign, campaigns_table, recipients_table
from pytake.template.parameters import slots, template_message

log = logging.getLogger(__name__)

POLICY_ERRORS = (131048, 131049)


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
        self._settled_at: dict[uuid.UUID, float] = {}
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
            settled = self._settle_due(campaign_id)
            if settled:
                # A 130429 seen now slows this hand-off already; a recovery waits for the
                # next pass's share (read with every campaign's on the number).
                rate *= await self.settle(session, campaign)
            if campaign.status != "running":
                return
            if settled and not await _has_unsettled(session, campaign_id):
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

    def _settle_due(self, campaign_id: uuid.UUID) -> bool:
        """Settle at most every `campaign_settle_every_seconds`: its SELECT reads every message
        in flight (what waits for its slot or for a status), and a hand-off needs none of it."""
        now = time.monotonic()
        last = self._settled_at.get(campaign_id)
        if last is not None and now - last < self.settings.campaign_settle_every_seconds:
            return False
        self._settled_at[campaign_id] = now
        return True

    async def _sendable(self, session: AsyncSession, campaign: Campaign) -> _Sendable:
        cached = self._templates.get(campaign.id)
        if cached is not None and cached.expires > time.monotonic():
            return cached
        template = (
            await session.get(MessageTemplate, campaign.template_id)
            if campaign.template_id
            else None
        )
        if template is not None:
            # Cached across passes: detached now, so no later rollback can expire it.
            session.expunge(template)
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

    async def settle(self, session: AsyncSession, campaign: Campaign) -> float:
        """Move in-flight recipients to sent / failed from their messages; pause on a run of
        policy errors; report 130429 answers to the number (or let it recover). Returns by
        how much the number's pace changed now (1.0: not slowed)."""
        now = utcnow()
        settle_before = now - timedelta(seconds=self.settings.campaign_settle_after_seconds)
        rows = await settling.settled_messages(session, campaign, settle_before)
        settled: list[dict[str, Any]] = []
        throttled: datetime | None = None
        streak, last_policy = campaign.policy_error_streak, None
        for row in rows:
            if row.status == "queued":  # a 130429 answer not seen before (see settling)
                throttled = max(throttled or row.updated_at, row.updated_at)
            elif row.status == "failed":
                settled.append(settling.failed(row, now))
                if row.error_code in POLICY_ERRORS:
                    streak += 1
                    last_policy = row
            else:
                settled.append(settling.sent(row, now))
                if row.status != "sent":
                    streak = 0
        await settling.write(session, campaign.id, settled, now)
        campaign.policy_error_streak = streak
        change = await self._pace_feedback(session, campaign, throttled, now)
        threshold = self.settings.campaign_pause_after_policy_errors
        if streak >= threshold and last_policy is not None:
            reason = (
                f"{streak} messages in a row failed with {last_policy.error_code}"
                f" ({last_policy.error_title or 'policy error'}); paused to protect the number"
            )
            log.warning("campaign %s paused: %s", campaign.id, reason)
            await lifecycle.pause(session, campaign, reason[:500])
        return change

    async def _pace_feedback(
        self, session: AsyncSession, campaign: Campaign, throttled: datetime | None, now: datetime
    ) -> float:
        """130429 is Meta's limit on the number, not on a campaign: the answers slow the
        number (every campaign on it), and its recovery is the number's too."""
        if campaign.channel_id is None:
            return 1.0
        if throttled is None:
            recover = self.settings.campaign_throttle_recover_seconds
            await pacing.recover(session, campaign.channel_id, now, recover)
            return 1.0
        campaign.throttled_at = throttled  # these answers are reported once
        factor = await pacing.slow_down(session, campaign.channel_id, now)
        if factor is None:  # halved less than a second ago (for these answers' elders)
            return 1.0
        # Messages already paced at the old rate keep their slots; new ones start after.
        log.info(
            "campaign %s: 130429 from the provider, its number now at %.2f of its throughput",
            campaign.id,
            factor,
        )
        return 0.5 if factor > pacing.MIN_FACTOR else 1.0

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
        # Back-pressure: no more than a hand-off's worth overdue and still waiting for the
        # send pipeline. When it falls behind (a slow provider, a busy machine) the slots pass
        # unused, rather than the whole audience piling up as `queued`.
        room = math.ceil(rate * self.settings.campaign_handoff_ahead_seconds) + 1
        budget = min(budget, room - await handoff.waiting(session, campaign, room, now))
        if budget <= 0:
            return 0
        limit = min(budget, self.settings.campaign_batch_size)
        rows = await handoff.pending_recipients(session, campaign, limit)
        if not rows:
            return 0
        batch = handoff.Batch(campaign, now)
        variables = dict((campaign.message_content or {}).get("variables") or {})
        plan = slots(template)  # once per hand-off, not per recipient
        for row in rows:
            reason = handoff.unreachable(row)
            if reason is not None:
                batch.skip(row.contact_id, reason, None)
                continue
            try:
                content = template_message(template, handoff.rendered(variables, row), plan=plan)
            except PyTakeError as exc:
                batch.skip(row.contact_id, "missing_variable", exc.message)
                continue
            batch.send(row, content)
        if batch.sends:
            await batch.write(session, slot, rate)
            campaign.paced_until = slot + timedelta(seconds=len(batch.sends) / rate)
        await batch.write_skipped(session)
        return len(batch.sends)


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
