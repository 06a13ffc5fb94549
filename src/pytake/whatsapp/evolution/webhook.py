"""Evolution API v2 webhooks → normalised events.

Evolution does not sign its webhooks: authenticate them by the headers configured with
`/webhook/set` (see `check_headers`). Group chats and status broadcasts are skipped, because
PyTake's conversations are one customer to one business number.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pytake.whatsapp._json import obj as as_obj
from pytake.whatsapp._json import objects
from pytake.whatsapp.events import (
    ConnectionUpdate,
    DeliveryStatus,
    EventError,
    InboundMessage,
    MalformedWebhook,
    MessageEcho,
    ProviderEvent,
    QrCodeUpdate,
    StatusUpdate,
    unix_to_datetime,
)

__all__ = ["MalformedWebhook", "check_headers", "jid_number", "parse_evolution_webhook"]

# Evolution's renderStatus words and numbers → our statuses. PENDING (accepted) and DELETED
# carry no delivery progress. PLAYED (voice note heard) implies read.
_STATUS: dict[str, DeliveryStatus] = {
    "ERROR": "failed",
    "0": "failed",
    "SERVER_ACK": "sent",
    "2": "sent",
    "DELIVERY_ACK": "delivered",
    "3": "delivered",
    "READ": "read",
    "4": "read",
    "PLAYED": "read",
    "5": "read",
}
_MEDIA_KEYS = {
    "imageMessage": "image",
    "videoMessage": "video",
    "ptvMessage": "video",
    "audioMessage": "audio",
    "documentMessage": "document",
    "stickerMessage": "sticker",
}


def check_headers(received: Mapping[str, str], expected: Mapping[str, str]) -> bool:
    """Whether every header configured on the webhook came back with its value (constant time)."""
    lowered = {key.lower(): value for key, value in received.items()}
    for key, value in expected.items():
        got = lowered.get(key.lower())
        if got is None or not hmac.compare_digest(got.encode(), value.encode()):
            return False
    return True


def jid_number(value: str | None) -> str | None:
    """`5511999999999:12@s.whatsapp.net` → `5511999999999`."""
    if not value:
        return None
    return value.split("@")[0].split(":")[0] or None


def event_name(raw: str) -> str:
    """`MESSAGES_UPSERT`, `messages-upsert` and `messages.upsert` are the same event."""
    return raw.strip().lower().replace("_", ".").replace("-", ".")


def parse_evolution_webhook(body: Any) -> list[ProviderEvent]:
    """The events in one Evolution webhook body; unknown events give no events."""
    if not isinstance(body, dict):
        raise MalformedWebhook("body is not a JSON object")
    event, instance = body.get("event"), body.get("instance")
    if not isinstance(event, str) or not event:
        raise MalformedWebhook("event is missing")
    if not isinstance(instance, str) or not instance:
        raise MalformedWebhook("instance is missing")
    name = event_name(event)
    data = body.get("data")
    received_at = _envelope_time(body.get("date_time"))
    if name in ("messages.upsert", "send.message"):
        return _upserts(instance, data, name == "send.message")
    if name == "messages.update":
        return _updates(instance, data, received_at)
    if name == "connection.update":
        return [_connection(instance, _object(data, name))]
    if name == "qrcode.updated":
        return [_qrcode(instance, _object(data, name))]
    return []


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise MalformedWebhook(f"{what}: data is not an object")
    return data


def _list_of(data: Any, what: str) -> list[dict[str, Any]]:
    # Single object in v2; some builds batch as a list or as {"messages": [...]}.
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        data = data["messages"]
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(i, dict) for i in items):
        raise MalformedWebhook(f"{what}: data is not an object")
    return items


def _envelope_time(value: Any) -> datetime:
    # date_time is the server's local time with a "Z" suffix; right when the server runs in UTC.
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


def _upserts(instance: str, data: Any, from_api: bool) -> list[ProviderEvent]:
    events: list[ProviderEvent] = []
    for item in _list_of(data, "messages.upsert"):
        event = _upsert(instance, item, from_api)
        if event is not None:
            events.append(event)
    return events


def _upsert(instance: str, item: dict[str, Any], from_api: bool) -> ProviderEvent | None:
    key = item.get("key")
    if not isinstance(key, dict) or not key.get("id") or not key.get("remoteJid"):
        raise MalformedWebhook("message without key.id / key.remoteJid")
    remote = str(key["remoteJid"])
    if remote.endswith("@g.us") or remote.endswith("@broadcast") or remote.endswith("@newsletter"):
        return None
    message = as_obj(item.get("message"))
    kind, content, context_id = message_content(message, str(key["id"]), item)
    number, lid = _resolve_party(key, item)
    timestamp = _message_time(item)
    if from_api or key.get("fromMe"):
        return MessageEcho(
            channel=instance,
            recipient=number,
            provider_message_id=str(key["id"]),
            timestamp=timestamp,
            type=kind,
            content=content,
            source="api" if from_api else "device",
            context_message_id=context_id,
            raw=item,
        )
    return InboundMessage(
        channel=instance,
        sender=number,
        provider_message_id=str(key["id"]),
        timestamp=timestamp,
        type=kind,
        content=content,
        profile_name=item.get("pushName") or None,
        context_message_id=context_id,
        errors=_unsupported_errors(kind, item),
        sender_user_id=lid,
        raw=item,
    )


def _resolve_party(key: dict[str, Any], item: dict[str, Any]) -> tuple[str | None, str | None]:
    """(phone digits, LID) of the other party; LID-addressed chats carry the phone elsewhere."""
    remote = str(key["remoteJid"])
    if not remote.endswith("@lid"):
        return jid_number(remote), None
    for candidate in (key.get("remoteJidAlt"), key.get("senderPn"), item.get("senderPn")):
        if isinstance(candidate, str) and not candidate.endswith("@lid"):
            number = jid_number(candidate)
            if number:
                return number, remote
    return None, remote


def _message_time(item: dict[str, Any]) -> datetime:
    value = item.get("messageTimestamp")
    if value is None:
        return datetime.now(UTC)
    return unix_to_datetime(value, "messageTimestamp")


def _unsupported_errors(kind: str, item: dict[str, Any]) -> tuple[EventError, ...]:
    if kind != "unsupported":
        return ()
    detail = f"Evolution message type {item.get('messageType')!r} is not supported"
    return (EventError(code=131051, title="Unsupported message type", details=detail),)


def message_content(
    message: dict[str, Any], key_id: str, item: dict[str, Any]
) -> tuple[str, dict[str, Any], str | None]:
    """(type, normalised content, quoted message id) of a Baileys message object."""
    # documentWithCaptionMessage wraps a documentMessage one level deeper.
    wrapped = message.get("documentWithCaptionMessage")
    if isinstance(wrapped, dict) and isinstance(wrapped.get("message"), dict):
        message = {**message, **wrapped["message"]}
    kind, content, inner = _content(message, key_id)
    context = item.get("contextInfo") or (inner or {}).get("contextInfo") or {}
    context_id = context.get("stanzaId") if isinstance(context, dict) else None
    return kind, content, context_id or None


def _content(
    message: dict[str, Any], key_id: str
) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    if isinstance(message.get("conversation"), str):
        return "text", {"text": message["conversation"]}, None
    extended = message.get("extendedTextMessage")
    if isinstance(extended, dict):
        return "text", {"text": extended.get("text", "")}, extended
    for proto_key, kind in _MEDIA_KEYS.items():
        media = message.get(proto_key)
        if isinstance(media, dict):
            return kind, _media(kind, media, key_id, message), media
    for proto_key, parse in _OTHER.items():
        obj = message.get(proto_key)
        if isinstance(obj, dict):
            kind, content = parse(obj)
            return kind, content, obj
    return "unsupported", {"unsupported_type": next(iter(message), None)}, None


def _media(
    kind: str, media: dict[str, Any], key_id: str, message: dict[str, Any]
) -> dict[str, Any]:
    content: dict[str, Any] = {
        # Evolution fetches media by the message's key id (getBase64FromMediaMessage).
        "media_id": key_id,
        "mime_type": media.get("mimetype"),
        "sha256": media.get("fileSha256"),
        "caption": media.get("caption"),
        "filename": media.get("fileName"),
        "url": message.get("mediaUrl"),
    }
    if message.get("base64"):
        content["base64"] = message["base64"]
    if kind == "audio":
        content["voice"] = bool(media.get("ptt"))
    if kind == "sticker":
        content["animated"] = bool(media.get("isAnimated"))
    return content


def _location(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "location", {
        "latitude": obj.get("degreesLatitude"),
        "longitude": obj.get("degreesLongitude"),
        "name": obj.get("name"),
        "address": obj.get("address"),
        "url": obj.get("url"),
    }


def _contact(obj: dict[str, Any]) -> dict[str, Any]:
    return {"name": {"formatted_name": obj.get("displayName")}, "vcard": obj.get("vcard")}


def _contacts(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    items = objects(obj["contacts"]) if isinstance(obj.get("contacts"), list) else [obj]
    return "contacts", {"contacts": [_contact(c) for c in items]}


def _reaction(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    key = as_obj(obj.get("key"))
    return "reaction", {"message_id": key.get("id"), "emoji": obj.get("text") or ""}


def _list_reply(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    selected = obj.get("singleSelectReply") or {}
    return "interactive", {
        "kind": "list_reply",
        "reply_id": selected.get("selectedRowId"),
        "title": obj.get("title"),
        "description": obj.get("description"),
    }


def _button_reply(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "interactive", {
        "kind": "button_reply",
        "reply_id": obj.get("selectedButtonId"),
        "title": obj.get("selectedDisplayText"),
        "description": None,
    }


def _template_reply(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "button", {"payload": obj.get("selectedId"), "text": obj.get("selectedDisplayText")}


_OTHER = {
    "locationMessage": _location,
    "liveLocationMessage": _location,
    "contactMessage": _contacts,
    "contactsArrayMessage": _contacts,
    "reactionMessage": _reaction,
    "listResponseMessage": _list_reply,
    "buttonsResponseMessage": _button_reply,
    "templateButtonReplyMessage": _template_reply,
}


def _updates(instance: str, data: Any, received_at: datetime) -> list[ProviderEvent]:
    events: list[ProviderEvent] = []
    for item in _list_of(data, "messages.update"):
        key = as_obj(item.get("key"))
        message_id = item.get("keyId") or key.get("id")
        from_me = item.get("fromMe", key.get("fromMe"))
        update = as_obj(item.get("update"))
        raw_status = item.get("status", update.get("status"))
        if not message_id or raw_status is None:
            raise MalformedWebhook("messages.update without keyId or status")
        status = _STATUS.get(str(raw_status).upper())
        # Updates of the customer's own messages are not delivery progress of ours.
        if status is None or from_me is False:
            continue
        events.append(
            StatusUpdate(
                channel=instance,
                provider_message_id=str(message_id),
                status=status,
                timestamp=received_at,
                recipient=jid_number(item.get("remoteJid") or key.get("remoteJid")),
                provider_status=str(raw_status),
                raw=item,
            )
        )
    return events


def _connection(instance: str, data: dict[str, Any]) -> ConnectionUpdate:
    state = data.get("state")
    if not isinstance(state, str):
        raise MalformedWebhook("connection.update without state")
    reason = data.get("statusReason")
    return ConnectionUpdate(
        channel=instance,
        state=state,
        status_reason=reason if isinstance(reason, int) else None,
        wuid=jid_number(data.get("wuid")),
        profile_name=data.get("profileName"),
        raw=data,
    )


def _qrcode(instance: str, data: dict[str, Any]) -> QrCodeUpdate:
    qr = data.get("qrcode")
    if isinstance(qr, dict):
        return QrCodeUpdate(
            channel=instance,
            code=qr.get("code"),
            base64=qr.get("base64"),
            pairing_code=qr.get("pairingCode"),
            raw=data,
        )
    return QrCodeUpdate(
        channel=instance, code=None, base64=None, message=data.get("message"), raw=data
    )
