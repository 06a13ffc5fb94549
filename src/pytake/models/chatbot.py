"""Chatbots, their flows and frozen flow versions, sessions, the inbox of inbound messages the
bot still has to answer, and per-node counters."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from pytake.models.base import Base, IdMixin, JSONType, TenantMixin, TimestampMixin, utcnow
from pytake.models.event import EventId

SESSION_STATUSES = ("active", "ended", "handed_off", "expired")


class Chatbot(IdMixin, TenantMixin, TimestampMixin, Base):
    """An organisation's bot: settings, and the flows it runs."""

    __tablename__ = "chatbots"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(default=True)
    welcome_message: Mapped[str | None] = mapped_column(Text)
    fallback_message: Mapped[str | None] = mapped_column(Text)
    handoff_enabled: Mapped[bool] = mapped_column(default=True)
    # session_timeout_minutes, expiry_message, max_steps, resume_keyword, timezone.
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The chatbot `/api/v1/flows` creates its flows in (one per organisation, made on first use).
    is_default: Mapped[bool] = mapped_column(default=False)


class ChatbotFlow(IdMixin, TenantMixin, TimestampMixin, Base):
    """A flow as last saved (the draft); publishing freezes it into a `ChatbotFlowVersion`."""

    __tablename__ = "chatbot_flows"
    __table_args__ = (Index("ix_chatbot_flows_chatbot", "chatbot_id", "created_at"),)

    chatbot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chatbots.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40), default="main")
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))
    # The pinned flow format: trigger, entry, nodes and whatever the editor adds.
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The `/api/v1/flows` body it was converted from, when it came that way.
    legacy_source: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    is_active: Mapped[bool] = mapped_column(default=False)
    published_version: Mapped[int | None] = mapped_column(Integer)
    published_at: Mapped[datetime | None]


class ChatbotFlowVersion(IdMixin, TenantMixin, Base):
    """A published flow, frozen: sessions run on the version they started on."""

    __tablename__ = "chatbot_flow_versions"
    __table_args__ = (
        UniqueConstraint("flow_id", "version", name="uq_chatbot_flow_versions_flow_version"),
    )

    flow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chatbot_flows.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    published_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChatbotSession(IdMixin, TenantMixin, TimestampMixin, Base):
    """A conversation's run through a flow; at most one active per conversation."""

    __tablename__ = "chatbot_sessions"
    __table_args__ = (
        Index(
            "uq_chatbot_sessions_one_active",
            "conversation_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        # The timer loop: active sessions whose delay, input wait or HTTP lease is due.
        Index(
            "ix_chatbot_sessions_wake",
            "wake_at",
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_chatbot_sessions_chatbot", "chatbot_id", "created_at"),
    )

    chatbot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chatbots.id", ondelete="CASCADE"))
    flow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chatbot_flows.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="active")
    node: Mapped[str] = mapped_column(String(100))
    variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    waiting: Mapped[str | None] = mapped_column(String(10), comment="input | timer | http")
    wake_at: Mapped[datetime | None]
    pending_http: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    end_reason: Mapped[str | None] = mapped_column(String(200))
    ended_at: Mapped[datetime | None]
    messages_in: Mapped[int] = mapped_column(Integer, default=0)
    messages_out: Mapped[int] = mapped_column(Integer, default=0)


class ChatbotInbox(Base):
    """An inbound message the bots still have to consider, written by ingest in the message's
    own transaction and deleted in the transaction that saves the bot's answer: exactly once,
    in `id` order per conversation (see pytake.chatbot.runtime)."""

    __tablename__ = "chatbot_inbox"
    __table_args__ = (
        Index("ix_chatbot_inbox_conversation", "conversation_id", "id"),
        Index("ix_chatbot_inbox_due", "due_at", "id"),
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    new_conversation: Mapped[bool] = mapped_column(default=False)
    # Put off while the conversation's session sleeps in a delay or waits on an HTTP call.
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChatbotNodeStat(Base):
    """How many sessions entered, completed and dropped at one node of one flow version."""

    __tablename__ = "chatbot_node_stats"

    flow_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chatbot_flows.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    node: Mapped[str] = mapped_column(String(100), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    entered: Mapped[int] = mapped_column(BigInteger, default=0)
    completed: Mapped[int] = mapped_column(BigInteger, default=0)
    dropped: Mapped[int] = mapped_column(BigInteger, default=0)
