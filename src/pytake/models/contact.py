"""Contacts (the CRM), tags and the tag links."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from pytake.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class Contact(IdMixin, TenantMixin, TimestampMixin, Base):
    """A customer reachable on WhatsApp; soft-deleted rows keep their history."""

    __tablename__ = "contacts"
    __table_args__ = (
        # One live contact per WhatsApp user per organisation; `match_key` folds the Brazilian
        # ninth digit so both spellings of a number collide here.
        Index(
            "uq_contacts_org_match_key_live",
            "organization_id",
            "match_key",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_contacts_org_created", "organization_id", "created_at", "id"),
    )

    whatsapp_id: Mapped[str] = mapped_column(String(32), comment="E.164, e.g. +5561999999999")
    match_key: Mapped[str] = mapped_column(String(32), comment="digits, Brazilian 9th digit restored")
    wa_id: Mapped[str | None] = mapped_column(String(32), comment="the id WhatsApp last used")
    name: Mapped[str | None] = mapped_column(String(200))
    profile_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    whatsapp_profile_pic_url: Mapped[str | None] = mapped_column(String(1000))
    opt_in: Mapped[bool] = mapped_column(default=True)
    opt_in_changed_at: Mapped[datetime | None]
    opt_in_source: Mapped[str | None] = mapped_column(String(50))
    is_blocked: Mapped[bool] = mapped_column(default=False)
    blocked_at: Mapped[datetime | None]
    last_inbound_at: Mapped[datetime | None]
    last_message_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]


class Tag(IdMixin, TenantMixin, Base):
    __tablename__ = "tags"
    __table_args__ = (Index("uq_tags_org_name", "organization_id", "name", unique=True),)

    name: Mapped[str] = mapped_column(String(100))
    color: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime]


class ContactTag(Base):
    __tablename__ = "contact_tags"
    __table_args__ = (Index("ix_contact_tags_tag_id", "tag_id"),)

    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True
    )
