"""Meta Cloud API webhooks: signature check, the GET challenge, and body → normalised events."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Literal, cast

from pytake.whatsapp._json import obj as as_obj
from pytake.whatsapp.events import (
    DeliveryStatus,
    EventError,
    InboundMessage,
    MalformedWebhook,
    MessageEcho,
    ProviderEvent,
    StatusUpdate,
    TemplateStatusUpdate,
    parse_event_errors,
    unix_to_datetime,
)
from pytake.whatsapp.provider import MEDIA_TYPES

__all__ = [
    "SIGNATURE_HEADER",
    "MalformedWebhook",
    "parse_webhook",
    "sign",
    "verify_challenge",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="
_STATUSES = {"sent", "delivered", "read", "failed"}


def sign(app_secret: str, raw_body: bytes) -> str:
    """The `X-Hub-Signature-256` header value Meta sends for this body."""
    digest = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def verify_signature(app_secret: str, raw_body: bytes, header: str | None) -> bool:
    """Check `X-Hub-Signature-256` over the raw body bytes, in constant time."""
    if not header or not app_secret:
        return False
    expected = sign(app_secret, raw_body)
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode())


def verify_challenge(params: Mapping[str, str], verify_token: str) -> str | None:
    """The body to answer Meta's subscription GET with, or None (answer 403)."""
    if params.get("hub.mode") != "subscribe":
        return None
    token = params.get("hub.verify_token") or ""
    if not verify_token or not hmac.compare_digest(token.encode(), verify_token.encode()):
        return None
    return params.get("hub.challenge") or ""


def parse_webhook(body: Any) -> list[ProviderEvent]:
    """Every event in a Meta webhook body, in order; unknown fields and change types are skipped."""
    if not isinstance(body, dict):
        raise MalformedWebhook("body is not a JSON object")
    obj = body.get("object")
    if obj is not None and obj != "whatsapp_business_account":
        raise MalformedWebhook(f"unexpected object {obj!r}")
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise MalformedWebhook("entry is not a list")
    events: list[ProviderEvent] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise MalformedWebhook(f"entry[{index}] is not an object")
        changes = entry.get("changes")
        if not isinstance(changes, list):
            raise MalformedWebhook(f"entry[{index}].changes is not a list")
        for change in changes:
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                raise MalformedWebhook(f"entry[{index}] has a change without a value object")
            events.extend(_parse_change(entry, change))
    return events


def _parse_change(entry: dict[str, Any], change: dict[str, Any]) -> list[ProviderEvent]:
    value: dict[str, Any] = change["value"]
    # The earliest payloads (and our own /api/v1 doc) omit `field` for messages.
    field = change.get("field") or "messages"
    if field in _TEMPLATE_FIELDS:
        return [_template_update(entry, value, _TEMPLATE_FIELDS[field])]
    if field == "messages":
        channel = _channel(value)
        return _messages(channel, value) + _statuses(channel, value)
    if field == "smb_message_echoes":
        channel = _channel(value)
        return [_echo(channel, item) for item in _items(value, "message_echoes")]
    return []


def _channel(value: dict[str, Any]) -> str:
    metadata = value.get("metadata")
    pnid = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    if not pnid:
        raise MalformedWebhook("metadata.phone_number_id is missing")
    return str(pnid)


