"""How a committed event looks on the WebSocket (the /api/v1 document's shapes, plus fields).

`message.received` → `{"type": "message", "data": {"from", "message", "timestamp", …}}`;
`message.sent|delivered|read|failed` → `{"type": "status", "data": {"message_id", "status",
"timestamp", …}}`; conversation, contact, campaign and template events → `{"type": "conversation"|"contact"|"campaign"|"template", …}`.
Every frame also carries `event` (the event type) and `id` (the outbox id, for resuming).
"""

from __future__ import annotations

from typing import Any

from pytake.events.types import (
    CAMPAIGN_EVENTS,
    CONTACT_EVENTS,
    CONVERSATION_EVENTS,
    TEMPLATE_EVENTS,
    CommittedEvent,
)


def required_scope(event_type: str) -> tuple[str, ...]:
    """A connection receives an event when its credential holds any of these scopes."""
    if event_type in CONTACT_EVENTS:
        return ("contacts:read",)
    if event_type in CONVERSATION_EVENTS:
        return ("conversations:read",)
    if event_type in CAMPAIGN_EVENTS:
        return ("campaigns:read",)
    if event_type in TEMPLATE_EVENTS:
        return ("templates:read",)
    return ("conversations:read", "messages:read")


def frame_for(event: CommittedEvent) -> dict[str, Any]:
    if event.type == "message.received":
        kind, data = "message", _inbound_message(event)
    elif event.type == "message.media_updated":
        kind, data = "media", event.data
    elif event.type.startswith("message."):
        kind, data = "status", _status(event)
    elif event.type in CONVERSATION_EVENTS:
        kind, data = "conversation", event.data
    elif event.type in CAMPAIGN_EVENTS:
        kind, data = "campaign", event.data
    elif event.type in TEMPLATE_EVENTS:
        kind, data = "template", event.data
    else:
        kind, data = "contact", event.data
    return {"type": kind, "event": event.type, "id": event.id, "data": data}


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, dict):
        for key in ("text", "body", "caption"):
            if isinstance(content.get(key), str):
                return str(content[key])
    return message.get("text") if isinstance(message.get("text"), str) else ""  # type: ignore[return-value]


def _inbound_message(event: CommittedEvent) -> dict[str, Any]:
    message = _dict(event.data.get("message"))
    contact = _dict(event.data.get("contact"))
    conversation = _dict(event.data.get("conversation"))
    return {
        "from": contact.get("whatsapp_id") or message.get("from"),
        "message": _text_of(message),
        "timestamp": message.get("created_at") or event.timestamp,
        "message_id": message.get("whatsapp_message_id") or message.get("id"),
        "id": message.get("id"),
        "type": message.get("type"),
        "content": message.get("content"),
        "media": message.get("media"),
        "conversation": conversation,
        "contact": contact,
    }


def _status(event: CommittedEvent) -> dict[str, Any]:
    message = _dict(event.data.get("message"))
    status = event.data.get("status") or event.type.removeprefix("message.")
    data: dict[str, Any] = {
        "message_id": message.get("whatsapp_message_id") or message.get("id"),
        "status": status,
        "timestamp": event.data.get("timestamp") or event.timestamp,
        "id": message.get("id"),
        "conversation_id": message.get("conversation_id"),
    }
    if "error" in event.data:
        data["error"] = event.data["error"]
    return data


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
