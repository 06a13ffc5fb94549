"""Chatbots and flows as the `/v1` and `/api/v1` APIs show them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ChatbotSettingsIn(BaseModel):
    welcome_message: str | None = Field(default=None, max_length=4096)
    fallback_message: str | None = Field(default=None, max_length=4096)
    handoff_enabled: bool | None = None
    session_timeout_minutes: int | None = Field(
        default=None, ge=1, le=43_200, description="Inactivity that ends a session (default 24 h)."
    )
    expiry_message: str | None = Field(default=None, max_length=4096)
    max_steps: int | None = Field(
        default=None, ge=5, le=1000, description="Loop guard: nodes without the customer."
    )
    resume_keyword: str | None = Field(
        default=None,
        max_length=100,
        description="A customer message that hands a paused conversation back to the bot.",
    )
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA zone for time conditions (default UTC)."
    )


class ChatbotCreateIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    welcome_message: str | None = Field(default=None, max_length=4096)
    fallback_message: str | None = Field(default=None, max_length=4096)
    handoff_enabled: bool = True
    is_active: bool = True
    settings: ChatbotSettingsIn | None = None


class ChatbotUpdateIn(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    welcome_message: str | None = Field(default=None, max_length=4096)
    fallback_message: str | None = Field(default=None, max_length=4096)
    handoff_enabled: bool | None = None
    is_active: bool | None = None
    settings: ChatbotSettingsIn | None = None


class ChatbotStatistics(BaseModel):
    total_conversations: int
    total_messages: int


class ChatbotSettingsOut(BaseModel):
    welcome_message: str | None
    fallback_message: str | None
    handoff_enabled: bool
    session_timeout_minutes: int
    expiry_message: str | None
    max_steps: int
    resume_keyword: str | None
    timezone: str


class ChatbotOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    is_active: bool
    is_published: bool
    statistics: ChatbotStatistics
    created_at: datetime
    updated_at: datetime


class ChatbotList(BaseModel):
    data: list[ChatbotOut]


class FlowSummary(BaseModel):
    id: uuid.UUID
    name: str
    type: str
    is_active: bool
    version: int | None
    nodes: list[dict[str, Any]]


class ChatbotDetailOut(ChatbotOut):
    flows: list[FlowSummary]
    settings: ChatbotSettingsOut


class FlowIn(BaseModel):
    """A flow in the pinned format; fields beyond these are kept as they are."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=200)
    type: str = Field(default="main", min_length=1, max_length=40)
    description: str | None = Field(default=None, max_length=2000)
    trigger: dict[str, Any] | None = None
    entry: str | None = None
    nodes: list[Any] = Field(default_factory=list)


class FlowWarning(BaseModel):
    node: str | None
    field: str
    message: str


class FlowOut(BaseModel):
    """The flow as saved (its draft), with the version sessions start on."""

    model_config = ConfigDict(extra="allow")

    id: uuid.UUID
    chatbot_id: uuid.UUID
    name: str
    type: str
    description: str | None
    trigger: dict[str, Any] | None
    entry: str | None
    nodes: list[dict[str, Any]]
    is_active: bool
    version: int | None = Field(description="The published version new sessions start on.")
    published_at: datetime | None
    has_unpublished_changes: bool
    warnings: list[FlowWarning] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class FlowList(BaseModel):
    data: list[FlowOut]


class FlowVersionOut(BaseModel):
    flow_id: uuid.UUID
    version: int
    published_at: datetime
    published_by: uuid.UUID | None
    trigger: dict[str, Any] | None
    entry: str | None
    nodes: list[dict[str, Any]]


class FlowVersionList(BaseModel):
    data: list[FlowVersionOut]


class NodeStatOut(BaseModel):
    node: str
    type: str | None
    entered: int
    completed: int
    dropped: int


class VersionStatsOut(BaseModel):
    version: int
    nodes: list[NodeStatOut]


class FlowStatsOut(BaseModel):
    flow_id: uuid.UUID
    versions: list[VersionStatsOut]


class StartFlowIn(BaseModel):
    flow_id: uuid.UUID


class StartFlowOut(BaseModel):
    conversation_id: uuid.UUID
    flow_id: uuid.UUID
    version: int
    session_id: uuid.UUID
    status: str
    node: str


# --- /api/v1/flows -------------------------------------------------------------------------

LegacyTrigger = Literal["keyword", "new_conversation", "button", "manual"]


class LegacyFlowIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    category: str | None = Field(default=None, max_length=100)
    trigger: LegacyTrigger | None = None
    trigger_value: str | None = Field(default=None, max_length=500)
    steps: list[dict[str, Any]] = Field(min_length=1)
    is_active: bool = True


class LegacyFlowCreated(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    category: str | None
    is_active: bool
    created_at: datetime


class LegacyFlowOut(LegacyFlowCreated):
    trigger: str | None
    updated_at: datetime


class LegacyFlowList(BaseModel):
    flows: list[LegacyFlowOut]
    total: int
