"""WhatsApp numbers (configurations): a Meta Cloud API number or an Evolution API instance."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from pytake.models.base import Base, IdMixin, TenantMixin, TimestampMixin, utcnow

PROVIDERS = ("official", "evolution")
HEALTH_STATUSES = ("unknown", "healthy", "unhealthy", "inactive")
DEFAULT_THROUGHPUT = 80  # Meta's default messages per second per number
MAX_THROUGHPUT = 1000


class Channel(IdMixin, TenantMixin, TimestampMixin, Base):
    """One connected WhatsApp number; secrets are stored encrypted (see pytake.kit.crypto).

    The table keeps its first name, from the /api/v1 document's "WhatsApp config"; code says
    channel (docs/architecture.md, "Words")."""

    __tablename__ = "whatsapp_configs"
    __table_args__ = (
        # At most one default number per organisation.
        Index(
            "uq_whatsapp_configs_one_default",
            "organization_id",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
        # Inbound Meta webhooks find their number by phone_number_id (across organisations).
        Index("ix_whatsapp_configs_phone_number_id", "phone_number_id"),
        Index("ix_whatsapp_configs_business_account_id", "business_account_id"),
        Index("ix_whatsapp_configs_webhook_verify_token", "webhook_verify_token"),
    )

    name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(20), comment="official | evolution")
    phone_number_id: Mapped[str | None] = mapped_column(String(64))
    business_account_id: Mapped[str | None] = mapped_column(String(64))
    display_phone_number: Mapped[str | None] = mapped_column(String(64))
    verified_name: Mapped[str | None] = mapped_column(String(200))
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    app_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    # A verify token is echoed to Meta in the subscription handshake; it is not a credential.
    webhook_verify_token: Mapped[str | None] = mapped_column(String(200))
    evolution_url: Mapped[str | None] = mapped_column(String(500))
    evolution_api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    instance_name: Mapped[str | None] = mapped_column(String(100))
    evolution_integration: Mapped[str | None] = mapped_column(String(40))
    evolution_webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    connection_state: Mapped[str | None] = mapped_column(String(20))
    connected_at: Mapped[datetime | None]
    qr_code: Mapped[str | None] = mapped_column(Text)
    qr_code_expires_at: Mapped[datetime | None]
    is_active: Mapped[bool] = mapped_column(default=True)
    is_default: Mapped[bool] = mapped_column(default=False)
    health_status: Mapped[str] = mapped_column(String(20), default="unknown")
    health_detail: Mapped[str | None] = mapped_column(String(500))
    last_health_check: Mapped[datetime | None]
    # What Meta lets the number send: 80 messages/s by default, up to 1,000 once Meta has
    # raised it. Campaigns on the number share it (pytake.campaign.pacing).
    throughput: Mapped[int] = mapped_column(
        default=DEFAULT_THROUGHPUT, server_default=str(DEFAULT_THROUGHPUT),
        comment="messages per second",
    )  # fmt: skip
    # Meta's 130429 (throughput hit) is about the number, whichever campaign's message got
    # it: 1.0, halved by each 130429 (at most once a second), recovering step by step; the
    # campaigns on the number share throughput × this (pytake.campaign.pacing).
    throttle_factor: Mapped[float] = mapped_column(default=1.0, server_default="1")
    throttled_at: Mapped[datetime | None]
    # The chatbot that answers on this number; none: every active chatbot of the organisation.
    chatbot_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("chatbots.id", ondelete="SET NULL")
    )
    created_by: Mapped[str | None] = mapped_column(String(320), comment="creator's e-mail")
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class ChannelEvent(IdMixin, TenantMixin, Base):
    """Provider events that are not messages: template status changes, connection changes,
    system notices without a sender. Kept for the operator (and later the dashboard)."""

    __tablename__ = "channel_events"
    __table_args__ = (Index("ix_channel_events_channel_created", "channel_id", "created_at"),)

    channel_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("whatsapp_configs.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(50))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
