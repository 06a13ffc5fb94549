"""Media: the files customers send (fetched from the provider) and the files agents upload."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from pytake.models.base import Base, IdMixin, TenantMixin, utcnow

MEDIA_STATUSES = ("pending", "stored", "failed", "expired")


class Media(IdMixin, TenantMixin, Base):
    """One media item: an inbound message's attachment or an uploaded file.

    Inbound rows are the fetch queue (`pending` with a due time, claimed with a lease) until
    they are `stored` or `failed`; the bytes live in the media storage under a key made of the
    organisation and the content's sha256, so one file is stored once per organisation.
    """

    __tablename__ = "media"
    __table_args__ = (
        # Duplicate webhooks: one media row per inbound message.
        Index("uq_media_message_id", "message_id", unique=True),
        # The fetch loop's claim: only pending rows are in this index.
        Index(
            "ix_media_pending_due",
            "next_attempt_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_media_org_sha256", "organization_id", "sha256"),
        Index("ix_media_org_created", "organization_id", "created_at"),
    )

    # Not indexed on its own: the indexes above lead with it.
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    channel_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("whatsapp_configs.id", ondelete="SET NULL")
    )
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE")
    )
    source: Mapped[str] = mapped_column(String(10), comment="inbound | upload")
    kind: Mapped[str | None] = mapped_column(String(20), comment="image|video|audio|document|…")
    status: Mapped[str] = mapped_column(String(10), comment="pending|stored|failed|expired")
    provider_media_id: Mapped[str | None] = mapped_column(
        String(200), comment="Meta's media id, or the Evolution message key id"
    )
    expected_sha256: Mapped[str | None] = mapped_column(String(100))
    expected_size: Mapped[int | None] = mapped_column(BigInteger)
    mime_type: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int | None] = mapped_column(BigInteger)
    file_name: Mapped[str | None] = mapped_column(String(255))
    sha256: Mapped[str | None] = mapped_column(String(64), comment="hex, of the stored bytes")
    storage_key: Mapped[str | None] = mapped_column(String(300))
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    stored_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]


class MediaUpload(Base):
    """A stored file uploaded to a WhatsApp number: Meta's media id for it, valid 30 days."""

    __tablename__ = "media_uploads"

    media_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("media.id", ondelete="CASCADE"), primary_key=True
    )
    channel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("whatsapp_configs.id", ondelete="CASCADE"), primary_key=True
    )
    provider_media_id: Mapped[str] = mapped_column(String(200))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
