"""`record()`: the one call producers make, inside the transaction of the change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from pytake.events.types import EVENT_TYPES, CommittedEvent, iso, jsonable
from pytake.models.base import utcnow
from pytake.models.event import Event
from pytake.models.webhook import WebhookDelivery, WebhookEndpoint

PENDING_KEY = "pytake.events.pending"
WAKE_KEY = "pytake.events.wake"


@dataclass(slots=True)
class PendingEvent:
    event: CommittedEvent
    transaction: SessionTransaction | None


async def record(
    session: AsyncSession, organization_id: uuid.UUID, type: str, data: dict[str, Any]
) -> None:
    """Record a domain event in the caller's transaction.

    Writes the outbox row and a webhook delivery for each of the organisation's active endpoints
    subscribed to `type`; the realtime bus carries it only after the transaction commits.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    payload = jsonable(data)
    now = utcnow()
    event_id = await session.scalar(
        insert(Event)
        .values(organization_id=organization_id, type=type, payload=payload, created_at=now)
        .returning(Event.id)
    )
    assert event_id is not None
    await _enqueue_deliveries(session, organization_id, type, event_id, now)
    committed = CommittedEvent(event_id, str(organization_id), type, payload, iso(now))
    sync = session.sync_session
    pending: list[PendingEvent] = sync.info.setdefault(PENDING_KEY, [])
    pending.append(PendingEvent(committed, _innermost_transaction(sync)))


async def _enqueue_deliveries(
    session: AsyncSession, organization_id: uuid.UUID, type: str, event_id: int, now: Any
) -> None:
    # Read on every call: endpoints change in other processes, so nothing is cached.
    endpoints = await session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events).where(
            WebhookEndpoint.organization_id == organization_id,
            WebhookEndpoint.is_active.is_(True),
        )
    )
    rows = [
        {
            "id": uuid.uuid4(),
            "organization_id": organization_id,
            "endpoint_id": endpoint_id,
            "event_id": event_id,
            "event_type": type,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "attempt_log": [],
            "created_at": now,
        }
        for endpoint_id, subscribed in endpoints
        if type in subscribed
    ]
    if rows:
        await session.execute(insert(WebhookDelivery).values(rows))
        wake_after_commit(session, "webhooks")


def wake_after_commit(session: AsyncSession, loop_name: str) -> None:
    """Wake a background loop (in every process) once this transaction commits."""
    session.sync_session.info.setdefault(WAKE_KEY, set()).add(loop_name)


def _innermost_transaction(sync: Session) -> SessionTransaction | None:
    return sync.get_nested_transaction() or sync.get_transaction()


def drop_rolled_back(sync: Session, rolled_back: SessionTransaction) -> None:
    """Forget events recorded inside a transaction (or savepoint) that rolled back."""
    pending: list[PendingEvent] | None = sync.info.get(PENDING_KEY)
    if not pending:
        return
    kept = [p for p in pending if not _within(p.transaction, rolled_back)]
    if kept:
        sync.info[PENDING_KEY] = kept
    else:
        sync.info.pop(PENDING_KEY, None)
        sync.info.pop(WAKE_KEY, None)


def _within(txn: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while txn is not None:
        if txn is ancestor:
            return True
        txn = txn.parent
    return False
