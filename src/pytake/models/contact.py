"""Contacts (the CRM), tags, the tag links, and CSV import jobs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    column,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from pytake.models.base import Base, IdMixin, TenantMixin, TimestampMixin

_LIVE = text("deleted_at IS NULL")


def _default_search_text(context: Any) -> str:
    # A safety net for rows inserted without the service (e.g. Core inserts elsewhere); the
    # contact service always sets it explicitly. Imported lazily: models load before services.
    from pytake.contact.search import contact_search_text

    params = context.get_current_parameters()
    return contact_search_text(params.get("name"), params.get("email"), params.get("whatsapp_id"))


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
            sqlite_where=_LIVE,
            postgresql_where=_LIVE,
        ),
        # Lists: newest first among live contacts, read backwards (created_at DESC, id DESC).
        Index(
            "ix_contacts_live_org_created",
            "organization_id",
            "created_at",
            "id",
            sqlite_where=_LIVE,
            postgresql_where=_LIVE,
        ),
        # Substring search (name, e-mail, phone digits) with LIKE '%…%' on PostgreSQL.
        Index(
            "ix_contacts_search_text_trgm",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        ),
        # Phone searches by digit 5-grams (contact.search.digit_grams). The function is created by
        # migration 0007 on PostgreSQL only; SQLite searches by LIKE alone.
        Index(
            "ix_contacts_digit_grams",
            func.contact_digit_grams(column("search_text")),
            postgresql_using="gin",
        ).ddl_if(dialect="postgresql"),
    )

    whatsapp_id: Mapped[str] = mapped_column(String(32), comment="E.164, e.g. +5561999999999")
    match_key: Mapped[str] = mapped_column(
        String(32), comment="digits, Brazilian 9th digit restored"
    )
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
    search_text: Mapped[str] = mapped_column(
        Text,
        default=_default_search_text,
        server_default="",
        comment="lower-case, accent-free name, e-mail and phone digits (kit.search)",
    )


class Tag(IdMixin, TenantMixin, Base):
    __tablename__ = "tags"
    __table_args__ = (Index("uq_tags_org_name", "organization_id", "name", unique=True),)

    name: Mapped[str] = mapped_column(String(100))
    color: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime]


class ContactTag(Base):
    __tablename__ = "contact_tags"
    __table_args__ = (
        # A tag filter pages its contacts newest first straight from this index (then probes the
        # few contacts of the page), instead of joining every link of a popular tag.
        Index("ix_contact_tags_tag_created", "tag_id", "contact_created_at", "contact_id"),
    )

    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    tag_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True
    )
    # A copy of contacts.created_at (which never changes), so the list order is in the index.
    contact_created_at: Mapped[datetime] = mapped_column(comment="= contacts.created_at")


class ContactImportJob(IdMixin, TenantMixin, TimestampMixin, Base):
    """A CSV import: the row is the job, so it survives restarts and can be claimed by a worker.

    The file is stored in the database (`ContactImportChunk`), so any process can run the job.
    Progress is committed with each batch (`resume_offset` is the byte offset of the next
    unread CSV record), so a job picked up again continues where the last batch ended.
    """

    __tablename__ = "contact_import_jobs"
    __table_args__ = (Index("ix_contact_import_jobs_status", "status", "heartbeat_at"),)

    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|running|…
    filename: Mapped[str] = mapped_column(String(300))
    # Only jobs uploaded before migration 0011 (chunk_size NULL): their file on the disk of the
    # process that received the upload.
    file_path: Mapped[str | None] = mapped_column(String(1000))
    chunk_size: Mapped[int | None] = mapped_column(
        Integer, comment="bytes per stored chunk of the file; NULL: the file is at file_path"
    )
    file_size: Mapped[int] = mapped_column(BigInteger, default=0)
    columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    resume_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_processed: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    locked_by: Mapped[str | None] = mapped_column(String(100))
    heartbeat_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class ContactImportChunk(Base):
    """One piece of an import job's CSV: bytes [seq * chunk_size, (seq + 1) * chunk_size).

    Reached only through its job (which carries the organisation); deleted when the job ends.
    """

    __tablename__ = "contact_import_chunks"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contact_import_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ContactImportError(IdMixin, Base):
    """One rejected CSV row of an import job, with the reason."""

    __tablename__ = "contact_import_errors"
    __table_args__ = (Index("ix_contact_import_errors_job_row", "job_id", "row_number"),)

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contact_import_jobs.id", ondelete="CASCADE")
    )
    row_number: Mapped[int] = mapped_column(Integer)
    whatsapp_id: Mapped[str | None] = mapped_column(String(100))
    field: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(500))


# Typed handles on the tables for Core statements (bulk import, tag links).
contacts_table = cast(Table, Contact.__table__)
contact_tags_table = cast(Table, ContactTag.__table__)
contact_import_errors_table = cast(Table, ContactImportError.__table__)
contact_import_chunks_table = cast(Table, ContactImportChunk.__table__)
