"""The domain-event outbox: one row per event, written in the transaction of the change."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from pytake.models.base import Base, utcnow

# SQLite only autoincrements an INTEGER PRIMARY KEY.
EventId = BigInteger().with_variant(Integer, "sqlite")


class OutboxEvent(Base):
    """A committed domain event (message.received, contact.updated, ...).

    Insert-only: whether the realtime bus has carried it is kept in `UnpublishedEvents`, so
    that publishing never rewrites (and re-indexes) the event rows themselves.
    """

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_org_id", "organization_id", "id"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# An array on PostgreSQL (asyncpg binds a list of ints directly), JSON text on SQLite.
EventIds = JSON().with_variant(ARRAY(BigInteger()), "postgresql")


class UnpublishedEvents(Base):
    """The ids of the events one `record_many` call wrote, until the bus has carried them.

    Written in the transaction of the change and deleted by the process that published them
    (in batches, every `MARK_EVERY_SECONDS`). A row still here after the relay's grace period
    belongs to a process that died between its commit and its publish: the relay publishes
    those events and deletes the row. One small row per batch, where marking each event row
    published cost an UPDATE (a new version of the row and of all its index entries) per event.
    """

    __tablename__ = "events_unpublished"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    event_ids: Mapped[list[int]] = mapped_column(EventIds)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
