"""Every event's payload, built in one place (docs/events.md shows them).

Producers differ in what they hold (ORM objects in the services, Core rows in ingest and the
dispatcher), so these take plain values; each event type has one builder, so the same event
carries the same keys whoever records it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pytake.events.outbox import DomainEvent


def contact_brief(
    contact_id: uuid.UUID,
    name: str | None,
    profile_name: str | None,
    whatsapp_id: str,
    opt_in: bool,
) -> dict[str, Any]:
    """A contact as the message and conversation events show it (`name`: the name given in
    PyTake, else the WhatsApp profile name)."""
    return {
        "id": contact_id,
        "name": name or profile_name,
        "whatsapp_id": whatsapp_id,
        "opt_in": opt_in,
    }


def contact_event(
    organization_id: uuid.UUID,
    type: str,
    brief: dict[str, Any],
    *,
    email: str | None,
    is_blocked: bool,
    attributes: dict[str, Any],
    changes: list[str] | None = None,
) -> DomainEvent:
    """contact.created / contact.updated (with the names of the fields that changed)."""
    data: dict[str, Any] = {
        "contact": {**brief, "email": email, "is_blocked": is_blocked, "attributes": attributes}
    }
    if changes is not None:
        data["changes"] = changes
    return DomainEvent(organization_id, type, data)


def conversation_view(
    conversation_id: uuid.UUID,
    status: str,
    contact_id: uuid.UUID,
    channel_id: uuid.UUID | None,
    assigned_to_id: uuid.UUID | None,
    team_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    return {
        "id": conversation_id,
        "status": status,
        "contact_id": contact_id,
        "channel_id": channel_id,
        "assigned_to_id": assigned_to_id,
        "team_id": team_id,
    }


def conversation_event(
    organization_id: uuid.UUID,
    type: str,
    conversation: dict[str, Any],
    contact: dict[str, Any] | None = None,
) -> DomainEvent:
    """conversation.created (with the contact's brief), .assigned, .resolved."""
    data: dict[str, Any] = {"conversation": conversation}
    if contact is not None:
        data["contact"] = contact
    return DomainEvent(organization_id, type, data)


def message_received(
    organization_id: uuid.UUID,
    message: dict[str, Any],
    conversation_id: uuid.UUID,
    contact: dict[str, Any],
) -> DomainEvent:
    """message.received; `message`: id, whatsapp_message_id, type, content,
    context_message_id, created_at."""
    data = {
        "message": message,
        "conversation": {"id": conversation_id, "status": "open"},
        "contact": contact,
    }
    return DomainEvent(organization_id, "message.received", data)


def message_status(
    organization_id: uuid.UUID,
    *,
    message_id: uuid.UUID,
    whatsapp_message_id: str | None,
    conversation_id: uuid.UUID,
    type: str,
    status: str,
    at: datetime,
    error: tuple[int | None, str | None, str | None] | None = None,
) -> DomainEvent:
    """message.sent / .delivered / .read / .failed; `at` is when the provider says it happened,
    `error` (code, title, details) as the message stores it."""
    data: dict[str, Any] = {
        "message": {
            "id": message_id,
            "whatsapp_message_id": whatsapp_message_id,
            "conversation_id": conversation_id,
            "type": type,
            "status": status,
        },
        "status": status,
        "timestamp": at,
    }
    if status == "failed":
        code, title, details = error or (None, None, None)
        data["error"] = {"code": code, "title": title, "details": details}
    return DomainEvent(organization_id, f"message.{status}", data)
