"""Message templates: PyTake's copy of each template of a WhatsApp Business Account (WABA)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pytake.models.base import Base, IdMixin, JSONType, TenantMixin, TimestampMixin

TEMPLATE_CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
PARAMETER_FORMATS = ("POSITIONAL", "NAMED")
# Meta's template statuses; only APPROVED may be sent.
TEMPLATE_STATUSES = (
    "APPROVED",
    "PENDING",
    "REJECTED",
    "PAUSED",
    "DISABLED",
    "IN_APPEAL",
    "FLAGGED",
    "REINSTATED",
    "PENDING_DELETION",
    "DELETED",
    "ARCHIVED",
    "LIMIT_EXCEEDED",
    "LOCKED",
)


class MessageTemplate(IdMixin, TenantMixin, TimestampMixin, Base):
    """A template as Meta knows it (name, language, category, components, status), kept current
    by creation, sync and Meta's account-level webhooks.

    A template belongs to the WABA, not to one number: `business_account_id` is the key (with
    name and language), `channel_id` the number whose credentials last reached Meta for it.
    """

    __tablename__ = "message_templates"
    __table_args__ = (
        UniqueConstraint(
            "organization_id",
            "business_account_id",
            "name",
            "language",
            name="uq_message_templates_org_waba_name_language",
        ),
        # Webhooks and sync find a template by Meta's id within the WABA.
        Index("ix_message_templates_waba_meta_id", "business_account_id", "meta_template_id"),
        Index("ix_message_templates_org_status", "organization_id", "status"),
    )

    channel_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("whatsapp_configs.id", ondelete="SET NULL")
    )
    business_account_id: Mapped[str] = mapped_column(String(64), comment="the WABA id")
    meta_template_id: Mapped[str | None] = mapped_column(String(64), comment="Meta's id")
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(15))
    category: Mapped[str] = mapped_column(String(20))
    previous_category: Mapped[str | None] = mapped_column(String(20))
    parameter_format: Mapped[str] = mapped_column(String(12), default="POSITIONAL")
    components: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(20), default="PENDING")
    # Meta's `reason` of the last status change (a rejection's reason, a pause's cause).
    status_reason: Mapped[str | None] = mapped_column(String(500))
    rejection_info: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    quality_score: Mapped[str | None] = mapped_column(String(20), comment="GREEN | YELLOW | RED")
    status_updated_at: Mapped[datetime | None]
    last_synced_at: Mapped[datetime | None]


class TemplateSyncState(TenantMixin, Base):
    """When a number's templates were last read from Meta, and when they are due again (the
    worker's periodic sync claims due rows, so several workers never read the same account
    at once)."""

    __tablename__ = "template_sync_states"
    __table_args__ = (Index("ix_template_sync_states_next_sync_at", "next_sync_at"),)

    channel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("whatsapp_configs.id", ondelete="CASCADE"), primary_key=True
    )
    next_sync_at: Mapped[datetime]
    last_synced_at: Mapped[datetime | None]
    leased_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
