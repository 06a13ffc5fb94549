"""Parsing of Evolution API v2 webhook bodies into normalised events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pytake.whatsapp import (
    ConnectionUpdate,
    InboundMessage,
    MalformedWebhook,
    MessageEcho,
    QrCodeUpdate,
    StatusUpdate,
)
from pytake.whatsapp.events import ProviderEvent
from pytake.whatsapp.evolution import check_headers, parse_evolution_webhook

PHONE = "5511999999999"


def body(event: str, data: Any) -> dict[str, Any]:
    return {
        "event": event,
        "instance": "acme-1",
        "data": data,
        "destination": "https://app/wh/evo",
        "date_time": "2025-10-21T11:40:39.000Z",
        "sender": "5511888888888@s.whatsapp.net",
        "server_url": "http://evo:8080",
        "apikey": None,
    }


def upsert(message: dict[str, Any], **key: Any) -> dict[str, Any]:
    return {
        "key": {
            "remoteJid": f"{PHONE}@s.whatsapp.net",
            "fromMe": False,
            "id": "3A5F01",
            "participant": None,
            "addressingMode": "pn",
            "remoteJidAlt": None,
            **key,
        },
        "pushName": "Maria",
        "status": "DELIVERY_ACK",
        "message": message,
        "contextInfo": None,
        "messageType": next(iter(message), "unknown"),
        "messageTimestamp": 1717689097,
        "instanceId": "uuid",
        "source": "android",
    }


def one(event: str, data: Any) -> ProviderEvent:
    [parsed] = parse_evolution_webhook(body(event, data))
    return parsed


def inbound(message: dict[str, Any], **key: Any) -> InboundMessage:
    event = one("messages.upsert", upsert(message, **key))
    assert isinstance(event, InboundMessage)
    return event


def test_text_as_conversation() -> None:
    message = inbound({"conversation": "oi"})

    assert (message.channel, message.sender, message.profile_name) == ("acme-1", PHONE, "Maria")
    assert (message.provider_message_id, message.type, message.content) == (
        "3A5F01",
        "text",
        {"text": "oi"},
    )
    assert message.timestamp == datetime.fromtimestamp(1717689097, UTC)


def test_text_as_extended_text_with_a_quote() -> None:
    message = inbound(
        {"extendedTextMessage": {"text": "re: oi", "contextInfo": {"stanzaId": "3EB0QUOTED"}}}
    )

    assert message.content == {"text": "re: oi"}
    assert message.context_message_id == "3EB0QUOTED"


def test_reply_context_at_top_level() -> None:
    data = upsert({"conversation": "yes"})
    data["contextInfo"] = {"stanzaId": "3EB0ABC", "quotedMessage": {"conversation": "?"}}

    [message] = parse_evolution_webhook(body("messages.upsert", data))

    assert isinstance(message, InboundMessage) and message.context_message_id == "3EB0ABC"


@pytest.mark.parametrize(
    "key",
    [
        {
            "remoteJid": "20411223344556@lid",
            "addressingMode": "lid",
            "remoteJidAlt": f"{PHONE}@s.whatsapp.net",
        },
        {
            "remoteJid": "20411223344556@lid",
            "addressingMode": "lid",
            "senderPn": f"{PHONE}@s.whatsapp.net",
        },
    ],
)
def test_lid_sender_is_resolved_to_the_phone(key: dict[str, Any]) -> None:
    message = inbound({"conversation": "oi"}, **key)

    assert (message.sender, message.sender_user_id) == (PHONE, "20411223344556@lid")


def test_unresolvable_lid_keeps_the_lid_only() -> None:
    message = inbound({"conversation": "oi"}, remoteJid="20411223344556@lid", addressingMode="lid")

    assert (message.sender, message.sender_user_id) == (None, "20411223344556@lid")


def test_device_suffix_is_stripped() -> None:
    assert inbound({"conversation": "x"}, remoteJid=f"{PHONE}:12@s.whatsapp.net").sender == PHONE


def test_from_me_is_an_echo_and_send_message_is_an_api_echo() -> None:
    device = one("messages.upsert", upsert({"conversation": "from my phone"}, fromMe=True))
    api = one("send.message", upsert({"conversation": "via api"}, fromMe=True))

    assert isinstance(device, MessageEcho) and (device.source, device.recipient) == (
        "device",
        PHONE,
    )
    assert isinstance(api, MessageEcho) and (api.source, api.content) == (
        "api",
        {"text": "via api"},
    )


def test_groups_and_broadcasts_are_skipped() -> None:
    group = upsert(
        {"conversation": "hi all"}, remoteJid="1203630@g.us", participant=f"{PHONE}@s.whatsapp.net"
    )
    status = upsert({"conversation": "story"}, remoteJid="status@broadcast")

    assert parse_evolution_webhook(body("messages.upsert", group)) == []
    assert parse_evolution_webhook(body("messages.upsert", status)) == []


MEDIA = [
    (
        {"imageMessage": {"mimetype": "image/jpeg", "caption": "c", "fileSha256": "abc="}},
        "image",
        {"caption": "c", "mime_type": "image/jpeg", "sha256": "abc="},
    ),
    (
        {"audioMessage": {"mimetype": "audio/ogg; codecs=opus", "ptt": True}},
        "audio",
        {"voice": True},
    ),
    (
        {"documentMessage": {"mimetype": "application/pdf", "fileName": "a.pdf"}},
        "document",
        {"filename": "a.pdf"},
    ),
    (
        {
            "documentWithCaptionMessage": {
                "message": {
                    "documentMessage": {
                        "mimetype": "application/pdf",
                        "fileName": "b.pdf",
                        "caption": "see",
                    }
                }
            }
        },
        "document",
        {"filename": "b.pdf", "caption": "see"},
    ),
    ({"stickerMessage": {"mimetype": "image/webp"}}, "sticker", {"animated": False}),
    ({"videoMessage": {"mimetype": "video/mp4"}, "base64": "AAAA"}, "video", {"base64": "AAAA"}),
]


@pytest.mark.parametrize(("message", "kind", "expected"), MEDIA)
def test_media(message: dict[str, Any], kind: str, expected: dict[str, Any]) -> None:
    parsed = inbound(message)

    assert parsed.type == kind
    assert parsed.content.items() >= expected.items()
    assert parsed.content["media_id"] == "3A5F01"


OTHERS = [
    (
        {"locationMessage": {"degreesLatitude": 1.5, "degreesLongitude": 2.5, "name": "Shop"}},
        "location",
        {"latitude": 1.5, "longitude": 2.5, "name": "Shop", "address": None, "url": None},
    ),
    (
        {"reactionMessage": {"key": {"id": "3EB0X"}, "text": "👍"}},
        "reaction",
        {"message_id": "3EB0X", "emoji": "👍"},
    ),
    (
        {"listResponseMessage": {"title": "Row 1", "singleSelectReply": {"selectedRowId": "r1"}}},
        "interactive",
        {"kind": "list_reply", "reply_id": "r1", "title": "Row 1", "description": None},
    ),
    (
        {"buttonsResponseMessage": {"selectedButtonId": "yes", "selectedDisplayText": "Yes"}},
        "interactive",
        {"kind": "button_reply", "reply_id": "yes", "title": "Yes", "description": None},
    ),
    (
        {"templateButtonReplyMessage": {"selectedId": "STOP", "selectedDisplayText": "Stop"}},
        "button",
        {"payload": "STOP", "text": "Stop"},
    ),
    (
        {"contactMessage": {"displayName": "Ana", "vcard": "BEGIN:VCARD"}},
        "contacts",
        {"contacts": [{"name": {"formatted_name": "Ana"}, "vcard": "BEGIN:VCARD"}]},
    ),
    (
        {"pollCreationMessageV3": {"name": "?"}},
        "unsupported",
        {"unsupported_type": "pollCreationMessageV3"},
    ),
]


@pytest.mark.parametrize(("message", "kind", "content"), OTHERS)
def test_other_message_types(message: dict[str, Any], kind: str, content: dict[str, Any]) -> None:
    parsed = inbound(message)

    assert (parsed.type, parsed.content) == (kind, content)


def test_unsupported_carries_an_error() -> None:
    assert [e.code for e in inbound({"pollCreationMessageV3": {}}).errors] == [131051]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("SERVER_ACK", "sent"),
        ("DELIVERY_ACK", "delivered"),
        ("READ", "read"),
        ("PLAYED", "read"),
        ("ERROR", "failed"),
        (3, "delivered"),
    ],
)
def test_message_update_statuses(raw: Any, status: str) -> None:
    data = {
        "keyId": "3EB0OUT",
        "remoteJid": f"{PHONE}@s.whatsapp.net",
        "fromMe": True,
        "participant": None,
        "status": raw,
        "instanceId": "uuid",
        "messageId": "db-id",
    }

    update = one("messages.update", data)

    assert isinstance(update, StatusUpdate)
    assert (update.provider_message_id, update.status, update.recipient) == (
        "3EB0OUT",
        status,
        PHONE,
    )
    assert update.provider_status == str(raw)
    assert update.timestamp == datetime(2025, 10, 21, 11, 40, 39, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "from_me"), [("PENDING", True), ("DELETED", True), ("READ", False)]
)
def test_updates_without_delivery_progress_are_skipped(status: str, from_me: bool) -> None:
    data = {
        "keyId": "3EB0OUT",
        "remoteJid": f"{PHONE}@s.whatsapp.net",
        "fromMe": from_me,
        "status": status,
    }

    assert parse_evolution_webhook(body("messages.update", data)) == []


def test_connection_and_qrcode() -> None:
    closed = one("connection.update", {"instance": "acme-1", "state": "close", "statusReason": 401})
    qr = one(
        "qrcode.updated",
        {
            "qrcode": {
                "instance": "acme-1",
                "pairingCode": None,
                "code": "2@abc",
                "base64": "data:image/png;base64,xx",
            }
        },
    )
    limit = one(
        "qrcode.updated",
        {"message": "QR code limit reached, please login again", "statusCode": 500},
    )

    assert isinstance(closed, ConnectionUpdate) and (closed.state, closed.status_reason) == (
        "close",
        401,
    )
    assert isinstance(qr, QrCodeUpdate) and (qr.code, qr.base64) == (
        "2@abc",
        "data:image/png;base64,xx",
    )
    assert (
        isinstance(limit, QrCodeUpdate) and limit.code is None and "limit" in (limit.message or "")
    )


def test_event_names_in_config_and_kebab_spellings() -> None:
    assert isinstance(one("MESSAGES_UPSERT", upsert({"conversation": "a"})), InboundMessage)
    assert isinstance(one("connection-update", {"state": "open"}), ConnectionUpdate)


def test_unknown_events_are_ignored() -> None:
    assert parse_evolution_webhook(body("presence.update", {"id": "x"})) == []


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"instance": "x", "data": {}},
        {"event": "messages.upsert", "data": {}},
        body("messages.upsert", {"message": {"conversation": "no key"}}),
        body("messages.upsert", "text"),
        body("messages.update", {"remoteJid": "x"}),
        body("connection.update", {"instance": "x"}),
        body("messages.upsert", {**upsert({"conversation": "x"}), "messageTimestamp": "soon"}),
    ],
)
def test_malformed(raw: Any) -> None:
    with pytest.raises(MalformedWebhook):
        parse_evolution_webhook(raw)


def test_check_headers() -> None:
    expected = {"x-pytake-secret": "s3cret"}

    assert check_headers({"X-Pytake-Secret": "s3cret", "Other": "1"}, expected)
    assert not check_headers({"X-Pytake-Secret": "wrong"}, expected)
    assert not check_headers({}, expected)
