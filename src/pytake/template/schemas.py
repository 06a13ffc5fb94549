"""Message templates as the /v1/templates API shows them; components in Meta's own shape."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Category = Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
ParameterFormat = Literal["POSITIONAL", "NAMED"]
TemplateStatus = Literal[
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
]

_COMPONENTS_EXAMPLE: list[Any] = [
    {
        "type": "HEADER",
        "format": "TEXT",
        "text": "Our {{1}} is on!",
        "example": {"header_text": ["Summer Sale"]},
    },
    {
        "type": "BODY",
        "text": "Shop now through {{1}} and use code {{2}} to get {{3}} off.",
        "example": {"body_text": [["the end of August", "25OFF", "25%"]]},
    },
    {"type": "FOOTER", "text": "Reply STOP to opt out"},
    {
        "type": "BUTTONS",
        "buttons": [
            {"type": "QUICK_REPLY", "text": "Stop promos"},
            {
                "type": "URL",
                "text": "Shop",
                "url": "https://shop.example/{{1}}",
                "example": ["https://shop.example/summer"],
            },
        ],
    },
]


class TemplateCreateIn(BaseModel):
    """The body Meta's `POST /{waba_id}/message_templates` takes, plus the number to use."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "name": "seasonal_promotion",
                "language": "en_US",
                "category": "MARKETING",
                "components": _COMPONENTS_EXAMPLE,
            }
        },
    )

    name: str = Field(
        min_length=1, max_length=512, description="Lowercase letters, digits and underscores."
    )
    language: str = Field(min_length=2, max_length=15, description="e.g. en_US, pt_BR, es.")
    category: Category
    parameter_format: ParameterFormat = Field(
        default="POSITIONAL",
        description="POSITIONAL: variables {{1}}, {{2}}…; NAMED: {{first_name}}…",
    )
    channel_id: uuid.UUID | None = Field(
        default=None,
        description="The WhatsApp number (Cloud API) whose Business Account gets the template; "
        "the organisation's default number when omitted.",
    )
    components: list[dict[str, Any]] = Field(
        description="HEADER, BODY, FOOTER and BUTTONS exactly as Meta's API takes them."
    )
    allow_category_change: bool | None = Field(
        default=None, description="Passed to Meta: let it recategorise instead of rejecting."
    )


class TemplateOut(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    channel_id: uuid.UUID | None
    business_account_id: str
    meta_template_id: str | None = Field(description="Meta's id of the template.")
    name: str
    language: str
    category: str
    previous_category: str | None
    parameter_format: str
    components: list[dict[str, Any]]
    status: str = Field(description="Meta's status; only APPROVED templates can be sent.")
    status_reason: str | None = Field(description="Meta's reason for a rejection or pause.")
    rejection_info: dict[str, Any] | None
    quality_score: str | None
    variables: list[str] = Field(
        description="The variable names a send takes (see POST /v1/templates/{id}/preview)."
    )
    status_updated_at: datetime | None
    last_synced_at: datetime | None
    created_at: datetime
    updated_at: datetime


class PreviewIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"variables": {"1": "Maria", "2": "25OFF"}}}
    )

    variables: dict[str, Any] | list[Any] = Field(
        default_factory=dict,
        description='Body variables by number ("1", "2"…) or by name (NAMED templates); '
        '"header.1" / "header" for the header; "button.<index>" for a URL suffix or a code.',
    )


class PreviewButtonOut(BaseModel):
    type: str
    text: str | None
    url: str | None = None
    phone_number: str | None = None
    code: str | None = None


class PreviewOut(BaseModel):
    header: str | None
    body: str
    footer: str | None
    buttons: list[PreviewButtonOut]
    text: str = Field(description="The whole message as the customer sees it.")
    missing: list[str] = Field(description="Variables the template needs that were not given.")
    unused: list[str] = Field(description="Given variables the template does not use.")
    complete: bool = Field(description="True when no variable is missing.")
    message: dict[str, Any] | None = Field(
        default=None,
        description="When complete: the `template` object of a send with these variables "
        "(`{name, language: {code}, components}`), to pass as `template` to `POST /v1/messages` "
        "or a conversation reply.",
    )


class SyncOut(BaseModel):
    channels: int = Field(description="Business Accounts read.")
    fetched: int
    created: int
    updated: int
    unchanged: int
    errors: list[dict[str, Any]] = Field(
        default_factory=list, description="Numbers whose templates could not be read."
    )
