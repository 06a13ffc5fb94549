"""Idempotency keys of sends, and the indexes the send queue claims through."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ForeignKey, Index, String, Table, text
from sqlalchemy.orm import Mapped, mapped_column

from pytake.models.base import Base, IdMixin, TenantMixin, utcnow
from pytake.models.conversation import Message


class IdempotencyKey(IdMixin, TenantMixin, Base):
    """A client's `Idempotency-Key`: the request it first came with and the answer it got."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        Index("uq_idempotency_keys_org_key", "organization_id", "key", unique=True),
        # Pruning deletes the oldest keys in batches (pytake.message.sending.pruning).
        Index("ix_idempotency_keys_created_at", "created_at"),
    )

    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64), comment="sha256 of method, path, body")
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE")
    )
    response_status: Mapped[int | None]
    response_body: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


_messages = cast(Table, Message.__table__)

# Declared here rather than in models/conversation.py so the queue's indexes live with the
# sending feature; both are partial, so they only hold the few rows in flight. They key on
# their own column being set (the queue keeps `next_attempt_at` only while queued and
# `claimed_at` only while sending) rather than on `status`: an index that mentions `status`
# would make every delivery status a non-HOT update of the message row.
Index(
    "ix_messages_queued_due",
    _messages.c.next_attempt_at,
    sqlite_where=text("next_attempt_at IS NOT NULL"),
    postgresql_where=text("next_attempt_at IS NOT NULL"),
)
Index(
    "ix_messages_sending_claimed",
    _messages.c.claimed_at,
    sqlite_where=text("claimed_at IS NOT NULL"),
    postgresql_where=text("claimed_at IS NOT NULL"),
)

idempotency_keys_table = cast(Table, IdempotencyKey.__table__)
