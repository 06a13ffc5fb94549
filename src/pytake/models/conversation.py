"""Conversations, their messages, and delivery statuses that arrived before their message."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pytake.models.base import Base, IdMixin, JSONType, TenantMixin, TimestampMixin, utcnow

CONVERSATION_STATUSES = ("open", "pending", "assigned", "resolved", "closed")
# A new inbound message joins a conversation in one of these states; otherwise a new one opens.
LIVE_CONVERSATION_STATUSES = ("open", "pending", "assigned")
OUTBOUND_STATUSES = ("queued", "sending", "sent", "delivered", "read", "failed")
INBOUND_STATUS = "received"


class Conversation(IdMixin, TenantMixin, TimestampMixin, Base):
    """One customer talking to one WhatsApp number of the organisation."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_contact_channel_status", "contact_id", "channel_id", "status"),
        Index("ix_conversations_org_status_last", "organization_id", "status", "last_message_at"),
        Index("ix_conversations_assigned_to", "assigned_to_id"),
        Index("ix_conversations_team", "team_id"),
    )

    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    # Deleting a WhatsApp number keeps its history.
    channel_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("whatsapp_configs.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(20), default="open")
    assigned_to_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    is_bot_active: Mapped[bool] = mapped_column(default=True)
    # The team the conversation was routed to (a chatbot's handoff, or an agent's transfer).
    team_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    window_expires_at: Mapped[datetime | None] = mapped_column(
        comment="customer-service window: last inbound + 24 h"
    )
    last_message_at: Mapped[datetime | None]
    last_inbound_at: Mapped[datetime | None]
    message_count: Mapped[int] = mapped_column(default=0)
    unread_count: Mapped[int] = mapped_column(default=0)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    resolved_at: Mapped[datetime | None]
    # What a chatbot collected before handing the conversation to people (for the agent).
    bot_variables: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class Message(IdMixin, TenantMixin, Base):
    """A message in a conversation, either direction; outbound rows are the send queue."""

    __tablename__ = "messages"
    __table_args__ = (
        # Provider webhooks are at-least-once: this makes every redelivery a no-op.
        UniqueConstraint(
            "channel_id", "provider_message_id", name="uq_messages_channel_provider_message_id"
        ),
        Index("ix_messages_conversation_created", "conversation_id", "created_at"),
        Index("ix_messages_org_created", "organization_id", "created_at"),
        # No index may mention `status` (nor the per-status timestamps): a delivery status then
        # rewrites the row in place (a HOT update, no index touched), into the free half of
        # its page. Statuses are most of the writes a busy number causes, and they come for
        # messages sent together, so stored side by side: with 10 % free, 11 % of a bench's
        # statuses were HOT; with half, 95 %, and PostgreSQL's CPU per status fell from 26 to
        # 16 µs (bench/ingest.py). The price is a messages heap twice as large; non-HOT
        # updates leave that much dead space behind anyway, until vacuum. The send queue's
        # partial indexes key on their own columns for the same reason (models/idempotency.py).
        {"postgresql_with": {"fillfactor": 50}},
    )

    # Not indexed on its own (TenantMixin's default): ix_messages_org_created leads with it.
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("whatsapp_configs.id", ondelete="SET NULL")
    )
    direction: Mapped[str] = mapped_column(String(10), comment="inbound | outbound")
    type: Mapped[str] = mapped_column(String(30))
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(
        String(20), comment="queued|sending|sent|delivered|read|failed (outbound), received"
    )
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    context_provider_message_id: Mapped[str | None] = mapped_column(
        String(200), comment="the provider id of the message this one replies to"
    )
    callback_data: Mapped[str | None] = mapped_column(String(512))
    provider_timestamp: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    error_code: Mapped[int | None]
    error_title: Mapped[str | None] = mapped_column(String(300))
    error_details: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The send queue (pytake.message.sending): who holds a `sending` row and when to retry.
    recipient: Mapped[str | None] = mapped_column(String(32), comment="E.164 sent to")
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None]
    # Set once: Meta accepted this media message, then failed it with 131053 (the media id
    # vanished); the file was uploaded again and the message re-sent (message/sending/reupload).
    media_resent_from: Mapped[str | None] = mapped_column(
        String(200), comment="the wamid a 131053 failed; re-sent once since"
    )


class PendingStatus(IdMixin, TenantMixin, Base):
    """A delivery status whose message is not known (yet): applied when the message appears
    (`pytake.message.ingest.apply_pending_statuses`), else kept as an orphan for the record."""

    __tablename__ = "pending_statuses"
    __table_args__ = (
        UniqueConstraint(
            "channel_id",
            "provider_message_id",
            "status",
            name="uq_pending_statuses_channel_message_status",
        ),
    )

    channel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("whatsapp_configs.id", ondelete="CASCADE")
    )
    provider_message_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime]
    recipient: Mapped[str | None] = mapped_column(String(64))
    callback_data: Mapped[str | None] = mapped_column(String(512))
    error_code: Mapped[int | None]
    error_title: Mapped[str | None] = mapped_column(String(300))
    error_details: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    applied_at: Mapped[datetime | None]