def _items(value: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = value.get(key)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise MalformedWebhook(f"{key} is not a list of objects")
    return items


def _profile_names(value: dict[str, Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for contact in _items(value, "contacts"):
        profile = contact.get("profile")
        if contact.get("wa_id") and isinstance(profile, dict) and profile.get("name"):
            names[str(contact["wa_id"])] = str(profile["name"])
    return names


def _messages(channel: str, value: dict[str, Any]) -> list[ProviderEvent]:
    names = _profile_names(value)
    # Value-level errors (e.g. 131000 "Unsupported webhook payload") concern the messages
    # beside them.
    shared_errors = parse_event_errors(value.get("errors"))
    return [_message(channel, item, names, shared_errors) for item in _items(value, "messages")]


def _message(
    channel: str,
    item: dict[str, Any],
    names: dict[str, str],
    shared_errors: tuple[EventError, ...],
) -> InboundMessage:
    message_id = item.get("id")
    sender = item.get("from")
    kind = str(item.get("type") or "unknown")
    if not message_id:
        raise MalformedWebhook("message without id")
    # A user-id change (BSUID) system message legitimately has no phone number.
    if not sender and kind != "system" and not item.get("from_user_id"):
        raise MalformedWebhook(f"message {message_id} has no sender")
    context = as_obj(item.get("context"))
    referral = item.get("referral")
    return InboundMessage(
        channel=channel,
        sender=str(sender) if sender else None,
        provider_message_id=str(message_id),
        timestamp=unix_to_datetime(item.get("timestamp"), f"message {message_id}"),
        type=kind,
        content=message_content(kind, item),
        profile_name=names.get(str(sender)) if sender else None,
        context_message_id=context.get("id"),
        forwarded=bool(context.get("forwarded") or context.get("frequently_forwarded")),
        referral=referral if isinstance(referral, dict) else None,
        errors=parse_event_errors(item.get("errors")) + shared_errors,
        sender_user_id=item.get("from_user_id"),
        raw=item,
    )


def message_content(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    """Normalise the per-type object of a Cloud API message (inbound or echo)."""
    obj = item.get(kind)
    data: dict[str, Any] = obj if isinstance(obj, dict) else {}
    if kind == "text":
        return {"text": data.get("body", "")}
    if kind in MEDIA_TYPES:
        return _media_content(kind, data)
    if kind == "location":
        return {key: data.get(key) for key in ("latitude", "longitude", "name", "address", "url")}
    if kind == "contacts":
        return {"contacts": obj if isinstance(obj, list) else []}
    if kind == "interactive":
        return _interactive_content(data)
    if kind == "button":
        return {"payload": data.get("payload"), "text": data.get("text")}
    if kind == "reaction":
        return {"message_id": data.get("message_id"), "emoji": data.get("emoji") or ""}
    if kind == "order":
        return {key: data.get(key) for key in ("catalog_id", "text", "product_items")}
    if kind == "system":
        return _system_content(data, item)
    if kind == "unsupported":
        return {"unsupported_type": data.get("type")}
    return dict(data)


def _media_content(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    content = {
        "media_id": data.get("id"),
        "mime_type": data.get("mime_type"),
        "sha256": data.get("sha256"),
        "caption": data.get("caption"),
        "filename": data.get("filename"),
        "url": data.get("url") or data.get("link"),
    }
    if kind == "audio":
        content["voice"] = bool(data.get("voice"))
    if kind == "sticker":
        content["animated"] = bool(data.get("animated"))
    return content


def _interactive_content(data: dict[str, Any]) -> dict[str, Any]:
    kind = data.get("type")
    reply = data.get(kind) if isinstance(kind, str) else None
    reply = reply if isinstance(reply, dict) else {}
    if kind == "nfm_reply":
        return {
            "kind": kind,
            "response_json": reply.get("response_json"),
            "body": reply.get("body"),
            "name": reply.get("name"),
        }
    return {
        "kind": kind,
        "reply_id": reply.get("id"),
        "title": reply.get("title"),
        "description": reply.get("description"),
    }


def _system_content(data: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    content = {key: val for key, val in data.items() if key != "type"}
    content["system_type"] = data.get("type")
    if isinstance(item.get("identity"), dict):
        content["identity"] = item["identity"]
    return content


def _statuses(channel: str, value: dict[str, Any]) -> list[ProviderEvent]:
    events: list[ProviderEvent] = []
    for item in _items(value, "statuses"):
        message_id = item.get("id")
        raw_status = item.get("status")
        if not message_id or not isinstance(raw_status, str):
            raise MalformedWebhook("status without id or status")
        # A played voice note was necessarily heard, so it counts as read.
        status = "read" if raw_status == "played" else raw_status
        if status not in _STATUSES:
            continue
        pricing, conversation = item.get("pricing"), item.get("conversation")
        events.append(
            StatusUpdate(
                channel=channel,
                provider_message_id=str(message_id),
                status=cast(DeliveryStatus, status),  # checked against _STATUSES above
                timestamp=unix_to_datetime(item.get("timestamp"), f"status of {message_id}"),
                recipient=item.get("recipient_id"),
                callback_data=item.get("biz_opaque_callback_data"),
                errors=parse_event_errors(item.get("errors")),
                provider_status=raw_status,
                pricing=pricing if isinstance(pricing, dict) else None,
                conversation=conversation if isinstance(conversation, dict) else None,
                raw=item,
            )
        )
    return events


def _echo(channel: str, item: dict[str, Any]) -> MessageEcho:
    message_id = item.get("id")
    if not message_id:
        raise MalformedWebhook("message echo without id")
    kind = str(item.get("type") or "unknown")
    context = as_obj(item.get("context"))
    return MessageEcho(
        channel=channel,
        recipient=item.get("to"),
        provider_message_id=str(message_id),
        timestamp=unix_to_datetime(item.get("timestamp"), f"echo {message_id}"),
        type=kind,
        content=message_content(kind, item),
        source="device",
        context_message_id=context.get("id"),
        raw=item,
    )


# Account-level template webhooks → (kind, the key of the new value, the key of the old one).
_TEMPLATE_FIELDS: dict[str, tuple[str, str, str | None]] = {
    "message_template_status_update": ("status", "event", None),
    "message_template_quality_update": ("quality", "new_quality_score", "previous_quality_score"),
    "template_category_update": ("category", "new_category", "previous_category"),
}


def _template_update(
    entry: dict[str, Any], value: dict[str, Any], spec: tuple[str, str, str | None]
) -> TemplateStatusUpdate:
    kind, new_key, old_key = spec
    new = value.get(new_key)
    if not isinstance(new, str):
        raise MalformedWebhook(f"template {kind} update without {new_key}")
    template_id = value.get("message_template_id")
    when = entry.get("time")
    previous = value.get(old_key) if old_key else None
    return TemplateStatusUpdate(
        channel=str(entry.get("id") or ""),
        template_id=str(template_id) if template_id is not None else None,
        template_name=value.get("message_template_name"),
        language=value.get("message_template_language"),
        event=new,
        reason=value.get("reason"),
        timestamp=unix_to_datetime(when, "template update") if when is not None else None,
        raw=value,
        kind=cast(Literal["status", "quality", "category"], kind),
        previous=str(previous) if previous is not None else None,
    )
