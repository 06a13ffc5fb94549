"""Builders of Evolution API v2 shapes: stored message objects, webhook envelopes, QR codes."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from pytake.whatsapp.simulator.meta_payloads import DEFAULT_MIME, BadCustomerMessage

# A 1×1 PNG: enough for a browser to render "a QR code" on the phone page.
_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
_EVENT_CONFIG_NAMES = {
    "messages.upsert": "MESSAGES_UPSERT",
    "messages.update": "MESSAGES_UPDATE",
    "send.message": "SEND_MESSAGE",
    "connection.update": "CONNECTION_UPDATE",
    "qrcode.updated": "QRCODE_UPDATED",
}
_MEDIA_PROTO = {
    "image": "imageMessage",
    "video": "videoMessage",
    "audio": "audioMessage",
    "document": "documentMessage",
    "sticker": "stickerMessage",
}


def config_name(event: str) -> str:
    """`messages.upsert` → `MESSAGES_UPSERT` (the name used in webhook `events`)."""
    return _EVENT_CONFIG_NAMES.get(event, event.upper().replace(".", "_"))


def qr_payload(count: int) -> dict[str, Any]:
    """What `/instance/connect` returns while waiting for a scan."""
    return {
        "pairingCode": None,
        "code": f"2@{secrets.token_urlsafe(24)},{secrets.token_urlsafe(16)},{count}",
        "base64": f"data:image/png;base64,{_PNG}",
        "count": count,
    }


def envelope(
    event: str, instance: str, data: Any, destination: str, sender: str | None, server_url: str
) -> dict[str, Any]:
    """The body Evolution posts for every event."""
    return {
        "event": event,
        "instance": instance,
        "data": data,
        "destination": destination,
        # Evolution formats local server time with a Z; the simulator's local time is UTC.
        "date_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "sender": f"{sender}@s.whatsapp.net" if sender else None,
        "server_url": server_url,
        "apikey": None,
    }


def sent_message_object(
    action: str, body: dict[str, Any], message_id: str, remote_jid: str, instance_id: str, now: int
) -> dict[str, Any]:
    """The stored message Evolution answers a send with (and posts as `send.message`)."""
    message_type, message = _sent_content(action, body)
    return {
        "key": {"remoteJid": remote_jid, "fromMe": True, "id": message_id},
        "pushName": "",
        "status": "PENDING",
        "message": message,
        "contextInfo": None,
        "messageType": message_type,
        "messageTimestamp": now,
        "instanceId": instance_id,
        "source": "unknown",
    }


def _sent_content(action: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if action == "sendText":
        return "conversation", {"conversation": body["text"]}
    if action == "sendMedia":
        proto = _MEDIA_PROTO[body["mediatype"]]
        media = {
            "url": body["media"],
            "mimetype": body.get("mimetype"),
            "caption": body.get("caption"),
        }
        return proto, {proto: media}
    if action in ("sendWhatsAppAudio", "sendSticker"):
        proto = "audioMessage" if action == "sendWhatsAppAudio" else "stickerMessage"
        source = body.get("audio") or body.get("sticker")
        return proto, {proto: {"url": source, "ptt": action == "sendWhatsAppAudio"}}
    if action == "sendLocation":
        location = {
            "degreesLatitude": body["latitude"],
            "degreesLongitude": body["longitude"],
            "name": body.get("name"),
            "address": body.get("address"),
        }
        return "locationMessage", {"locationMessage": location}
    if action == "sendReaction":
        return "reactionMessage", {
            "reactionMessage": {"key": body["key"], "text": body["reaction"]}
        }
    if action == "sendContact":
        contacts = [{"displayName": c.get("fullName"), "vcard": _vcard(c)} for c in body["contact"]]
        return "contactsArrayMessage", {"contactsArrayMessage": {"contacts": contacts}}
    if action == "sendList":
        return "listMessage", {"listMessage": body}
    if action == "sendButtons":
        return "buttonsMessage", {"buttonsMessage": body}
    return "templateMessage", {"templateMessage": body}


def _vcard(contact: dict[str, Any]) -> str:
    return (
        "BEGIN:VCARD\nVERSION:3.0\n"
        f"FN:{contact.get('fullName', '')}\n"
        f"TEL;type=CELL;waid={contact.get('wuid', '')}:{contact.get('phoneNumber', '')}\nEND:VCARD"
    )


def customer_upsert(
    spec: dict[str, Any], message_id: str, instance_id: str, now: int, with_base64: bool
) -> tuple[dict[str, Any], bytes | None]:
    """`messages.upsert` data for a simulated customer's message, plus media bytes to keep."""
    sender = str(spec.get("from") or "")
    if not sender.isdigit():
        raise BadCustomerMessage("`from` must be the customer's number in digits")
    phone_jid = f"{sender}@s.whatsapp.net"
    key: dict[str, Any] = {"remoteJid": phone_jid, "fromMe": False, "id": message_id}
    key.update(participant=None, addressingMode="pn", remoteJidAlt=None)
    if spec.get("lid"):
        # LID addressing hides the phone in remoteJid; the real JID comes in remoteJidAlt.
        key.update(remoteJid=f"{spec['lid']}@lid", addressingMode="lid", remoteJidAlt=phone_jid)
    message_type, message, media = _customer_content(spec, with_base64)
    context = {"stanzaId": spec["context_message_id"]} if spec.get("context_message_id") else None
    data = {
        "key": key,
        "pushName": spec.get("profile_name") or "Customer",
        "status": "DELIVERY_ACK",
        "message": message,
        "contextInfo": context,
        "messageType": message_type,
        "messageTimestamp": now,
        "instanceId": instance_id,
        "source": "android",
    }
    return data, media


