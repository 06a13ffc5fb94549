"""Outgoing webhook endpoints and deliveries as the /v1/webhooks API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

EventName = Literal[
    "message.received",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "conversation.created",
    "conversation.assigned",
    "conversation.resolved",
    "contact.created",
    "contact.updated",
    "template.updated",
]
DeliveryStatus = Literal["pending", "delivering", "delivered", "failed"]


class WebhookCreateIn(BaseModel):
    url: str = Field(max_length=2048, description="HTTPS URL that receives the events.")
    events: list[EventName] = Field(min_length=1, description="Events to receive.")
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        description="HMAC-SHA256 signing secret; generated when omitted (shown only once).",
    )
    description: str | None = Field(default=None, max_length=500)
    is_active: bool = True


class WebhookUpdateIn(BaseModel):
    url: str | None = Field(default=None, max_length=2048)
    events: list[EventName] | None = Field(default=None, min_length=1)
    secret: str | None = Field(default=None, min_length=16, max_length=200)
    description: str | None = Field(default=None, max_length=500)
    is_active: bool | None = Field(
        default=None, description="Setting true re-enables an endpoint disabled for failing."
    )


class WebhookOut(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    url: str
    description: str | None
    events: list[str]
    is_active: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="The signing secret. It is not shown again.")


class AttemptOut(BaseModel):
    at: datetime
    response_status: int | None = None
    duration_ms: int | None = None
    error: str | None = None


class DeliveryOut(BaseModel):
    id: uuid.UUID = Field(description="Also sent as X-PyTake-Delivery (stable across retries).")
    webhook_id: uuid.UUID
    event: str
    event_id: int | None
    status: DeliveryStatus
    attempts: int
    response_status: int | None
    response_excerpt: str | None
    duration_ms: int | None
    error: str | None
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    redelivery_of_id: uuid.UUID | None
    attempt_log: list[AttemptOut]

    @classmethod
    def of(cls, row: Any) -> DeliveryOut:
        return cls(
            id=row.id,
            webhook_id=row.endpoint_id,
            event=row.event_type,
            event_id=row.event_id,
            status=row.status,
            attempts=row.attempts,
            response_status=row.response_status,
            response_excerpt=row.response_excerpt,
            duration_ms=row.duration_ms,
            error=row.error,
            next_attempt_at=row.next_attempt_at,
            last_attempt_at=row.last_attempt_at,
            delivered_at=row.delivered_at,
            created_at=row.created_at,
            redelivery_of_id=row.redelivery_of_id,
            attempt_log=[AttemptOut.model_validate(a) for a in row.attempt_log or []],
        )
