"""Builders of the webhook bodies the fake Graph API posts (shapes as in Meta's webhooks)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from pytake.whatsapp.provider import MEDIA_TYPES
from pytake.whatsapp.simulator.state import BusinessNumber, new_numeric_id

DEFAULT_MIME = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/ogg; codecs=opus",
    "document": "application/pdf",
    "sticker": "image/webp",
}


class BadCustomerMessage(ValueError):
    """The control API was asked to make a customer send something incoherent."""


def envelope(
    number: BusinessNumber, value: dict[str, Any], field: str = "messages"
) -> dict[str, Any]:
    """Wrap a change value in Meta's `whatsapp_business_account` envelope."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": number.display_phone_number,
            "phone_number_id": number.phone_number_id,
        },
        **value,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": number.waba_id, "changes": [{"value": value, "field": field}]}],
    }


def status_item(
    message_id: str,
    status: str,
    recipient: str,
    timestamp: int,
    *,
    callback_data: str | None,
    category: str,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One `statuses[]` item (PMP pricing; failed items carry errors and no pricing)."""
    item: dict[str, Any] = {
        "id": message_id,
        "status": status,
        "timestamp": str(timestamp),
        "recipient_id": recipient,
    }
    if callback_data is not None:
        item["biz_opaque_callback_data"] = callback_data
    if errors:
        item["errors"] = errors
        return item
    item["pricing"] = {
        "billable": category != "service",
        "pricing_model": "PMP",
        "type": "free_customer_service" if category == "service" else "regular",
        "category": category,
    }
    return item


def error_item(code: int, title: str, details: str) -> dict[str, Any]:
    """An `errors[]` item as webhooks carry them."""
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }


def customer_message(
    spec: dict[str, Any], message_id: str, timestamp: int
) -> tuple[dict[str, Any], bytes | None]:
    """A `messages[]` item from a control-API description, plus media bytes to store."""
    sender = str(spec.get("from") or "")
    if not sender.isdigit():
        raise BadCustomerMessage("`from` must be the customer's number in digits")
    kind = str(spec.get("type") or "text")
    item: dict[str, Any] = {"from": sender, "id": message_id, "timestamp": str(timestamp)}
    if spec.get("context_message_id"):
        item["context"] = {
            "from": spec.get("business_number", ""),
            "id": spec["context_message_id"],
        }
    if isinstance(spec.get("referral"), dict):
        item["referral"] = spec["referral"]
    media: bytes | None = None
    if kind in MEDIA_TYPES:
        item["type"] = kind
        item[kind], media = _media(kind, spec)
    else:
        item.update(_other(kind, spec))
    return item, media


def _media(kind: str, spec: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    raw = spec.get("data_base64")
    data = base64.b64decode(raw) if isinstance(raw, str) else f"simulated {kind}".encode()
    obj: dict[str, Any] = {
        "mime_type": spec.get("mime_type") or DEFAULT_MIME[kind],
        "sha256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
        "id": new_numeric_id(),
    }
    if spec.get("caption") and kind in ("image", "video", "document"):
        obj["caption"] = spec["caption"]
    if kind == "document":
        obj["filename"] = spec.get("filename") or "document.pdf"
    if kind == "audio":
        obj["voice"] = bool(spec.get("voice", False))
    if kind == "sticker":
        obj["animated"] = bool(spec.get("animated", False))
    return obj, data


def _other(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    if kind == "text":
        return {"type": "text", "text": {"body": str(spec.get("text", ""))}}
    if kind in ("button_reply", "list_reply"):
        reply = {"id": spec.get("reply_id"), "title": spec.get("title")}
        if kind == "list_reply" and spec.get("description"):
            reply["description"] = spec["description"]
        if not reply["id"]:
            raise BadCustomerMessage(f"{kind} needs reply_id")
        return {"type": "interactive", "interactive": {"type": kind, kind: reply}}
    if kind == "button":
        return {
            "type": "button",
            "button": {"payload": spec.get("payload"), "text": spec.get("text")},
        }
    if kind == "location":
        keys = ("latitude", "longitude", "name", "address")
        return {"type": "location", "location": {k: spec[k] for k in keys if k in spec}}
    if kind == "contacts":
        return {"type": "contacts", "contacts": spec.get("contacts") or []}
    if kind == "reaction":
        return {
            "type": "reaction",
            "reaction": {"message_id": spec.get("message_id"), "emoji": spec.get("emoji", "")},
        }
    if kind == "order":
        fields = ("catalog_id", "text", "product_items")
        return {"type": "order", "order": {k: spec.get(k) for k in fields}}
    if kind == "system":
        body = f"User changed number to {spec.get('new_wa_id')}"
        system = {"body": body, "wa_id": spec.get("new_wa_id"), "type": "user_changed_number"}
        return {"type": "system", "system": system}
    if kind == "unsupported":
        error = error_item(
            131051, "Message type unknown", "Message type is currently not supported."
        )
        return {"type": "unsupported", "errors": [error]}
    raise BadCustomerMessage(f"unknown customer message type {kind!r}")


def inbound_body(
    number: BusinessNumber, item: dict[str, Any], profile_name: str | None
) -> dict[str, Any]:
    """The whole webhook body for one customer message."""
    contacts = [{"profile": {"name": profile_name or "Customer"}, "wa_id": item["from"]}]
    return envelope(number, {"contacts": contacts, "messages": [item]})
