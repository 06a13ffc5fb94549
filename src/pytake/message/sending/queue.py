"""The send queue's SQL: claim due rows, record outcomes, reconcile abandoned `sending` rows.

Outbound messages are the queue (`queued → sending → sent | failed`). Every statement is Core
and multi-row, so a batch of N messages costs a handful of round trips, not N ORM units.
A claim moves rows to `sending` with the worker's id; outcomes are written only while the row
is still claimed by that worker, so a late answer cannot overwrite a reconciled row.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import Integer, String, and_, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.kit.sql import among, is_postgresql, statement
from pytake.message.statuses import apply_pending_statuses, lock_provider_ids
from pytake.message.tables import messages, pending_statuses
from pytake.models.base import UTCDateTime, utcnow
from pytake.whatsapp.cloud.client import ProviderUnreachable
from pytake.whatsapp.provider import OutboundMessage, ProviderError, SendResult

_RETURNED = (
    messages.c.id,
    messages.c.organization_id,
    messages.c.conversation_id,
    messages.c.channel_id,
    messages.c.recipient,
    messages.c.type,
    messages.c.content,
    messages.c.context_provider_message_id,
    messages.c.callback_data,
    messages.c.attempts,
)


@dataclass(frozen=True, slots=True)
class SendJob:
    """A claimed message: everything needed to send it."""

    id: uuid.UUID
    organization_id: uuid.UUID
    conversation_id: uuid.UUID
    channel_id: uuid.UUID | None
    recipient: str
    type: str
    content: dict[str, Any]
    context_message_id: str | None
    callback_data: str | None
    attempts: int

    def outbound(self) -> OutboundMessage:
        return OutboundMessage(
            to=self.recipient,
            type=self.type,
            content=self.content,
            context_message_id=self.context_message_id,
            callback_data=self.callback_data,
        )


@dataclass(slots=True)
class SendOutcome:
    """What happened to one job: accepted (`result`) or an error."""

    job: SendJob
    result: SendResult | None = None
    error: ProviderError | None = None
    # When the provider accepted it (sent_at), which may be a moment before it is written.
    at: datetime | None = None
    # Filled by record_outcomes: sent | queued | failed | sending (outcome unknown, reconcile)
    status: str = ""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    backoff_base: float
    backoff_max: float
    lease_seconds: float
    ambiguous_recheck_seconds: float

    def delay(self, attempts: int, error: ProviderError | None) -> float:
        """Exponential backoff with jitter (half to full delay); pair-rate waits 4^n seconds."""
        base = self.backoff_base * 2 ** max(0, attempts - 1)
        if error is not None and error.code == 131056:
            base = max(base, self.backoff_base * 4 ** max(0, attempts - 1))
        ceiling = min(self.backoff_max, base)
        return random.uniform(ceiling / 2, ceiling)


def _job(row: Any) -> SendJob:
    return SendJob(
        row.id,
        row.organization_id,
        row.conversation_id,
        row.channel_id,
        row.recipient or "",
        row.type,
        row.content or {},
        row.context_provider_message_id,
        row.callback_data,
        row.attempts,
    )


async def claim_due(
    session: AsyncSession, worker: str, limit: int, now: datetime | None = None
) -> list[SendJob]:
    """Claim up to `limit` due queued messages (SKIP LOCKED on PostgreSQL: workers never
    claim the same row; SQLite has one writer, so the single UPDATE is already exclusive)."""
    stmt = statement(session, "sending.claim_due", lambda: _claim_stmt(session))
    params = {"b_now": now or utcnow(), "b_worker": worker, "b_limit": limit}
    return [_job(row) for row in (await session.execute(stmt, params)).all()]


def _claim_stmt(session: AsyncSession) -> Any:
    # Built once per process (see `statement`): the hot path claims every few milliseconds.
    m = messages.c
    now = bindparam("b_now", type_=_TS)
    due = (
        select(m.id)
        .where(m.status == "queued", m.next_attempt_at <= now)
        .order_by(m.next_attempt_at)
        .limit(bindparam("b_limit", type_=Integer()))
    )
    if is_postgresql(session):
        due = due.with_for_update(skip_locked=True)
    # A CTE, not `IN (subquery)`. PostgreSQL may plan the IN as a nested-loop semi join that
    # runs the `LIMIT … FOR UPDATE SKIP LOCKED` subquery again for every row it checks; the
    # rows this UPDATE already changed no longer qualify when locked again, so each run's
    # window slides on and every due row was claimed, whatever the limit (seen: 300 claimed
    # for a limit of 7). A CTE that locks rows is computed once.
    batch = due.cte("due")
    return (
        update(messages)
        .where(m.id.in_(select(batch.c.id)), m.status == "queued")
        .values(
            status="sending",
            claimed_by=bindparam("b_worker", type_=String()),
            claimed_at=now,
            next_attempt_at=None,
            attempts=m.attempts + 1,
        )
        .returning(*_RETURNED)
    )


async def release_claims(session: AsyncSession, worker: str, ids: list[uuid.UUID]) -> None:
    """Give claimed messages back, never sent (their claim was cancelled): due at once, the
    attempt not counted."""
    m = messages.c
    await session.execute(
        update(messages)
        .where(m.id.in_(ids), m.status == "sending", m.claimed_by == worker)
        .values(
            status="queued",
            claimed_by=None,
            claimed_at=None,
            next_attempt_at=utcnow(),
            attempts=m.attempts - 1,
        )
    )


async def claim_one(session: AsyncSession, worker: str, message_id: uuid.UUID) -> SendJob | None:
    """Claim one queued message by id (the API sends what it just queued); None if taken."""
    m = messages.c
    stmt = (
        update(messages)
        .where(m.id == message_id, m.status == "queued")
        .values(
            status="sending",
            claimed_by=worker,
            claimed_at=utcnow(),
            next_attempt_at=None,
            attempts=m.attempts + 1,
        )
        .returning(*_RETURNED)
    )
    row = (await session.execute(stmt)).first()
    return _job(row) if row is not None else None


async def next_due_in(session: AsyncSession, now: datetime | None = None) -> float | None:
    """Seconds until the earliest queued message is due (None when nothing is queued)."""
    now = now or utcnow()
    stmt = statement(
        session,
        "sending.next_due",
        # `IS NOT NULL` names the partial index's predicate, so both engines read the index.
        lambda: select(func.min(messages.c.next_attempt_at)).where(
            messages.c.next_attempt_at.is_not(None), messages.c.status == "queued"
        ),
    )
    earliest = await session.scalar(stmt)
    if earliest is None:
        return None
    return max(0.0, float((earliest - now).total_seconds()))


_TS = UTCDateTime()


def _mine() -> Any:
    m = messages.c
    return and_(
        m.id == bindparam("b_id"), m.status == "sending", m.claimed_by == bindparam("b_worker")
    )


def _sent_stmt() -> Any:
    return (
        update(messages)
        .where(_mine())
        .values(
            status="sent",
            provider_message_id=bindparam("b_pid", type_=String()),
            sent_at=bindparam("b_sent", type_=_TS),
            claimed_by=None,
            claimed_at=None,
            next_attempt_at=None,
            error_code=None,
            error_title=None,
            error_details=None,
            updated_at=bindparam("b_now", type_=_TS),
        )
    )


def _requeue_stmt() -> Any:
    return (
        update(messages)
        .where(_mine())
        .values(
            status="queued",
            next_attempt_at=bindparam("b_next", type_=_TS),
            claimed_by=None,
            claimed_at=None,
            error_code=bindparam("b_code"),
            error_title=bindparam("b_title", type_=String()),
            error_details=bindparam("b_details", type_=String()),
            updated_at=bindparam("b_now", type_=_TS),
        )
    )


def _failed_stmt() -> Any:
    return (
        update(messages)
        .where(_mine())
        .values(
            status="failed",
            failed_at=bindparam("b_now", type_=_TS),
            claimed_by=None,
            claimed_at=None,
            next_attempt_at=None,
            error_code=bindparam("b_code"),
            error_title=bindparam("b_title", type_=String()),
            error_details=bindparam("b_details", type_=String()),
            updated_at=bindparam("b_now", type_=_TS),
        )
    )


def _ambiguous_stmt() -> Any:
    # Leave the row in `sending` but move its claim back so reconciliation looks at it soon.
    return (
        update(messages)
        .where(_mine())
        .values(
            claimed_at=bindparam("b_claimed", type_=_TS),
            error_title=bindparam("b_title", type_=String()),
            error_details=bindparam("b_details", type_=String()),
            updated_at=bindparam("b_now", type_=_TS),
        )
    )


def stored_error(error: ProviderError) -> tuple[int | None, str, str]:
    """(code, title, details) of a provider error as the message row keeps them."""
    title = error.title or (f"({error.code}) " if error.code else "") + error.message
    return error.code, title[:300], error.details or error.plain_explanation


def error_fields(error: ProviderError) -> dict[str, Any]:
    code, title, details = stored_error(error)
    return {"b_code": code, "b_title": title, "b_details": details}


def _classify(outcome: SendOutcome, policy: RetryPolicy) -> str:
    error = outcome.error
    if error is None:
        return "sent"
    if not error.retryable:
        return "failed"
    if error.kind == "transport" and not _never_reached(error):
        return "ambiguous"
    return "queued" if outcome.job.attempts < policy.max_attempts else "failed"


def _never_reached(error: ProviderError) -> bool:
    # A refused connection cannot have delivered anything; a timeout or a dropped response can.
    cause = error.__cause__
    return isinstance(
        cause, aiohttp.ClientConnectorError | ConnectionRefusedError | ProviderUnreachable
    )


async def record_outcomes(
    session: AsyncSession, worker: str, outcomes: list[SendOutcome], policy: RetryPolicy
) -> None:
    """Write a batch of outcomes (one UPDATE per kind) and apply statuses that came early."""
    now = utcnow()
    params: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for outcome in outcomes:
        kind = _classify(outcome, policy)
        base = {"b_id": outcome.job.id, "b_worker": worker, "b_now": now}
        if kind == "sent":
            assert outcome.result is not None
            pid, sent_at = outcome.result.provider_message_id, outcome.at or now
            params[kind].append({**base, "b_pid": pid, "b_sent": sent_at})
            outcome.status = "sent"
            continue
        assert outcome.error is not None
        base.update(error_fields(outcome.error))
        if kind == "queued":
            delay = policy.delay(outcome.job.attempts, outcome.error)
            base["b_next"] = now + timedelta(seconds=delay)
        if kind == "ambiguous":
            recheck = policy.lease_seconds - policy.ambiguous_recheck_seconds
            base["b_claimed"] = now - timedelta(seconds=max(0.0, recheck))
        params[kind].append(base)
        outcome.status = "sending" if kind == "ambiguous" else kind
    statements = {
        "sent": _sent_stmt,
        "queued": _requeue_stmt,
        "failed": _failed_stmt,
        "ambiguous": _ambiguous_stmt,
    }
    for kind, rows in params.items():
        if kind == "sent" and is_postgresql(session):
            await _write_sent_pg(session, worker, rows, now)
        else:
            await session.execute(statement(session, f"sending.{kind}", statements[kind]), rows)
    await _apply_early_statuses(session, outcomes)


# One statement for the whole batch, the values as three arrays: an executemany runs the
# UPDATE once per row (and SQLAlchemy processes every row's parameters in Python); this is the
# hot path, one row per message sent.
_SENT_MANY_PG = text(
    """
    UPDATE messages AS m
    SET status = 'sent', provider_message_id = v.pid, sent_at = v.sent_at, claimed_by = NULL,
        claimed_at = NULL, next_attempt_at = NULL, error_code = NULL, error_title = NULL,
        error_details = NULL, updated_at = :now
    FROM unnest(CAST(:ids AS uuid[]), CAST(:pids AS varchar[]), CAST(:sent AS timestamptz[]))
        AS v(id, pid, sent_at)
    WHERE m.id = v.id AND m.status = 'sending' AND m.claimed_by = :worker
    """
)


async def _write_sent_pg(
    session: AsyncSession, worker: str, rows: list[dict[str, Any]], now: datetime
) -> None:
    await session.execute(
        _SENT_MANY_PG,
        {
            "ids": [row["b_id"] for row in rows],
            "pids": [row["b_pid"] for row in rows],
            "sent": [row["b_sent"] for row in rows],
            "now": now,
            "worker": worker,
        },
    )


async def _apply_early_statuses(session: AsyncSession, outcomes: list[SendOutcome]) -> None:
    by_channel: dict[uuid.UUID, list[str]] = defaultdict(list)
    for outcome in outcomes:
        if outcome.status == "sent" and outcome.result and outcome.job.channel_id:
            by_channel[outcome.job.channel_id].append(outcome.result.provider_message_id)
    for channel_id, pids in by_channel.items():
        await apply_pending_each(session, channel_id, pids)


async def apply_pending_each(session: AsyncSession, channel_id: uuid.UUID, pids: list[str]) -> int:
    """apply_pending_statuses, one wamid at a time, for the wamids that have any.

    One at a time because its UPDATE (an expanding IN inside a CASE) cannot run as an
    executemany over several messages; the SELECT first keeps the common case (nothing
    pending) at one query per batch.
    """
    await lock_provider_ids(session, channel_id, pids)
    p = pending_statuses.c
    stmt = statement(
        session,
        "sending.pending_for",
        lambda: select(p.provider_message_id).where(
            p.channel_id == bindparam("b_channel"),
            among(session, p.provider_message_id, "b_pids"),
            p.applied_at.is_(None),
        ),
    )
    waiting = set(await session.scalars(stmt, {"b_channel": channel_id, "b_pids": pids}))
    applied = 0
    for pid in sorted(waiting):
        applied += await apply_pending_statuses(session, channel_id, [pid])
    return applied


async def reconcile_stale(
    session: AsyncSession, policy: RetryPolicy, limit: int = 500
) -> tuple[int, int]:
    """Settle `sending` rows whose claim outlived the lease (a worker died or timed out).

    Meta echoes `biz_opaque_callback_data` (our message id) on status webhooks; a status that
    arrived for an unknown wamid waits in pending_statuses. If one is there, the provider took
    the message: adopt its wamid and apply the statuses. If none came within the lease, the
    provider never accepted it: queue it again. Returns (adopted, requeued).
    """
    now = utcnow()
    m = messages.c
    stale_q = (
        select(m.id, m.channel_id, m.attempts, m.callback_data, m.media_resent_from)
        .where(m.status == "sending", m.claimed_at < now - timedelta(seconds=policy.lease_seconds))
        .limit(limit)
    )
    if is_postgresql(session):
        stale_q = stale_q.with_for_update(skip_locked=True)
    stale = list((await session.execute(stale_q)).all())
    if not stale:
        return 0, 0
    evidence = await _evidence(session, stale)
    adopted = [row for row in stale if row.callback_data in evidence]
    for row in adopted:
        pid = evidence[row.callback_data]
        await session.execute(
            update(messages)
            .where(m.id == row.id, m.status == "sending")
            .values(
                status="sent",
                provider_message_id=pid,
                sent_at=now,
                claimed_by=None,
                claimed_at=None,
                error_title=None,
                error_details=None,
                updated_at=now,
            )
        )
        await apply_pending_each(session, row.channel_id, [pid])
    orphans = [row for row in stale if row.callback_data not in evidence]
    await _requeue_orphans(session, orphans, policy, now)
    return len(adopted), len(orphans)


async def _evidence(session: AsyncSession, stale: list[Any]) -> dict[str, str]:
    """callback data → wamid, from statuses that arrived for a wamid we never recorded (not
    the wamid a message was re-sent from after a 131053: its late statuses carry the same
    callback data, see reupload.py)."""
    p = pending_statuses.c
    tokens = [row.callback_data for row in stale if row.callback_data]
    channels = {row.channel_id for row in stale if row.channel_id}
    if not tokens or not channels:
        return {}
    query = select(p.callback_data, p.provider_message_id).where(
        p.channel_id.in_(channels), p.callback_data.in_(tokens)
    )
    if old := [row.media_resent_from for row in stale if row.media_resent_from]:
        query = query.where(p.provider_message_id.not_in(old))
    rows = await session.execute(query)
    return {token: pid for token, pid in rows.all()}


async def _requeue_orphans(
    session: AsyncSession, orphans: list[Any], policy: RetryPolicy, now: datetime
) -> None:
    m = messages.c
    for status, rows in (
        ("queued", [r for r in orphans if r.attempts < policy.max_attempts]),
        ("failed", [r for r in orphans if r.attempts >= policy.max_attempts]),
    ):
        if not rows:
            continue
        values: dict[str, Any] = {
            "status": status,
            "claimed_by": None,
            "claimed_at": None,
            "updated_at": now,
            "error_title": "no answer from the provider and no status webhook within the lease",
        }
        if status == "queued":
            values["next_attempt_at"] = now
        else:
            values["failed_at"] = now
            values["next_attempt_at"] = None
        await session.execute(
            update(messages)
            .where(m.id.in_([r.id for r in rows]), m.status == "sending")
            .values(**values)
        )


async def apply_late_statuses(session: AsyncSession, window: timedelta) -> int:
    """Statuses that raced the recording of their wamid (the webhook's transaction read
    before ours committed) wait as pending; apply them now that the message is known."""
    p, m = pending_statuses.c, messages.c
    rows = await session.execute(
        select(p.channel_id, p.provider_message_id)
        .join(
            messages,
            and_(m.channel_id == p.channel_id, m.provider_message_id == p.provider_message_id),
        )
        .where(p.applied_at.is_(None), p.received_at > utcnow() - window)
        .distinct()
    )
    by_channel: dict[uuid.UUID, list[str]] = defaultdict(list)
    for channel_id, pid in rows.all():
        by_channel[channel_id].append(pid)
    applied = 0
    for channel_id, pids in by_channel.items():
        applied += await apply_pending_each(session, channel_id, pids)
    return applied
