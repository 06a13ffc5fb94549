"""The domain-event outbox: one row per event, written in the transaction of the change."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pytake.models.base import Base, utcnow

# SQLite only autoincrements an INTEGER PRIMARY KEY.
EventId = BigInteger().with_variant(Integer, "sqlite")


class Event(Base):
    """A committed domain event (message.received, contact.updated, ...).

    `published_at` is set once the realtime bus has carried it; the relay republishes rows a
    crashed process committed but never published.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_org_id", "organization_id", "id"),
        Index("ix_events_published_at", "published_at"),
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