def _customer_content(
    spec: dict[str, Any], with_base64: bool
) -> tuple[str, dict[str, Any], bytes | None]:
    kind = str(spec.get("type") or "text")
    if kind == "text":
        text = str(spec.get("text", ""))
        if spec.get("text_shape") == "extended":  # older 2.x servers
            return "extendedTextMessage", {"extendedTextMessage": {"text": text}}, None
        return "conversation", {"conversation": text}, None
    if kind in _MEDIA_PROTO:
        return _customer_media(kind, spec, with_base64)
    proto, obj = _customer_other(kind, spec)
    return proto, {proto: obj}, None


def _customer_media(
    kind: str, spec: dict[str, Any], with_base64: bool
) -> tuple[str, dict[str, Any], bytes]:
    raw = spec.get("data_base64")
    data = base64.b64decode(raw) if isinstance(raw, str) else f"simulated {kind}".encode()
    proto = _MEDIA_PROTO[kind]
    media: dict[str, Any] = {
        "url": f"https://mmg.whatsapp.net/v/t62/{secrets.token_hex(8)}.enc",
        "mimetype": spec.get("mime_type") or DEFAULT_MIME[kind],
        "fileSha256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
        "fileLength": str(len(data)),
        "mediaKey": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    if spec.get("caption"):
        media["caption"] = spec["caption"]
    if kind == "document":
        media["fileName"] = spec.get("filename") or "document.pdf"
    if kind == "audio":
        media["ptt"] = bool(spec.get("voice", False))
    message: dict[str, Any] = {proto: media}
    if with_base64:
        message["base64"] = base64.b64encode(data).decode()
    return proto, message, data


def _customer_other(kind: str, spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if kind == "button_reply":
        return "buttonsResponseMessage", {
            "selectedButtonId": spec.get("reply_id"),
            "selectedDisplayText": spec.get("title"),
        }
    if kind == "list_reply":
        return "listResponseMessage", {
            "title": spec.get("title"),
            "singleSelectReply": {"selectedRowId": spec.get("reply_id")},
        }
    if kind == "location":
        return "locationMessage", {
            "degreesLatitude": spec.get("latitude"),
            "degreesLongitude": spec.get("longitude"),
            "name": spec.get("name"),
            "address": spec.get("address"),
        }
    if kind == "reaction":
        key = {"id": spec.get("message_id"), "fromMe": True}
        return "reactionMessage", {"key": key, "text": spec.get("emoji", "")}
    if kind == "contacts":
        contact = (spec.get("contacts") or [{}])[0]
        name = (contact.get("name") or {}).get("formatted_name", "")
        return "contactMessage", {
            "displayName": name,
            "vcard": f"BEGIN:VCARD\nFN:{name}\nEND:VCARD",
        }
    raise BadCustomerMessage(f"unknown customer message type {kind!r}")
