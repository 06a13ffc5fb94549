"""Campaign requests and responses, as the /v1 document shows them (plus what it leaves out:
skipped contacts with reasons, pause reasons, the pace in force)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from pytake.kit.pagination import PageMeta

TargetType = Literal["tags", "contacts", "segment", "all"]
CampaignStatus = Literal["draft", "scheduled", "running", "paused", "completed", "cancelled"]
RecipientStatus = Literal[
    "pending", "sending", "sent", "delivered", "read", "failed", "skipped", "cancelled"
]
AttributeValue = str | int | float | bool


class TargetFilters(BaseModel):
    """Who receives it. `tags`: contacts having all of them (target_type `tags`, or part of a
    segment); `contact_ids` (target_type `contacts`); a segment of the contacts list's
    filters: `search`, `tags`, `attributes` (equality on each key), `opt_in`."""

    model_config = ConfigDict(extra="forbid")

    tags: list[str] | None = Field(default=None, max_length=50)
    contact_ids: list[uuid.UUID] | None = Field(default=None, max_length=100_000)
    search: str | None = Field(default=None, max_length=200)
    attributes: dict[str, AttributeValue] | None = Field(default=None, max_length=50)
    opt_in: bool | None = None


class MessageContent(BaseModel):
    """The template (by name, when `template_id` is not given) and its variables.

    `variables` map onto the template's parameters by name (NAMED templates) or by position
    (`"1"`, `"2"`… for POSITIONAL ones; `"header.1"`, `"header"`, `"button.0"` as in
    /v1/templates). A value is fixed (`"50%"`) or per contact (`"{{contact.name}}"`,
    `"{{contact.attributes.city}}"`)."""

    model_config = ConfigDict(extra="forbid")

    template: str | None = Field(default=None, max_length=512, description="Template name")
    language: str | None = Field(
        default=None,
        max_length=15,
        description="Template language (e.g. pt_BR); needed only when the organisation has "
        "the named template in several languages",
    )
    variables: dict[str, Any] = Field(default_factory=dict)


class CampaignCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    target_type: TargetType
    target_filters: TargetFilters = Field(default_factory=TargetFilters)
    template_id: uuid.UUID | None = None
    message_content: MessageContent = Field(default_factory=MessageContent)
    scheduled_at: AwareDatetime | None = Field(
        default=None,
        description="ISO 8601 with a time zone; absent: a draft, started with POST …/start",
    )
    send_rate_limit: int | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="Messages per second at most (the number's throughput caps it: Meta's "
        "default 80/s, up to 1,000)",
    )
    channel_id: uuid.UUID | None = Field(
        default=None, description="The WhatsApp number to send from (default: the default one)"
    )


class CampaignUpdateIn(BaseModel):
    """PATCH while `draft` or `scheduled`; a field left out keeps its value. `scheduled_at`
    null makes a scheduled campaign a draft again."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    target_type: TargetType | None = None
    target_filters: TargetFilters | None = None
    template_id: uuid.UUID | None = None
    message_content: MessageContent | None = None
    scheduled_at: AwareDatetime | None = None
    send_rate_limit: int | None = Field(
        default=None, gt=0, le=1000, description="Messages per second at most"
    )
    channel_id: uuid.UUID | None = None


class CampaignOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    status: CampaignStatus
    target_type: TargetType
    target_filters: dict[str, Any]
    template_id: uuid.UUID | None
    template_name: str
    template_language: str
    message_content: dict[str, Any]
    channel_id: uuid.UUID | None
    send_rate_limit: int | None = Field(description="Messages per second at most")
    scheduled_at: datetime | None
    total_recipients: int = Field(
        description="Contacts to message: opted in, not blocked, not deleted, one per number"
    )
    pending_count: int
    sent_count: int = Field(description="Accepted by WhatsApp (sent, delivered or read)")
    delivered_count: int
    read_count: int
    failed_count: int
    replied_count: int = Field(
        description="Recipients who wrote back within reply_window_hours after their message"
    )
    skipped_count: int
    skipped_reasons: dict[str, int] = Field(
        description="opted_out, blocked, deleted, not_found, missing_variable: how many each"
    )
    delivery_rate: float = Field(description="delivered / sent, in percent, one decimal")
    read_rate: float = Field(description="read / sent, in percent, one decimal")
    reply_rate: float = Field(description="replied / sent, in percent, one decimal")
    reply_window_hours: float
    current_rate: float | None = Field(
        description="Messages per second the campaign is paced at now (lower after 130429)"
    )
    pause_reason: str | None
    started_at: datetime | None
    completed_at: datetime | None
    paused_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CampaignPage(BaseModel):
    data: list[CampaignOut]
    meta: PageMeta


class RecipientErrorOut(BaseModel):
    code: int | None
    title: str | None


class RecipientOut(BaseModel):
    contact_id: uuid.UUID
    contact_name: str | None
    phone: str
    status: RecipientStatus
    skip_reason: str | None
    message_id: uuid.UUID | None
    whatsapp_message_id: str | None
    error: RecipientErrorOut | None
    queued_at: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    replied_at: datetime | None


class RecipientPage(BaseModel):
    data: list[RecipientOut]
    meta: PageMeta
