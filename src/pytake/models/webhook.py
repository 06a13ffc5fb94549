"""Outgoing webhooks: the endpoints an organisation registers and the delivery queue."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pytake.models.base import Base, IdMixin, JSONType, TenantMixin, TimestampMixin, utcnow
from pytake.models.event import EventId

DELIVERY_STATUSES = ("pending", "delivering", "delivered", "failed")


class WebhookEndpoint(IdMixin, TenantMixin, TimestampMixin, Base):
    """A URL that receives the organisation's events, signed with its secret."""

    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500))
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Encrypted, not hashed: signing needs the plaintext.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    disabled_at: Mapped[datetime | None]
    failing_since: Mapped[datetime | None] = mapped_column(
        comment="first failed attempt since the last success"
    )


class WebhookDelivery(IdMixin, TenantMixin, Base):
    """One event for one endpoint: a queue row (pending → delivering → delivered | failed)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
    )

    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_id: Mapped[int | None] = mapped_column(
        EventId, ForeignKey("events.id", ondelete="CASCADE"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(40))
    # Only for deliveries without an outbox event (the test ping).
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    response_status: Mapped[int | None]
    response_excerpt: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(500))
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    redelivery_of_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
