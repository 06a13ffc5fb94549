"""Campaigns (template broadcasts) and their recipients; the recipient rows are the queue the
campaign dispatcher hands to the send pipeline (pytake.campaign.dispatch)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ForeignKey, Index, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from pytake.models.base import Base, IdMixin, TenantMixin, TimestampMixin, utcnow

CAMPAIGN_STATUSES = ("draft", "scheduled", "running", "paused", "completed", "cancelled")
TARGET_TYPES = ("tags", "contacts", "segment", "all")
# pending: not handed over yet; sending: its message is in the send pipeline (queued, being
# sent, or sent and waiting for a delivery status); sent | failed: settled; skipped: never sent
# (reason in skip_reason); cancelled: the campaign was cancelled before it was handed over.
RECIPIENT_STATUSES = ("pending", "sending", "sent", "failed", "skipped", "cancelled")


class Campaign(IdMixin, TenantMixin, TimestampMixin, Base):
    """A broadcast of one approved template to an audience of contacts, paced per number."""

    __tablename__ = "campaigns"
    __table_args__ = (
        Index("ix_campaigns_org_created", "organization_id", "created_at"),
        # The worker finds due scheduled campaigns and running ones by status.
        Index("ix_campaigns_status_scheduled", "status", "scheduled_at"),
    )

    # TenantMixin's own index is replaced by ix_campaigns_org_created.
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    target_type: Mapped[str] = mapped_column(String(20))
    target_filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The template is resolved and checked at creation; its name and language are kept so the
    # campaign reads the same if the template row changes.
    template_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("message_templates.id", ondelete="SET NULL")
    )
    template_name: Mapped[str] = mapped_column(String(512))
    template_language: Mapped[str] = mapped_column(String(15))
    message_content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    channel_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("whatsapp_configs.id", ondelete="SET NULL")
    )
    send_rate_limit: Mapped[int | None] = mapped_column(comment="messages per second")
    scheduled_at: Mapped[datetime | None]
    total_recipients: Mapped[int] = mapped_column(default=0)
    # {reason: count} of contacts of the audience left out when it was counted / materialised.
    skipped: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    pause_reason: Mapped[str | None] = mapped_column(String(500))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # Pacing (GCRA): the theoretical time the next message may be due; shared by every worker
    # through this row, which a hand-off locks.
    paced_until: Mapped[datetime | None]
    # The newest 130429 answer to this campaign's messages already reported to its number
    # (whose throttle factor it halved: Channel.throttle_factor); older ones are not
    # counted again.
    throttled_at: Mapped[datetime | None]
    # Consecutive 131048 / 131049 failures (a success resets it); pauses at the threshold.
    policy_error_streak: Mapped[int] = mapped_column(default=0)


class CampaignRecipient(TenantMixin, Base):
    """One contact of a campaign's audience: its state, and its message once handed over."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        # Claims (pending), settling (sending) and the per-status lists read this index.
        Index("ix_campaign_recipients_campaign_status", "campaign_id", "status"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    campaign_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    phone: Mapped[str] = mapped_column(String(32), comment="E.164 at materialisation")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    skip_reason: Mapped[str | None] = mapped_column(String(40))
    # Not foreign keys: a message or conversation deleted (a withdrawn hand-off, pruning) would
    # otherwise make PostgreSQL scan this table for each row it deletes.
    message_id: Mapped[uuid.UUID | None]
    conversation_id: Mapped[uuid.UUID | None]
    error_code: Mapped[int | None]
    error_title: Mapped[str | None] = mapped_column(String(300))
    queued_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


campaigns_table = cast(Table, Campaign.__table__)
recipients_table = cast(Table, CampaignRecipient.__table__)
