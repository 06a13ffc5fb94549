"""Conversations as /v1/conversations and /api/v1/conversations/agent show them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from pytake.message.sending.schemas import MessageOut
from pytake.team.schemas import TeamBriefOut

ConversationStatus = Literal["open", "pending", "assigned", "resolved", "closed"]


class ConversationContactOut(BaseModel):
    id: uuid.UUID
    name: str | None
    whatsapp_id: str


class AssigneeOut(BaseModel):
    id: uuid.UUID
    name: str


class ConversationOut(BaseModel):
    id: uuid.UUID
    contact: ConversationContactOut
    channel_id: uuid.UUID | None
    status: str
    assigned_to: AssigneeOut | None
    team: TeamBriefOut | None = Field(
        default=None, description="The team the conversation was routed to (null: none)."
    )
    is_bot_active: bool
    tags: list[str]
    unread_count: int
    message_count: int
    last_message_at: datetime | None
    window_expires_at: datetime | None = Field(
        description="When the 24-hour customer-service window closes (null: never opened)."
    )
    resolved_at: datetime | None
    bot_variables: dict[str, Any] | None = Field(
        default=None,
        description="What a chatbot collected before handing the conversation to people.",
    )
    created_at: datetime
    updated_at: datetime


class MessagesMeta(BaseModel):
    limit: int
    has_more: bool
    next_cursor: str | None = Field(
        description="Pass as `messages_cursor` for the page of messages before this one."
    )


class ConversationDetailOut(ConversationOut):
    messages: list[MessageOut] = Field(
        description="The most recent page (or the page before `messages_cursor`), oldest first."
    )
    messages_meta: MessagesMeta


class ConversationUpdateIn(BaseModel):
    status: ConversationStatus | None = None
    assigned_to: uuid.UUID | None = Field(
        default=None, description="A user of your organisation (agent or admin); null unassigns."
    )
    tags: list[str] | None = Field(default=None, max_length=50)
    is_bot_active: bool | None = None
    team_id: uuid.UUID | None = Field(
        default=None, description="Route to a team of your organisation; null removes the team."
    )

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str] | None) -> list[str] | None:
        if tags is None:
            return None
        cleaned: list[str] = []
        for tag in tags:
            tag = tag.strip()
            if not tag or len(tag) > 100:
                raise ValueError("tags must be 1 to 100 characters")
            if tag not in cleaned:
                cleaned.append(tag)
        return cleaned


class ReadOut(BaseModel):
    conversation_id: uuid.UUID
    marked_read: int = Field(description="Inbound messages newly marked read.")
    unread_count: int


class LegacyAgentConversation(BaseModel):
    id: uuid.UUID
    customer_phone: str
    agent_id: uuid.UUID | None
    status: Literal["pending", "active", "resolved"]
    started_at: datetime
    last_message_at: datetime | None
    message_count: int


class LegacyAgentConversations(BaseModel):
    conversations: list[LegacyAgentConversation]
    total: int
    limit: int
    offset: int
