"""Contacts, tags and import jobs as the /v1 API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from pytake.kit.json_values import JsonObject
from pytake.kit.pagination import PageMeta

_TAG_MAX = 100


def _clean_tags(tags: list[str] | None) -> list[str] | None:
    if tags is None:
        return None
    cleaned: list[str] = []
    for tag in tags:
        name = tag.strip()
        if not name:
            raise ValueError("Tag names must not be empty")
        if len(name) > _TAG_MAX:
            raise ValueError(f"Tag names are at most {_TAG_MAX} characters")
        if name not in cleaned:
            cleaned.append(name)
    return cleaned


class ContactOut(BaseModel):
    """A contact in lists and on creation."""

    id: uuid.UUID
    whatsapp_id: str
    name: str | None
    email: str | None
    tags: list[str]
    attributes: dict[str, Any]
    opt_in: bool
    last_message_at: datetime | None
    created_at: datetime


class ContactDetailOut(ContactOut):
    """One contact with its activity and messaging state."""

    phone: str
    whatsapp_profile_pic_url: str | None
    profile_name: str | None
    opt_in_changed_at: datetime | None
    opt_in_source: str | None
    is_blocked: bool
    blocked_at: datetime | None
    total_conversations: int
    total_messages: int
    updated_at: datetime


class ContactCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    whatsapp_id: str = Field(max_length=40, description="E.164, e.g. +5511999999999")
    name: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    tags: list[str] = Field(default_factory=list, max_length=100)
    attributes: JsonObject = Field(default_factory=dict)
    opt_in: bool = True
    whatsapp_profile_pic_url: str | None = Field(default=None, max_length=1000)

    _tags = field_validator("tags")(_clean_tags)


class ContactUpdateIn(BaseModel):
    """Fields given are changed; `attributes` merges key by key (null removes a key)."""

    model_config = ConfigDict(extra="forbid")

    whatsapp_id: str | None = Field(default=None, max_length=40)
    name: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    tags: list[str] | None = Field(default=None, max_length=100, description="Replaces the set.")
    attributes: JsonObject | None = None
    opt_in: bool | None = None
    is_blocked: bool | None = None
    whatsapp_profile_pic_url: str | None = Field(default=None, max_length=1000)

    _tags = field_validator("tags")(_clean_tags)


class ContactListMeta(PageMeta):
    total: int = Field(
        description=(
            "Contacts matching; exact whenever `total_is_estimate` is false. An unfiltered list "
            "or a single tag is counted exactly up to 10,000 matches; other filters (`search`, "
            "several tags, `opt_in`) up to 1,000, and not at all when PostgreSQL's query planner "
            "expects more than 2,000. Beyond that, on PostgreSQL, `total` is the planner's "
            "estimate (never below the contacts already paged through) and `total_is_estimate` "
            "is true. Always exact on the last page, and on SQLite."
        )
    )
    total_is_estimate: bool = Field(
        default=False, description="True when `total` is an estimate (see `total`)."
    )
    next_cursor: str | None = Field(
        default=None,
        description=(
            "Pass as `cursor` to get the next page (same filters and `limit`); null on the last "
            "page. Cursor pages cost the same however deep; `page` numbers cost more the deeper."
        ),
    )


class ContactPage(BaseModel):
    data: list[ContactOut]
    meta: ContactListMeta


class ConsentIn(BaseModel):
    source: str = Field(default="api", min_length=1, max_length=50)


class TagOut(BaseModel):
    id: uuid.UUID
    name: str
    color: str | None
    contact_count: int
    created_at: datetime


class TagCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=_TAG_MAX)
    color: str | None = Field(default=None, max_length=20)


class TagUpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=_TAG_MAX)
    color: str | None = Field(default=None, max_length=20)


class ContactFilterIn(BaseModel):
    """Which contacts a bulk operation applies to (all criteria must hold)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[uuid.UUID] | None = Field(default=None, max_length=10_000)
    search: str | None = Field(default=None, max_length=200)
    tags: list[str] | None = None
    opt_in: bool | None = None


class BulkTagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["add", "remove"]
    tag: str = Field(min_length=1, max_length=_TAG_MAX)
    filter: ContactFilterIn


class BulkTagOut(BaseModel):
    tag: str
    action: str
    affected: int = Field(description="Contacts that gained (or lost) the tag.")


class ImportErrorOut(BaseModel):
    row: int = Field(description="1-based data row number (the header is row 0).")
    whatsapp_id: str | None
    field: str | None
    reason: str


class ImportJobOut(BaseModel):
    id: uuid.UUID
    status: Literal["pending", "running", "completed", "failed"]
    filename: str
    columns: list[str]
    file_size: int
    bytes_processed: int
    progress: float = Field(description="0.0 to 1.0, by bytes read.")
    rows_processed: int
    created: int
    updated: int
    failed: int
    errors: list[ImportErrorOut] = Field(description="The first 100 failed rows.")
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
