"""Meta webhook signatures, the subscription challenge, and parsing of every Meta fixture."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pytake.whatsapp import (
    InboundMessage,
    MalformedWebhook,
    MessageEcho,
    StatusUpdate,
    TemplateStatusUpdate,
)
from pytake.whatsapp.cloud import parse_webhook, sign, verify_challenge, verify_signature
from pytake.whatsapp.events import ProviderEvent
from tests.conftest import meta_fixture_files

from .conftest import load_fixture

PNID = "1122334455667"
SENDER = "972987654321"


# -- signatures -------------------------------------------------------------------------------


def test_signature_round_trip() -> None:
    raw = json.dumps(load_fixture("message.json", "text")).encode()
    header = sign("s3cret", raw)

    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature("s3cret", raw, header)


@pytest.mark.parametrize(
    "header",
    [None, "", "sha256=", "sha256=" + "0" * 64, "md5=abc", "garbage"],
)
def test_signature_rejects_missing_or_wrong(header: str | None) -> None:
    assert not verify_signature("s3cret", b'{"a":1}', header)


def test_signature_rejects_other_secret_and_altered_body() -> None:
    header = sign("s3cret", b'{"a":1}')

    assert not verify_signature("other", b'{"a":1}', header)
    assert not verify_signature("s3cret", b'{"a": 1}', header)
    assert not verify_signature("", b'{"a":1}', header)


def test_challenge() -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "12345"}

    assert verify_challenge(params, "tok") == "12345"
    assert verify_challenge(params, "other") is None
    assert verify_challenge({**params, "hub.mode": "unsubscribe"}, "tok") is None
    assert verify_challenge(params, "") is None


# -- every fixture parses -------------------------------------------------------------------


def _all_cases() -> list[tuple[str, str]]:
    return [
        (path.name, case)
        for path in meta_fixture_files()
        for case in json.loads(path.read_text(encoding="utf-8"))
    ]


@pytest.mark.parametrize(("file", "case"), _all_cases(), ids=lambda v: str(v))
def test_every_fixture_parses_to_one_event_on_its_channel(file: str, case: str) -> None:
    events = parse_webhook(load_fixture(file, case))

    assert len(events) == 1
    expected_channel = "0" if file == "template_status.json" else PNID
    assert events[0].channel == expected_channel


def _one(file: str, case: str) -> ProviderEvent:
    [event] = parse_webhook(load_fixture(file, case))
    return event


def _message(case: str, file: str = "message.json") -> InboundMessage:
    event = _one(file, case)
    assert isinstance(event, InboundMessage)
    return event


def test_text_message() -> None:
    message = _message("text")

    assert message.sender == SENDER
    assert message.profile_name == "Test Name"
    assert message.provider_message_id == "wamid.xyzxyz"
    assert message.timestamp == datetime.fromtimestamp(1697043223, UTC)
    assert (message.type, message.content) == ("text", {"text": "Body Text"})
    assert message.raw["text"] == {"body": "Body Text"}


MEDIA_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("image", "image", {"media_id": "65463453", "mime_type": "image/jpeg", "sha256": "4654+8g="}),
    ("video", "video", {"media_id": "765756756", "mime_type": "video/mp4", "caption": "caption"}),
    ("document", "document", {"filename": "filename.pdf", "mime_type": "application/pdf"}),
    ("audio", "audio", {"voice": False, "mime_type": "audio/ogg; codecs=opus"}),
    ("voice", "audio", {"voice": True}),
    ("static_sticker", "sticker", {"animated": False, "mime_type": "image/webp"}),
    ("animated_sticker", "sticker", {"animated": True}),
]


@pytest.mark.parametrize(("case", "kind", "expected"), MEDIA_CASES)
def test_media_messages(case: str, kind: str, expected: dict[str, Any]) -> None:
    message = _message(case)

    assert message.type == kind
    assert message.content.items() >= expected.items()
    assert message.content["media_id"]


def test_forwarded_flags() -> None:
    assert _message("video").forwarded
    assert _message("forwarded").forwarded
    assert _message("forwarded_many_times").forwarded
    assert not _message("text").forwarded


def test_reactions() -> None:
    assert _message("reaction").content == {"message_id": "wamid.yzxyzx=", "emoji": "\U0001f62e"}
    assert _message("unreaction_empty").content["emoji"] == ""
    assert _message("unreaction_no_emoji").content["emoji"] == ""


def test_locations() -> None:
    current = _message("current_location").content
    chosen = _message("chosen_location").content

    assert (current["latitude"], current["longitude"], current["name"]) == (
        12.25089,
        43.90539,
        None,
    )
    assert chosen["name"] == "Facebook HQ" and chosen["address"].startswith("1 Hacker Way")


def test_contacts_order_and_referral() -> None:
    contacts = _message("contacts").content["contacts"]
    order = _message("order").content
    referral = _message("referral")

    assert [c["name"]["formatted_name"] for c in contacts] == [
        "Chandler Bing",
        "Monica",
        "Rachel Green",
    ]
    assert order["catalog_id"] == "354160437058781" and len(order["product_items"]) == 3
    assert referral.referral is not None and referral.referral["ctwa_clid"] == "CTWA_CLID"
    assert referral.content == {"text": "BODY"}


def test_unsupported_and_value_level_errors() -> None:
    unsupported = _message("unsupported")
    broken = _message("interactive_message_with_err")

    assert unsupported.type == "unsupported"
    assert [e.code for e in unsupported.errors] == [131051]
    assert [e.code for e in broken.errors] == [131000]
    assert broken.errors[0].details == "Unsupported webhook payload"
    assert broken.content["kind"] is None


def test_reply_context() -> None:
    assert _message("reply").context_message_id == "wamid.xyzxyz=="


def test_button_and_list_replies() -> None:
    button = _message("button", "callback_button.json")
    quick = _message("quick_reply", "callback_button.json")
    listed = _message("description", "callback_selection.json")

    assert button.content == {
        "kind": "button_reply",
        "reply_id": "callback_data",
        "title": "title",
        "description": None,
    }
    assert (quick.type, quick.content) == ("button", {"payload": "callback_data", "text": "title"})
    assert quick.context_message_id == "wamid.xyzxyz=="
    assert listed.content["kind"] == "list_reply"
    assert listed.content["description"] == "description"
    assert _message("callback", "callback_selection.json").content["reply_id"] == "callback_data"


def test_system_messages() -> None:
    changed = _message("phone_number_change", "system.json")
    user_id = _message("user_id_change", "system.json")
    identity = _message("identity_change", "system.json")

    assert changed.content["system_type"] == "user_changed_number"
    assert changed.content["wa_id"] == "972912345678"
    assert user_id.sender is None and user_id.content["user_id"] == "MX.0987654321"
    assert identity.content["identity"]["acknowledged"] is True


@pytest.mark.parametrize("case", ["sent", "delivered", "read"])
def test_statuses(case: str) -> None:
    status = _one("message_status.json", case)

    assert isinstance(status, StatusUpdate)
    assert (status.status, status.provider_message_id, status.recipient) == (
        case,
        "wamid.xyzxyz",
        SENDER,
    )
    assert status.pricing is not None and status.pricing["category"] == "service"
    assert status.conversation is not None


def test_failed_status_and_tracker() -> None:
    failed = _one("message_status.json", "failed")
    tracked = _one("message_status.json", "with_tracker")

    assert isinstance(failed, StatusUpdate) and isinstance(tracked, StatusUpdate)
    assert failed.status == "failed"
    assert [(e.code, e.title) for e in failed.errors] == [
        (130472, "User's number is part of an experiment")
    ]
    assert "experiment" in failed.errors[0].plain_explanation
    assert tracked.callback_data == "some data"


def test_played_counts_as_read() -> None:
    body = load_fixture("message_status.json", "read")
    body["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = "played"

    [status] = parse_webhook(body)

    assert isinstance(status, StatusUpdate)
    assert (status.status, status.provider_status) == ("read", "played")


def test_template_status() -> None:
    event = _one("template_status.json", "approved")

    assert isinstance(event, TemplateStatusUpdate)
    assert (event.event, event.template_name, event.language) == (
        "APPROVED",
        "my_message_template",
        "pt-BR",
    )
    assert event.template_id == "12345678"


def test_business_echo() -> None:
    echo = _one("outgoing_message.json", "text")

    assert isinstance(echo, MessageEcho)
    assert echo.content == {"text": "Test message"}
    assert echo.recipient == "<WHATSAPP_USER_PHONE_NUMBER>"


# -- structure ------------------------------------------------------------------------------


def test_iterates_every_entry_change_and_item() -> None:
    first = load_fixture("message.json", "text")
    second = load_fixture("message_status.json", "delivered")
    value = first["entry"][0]["changes"][0]["value"]
    value["messages"].append({**value["messages"][0], "id": "wamid.second"})
    value["statuses"] = second["entry"][0]["changes"][0]["value"]["statuses"]
    first["entry"].append(second["entry"][0])

    events = parse_webhook(first)

    assert [type(e).__name__ for e in events] == [
        "InboundMessage",
        "InboundMessage",
        "StatusUpdate",
        "StatusUpdate",
    ]


def test_unknown_fields_and_changes_are_tolerated() -> None:
    body = load_fixture("message.json", "text")
    body["entry"][0]["changes"][0]["value"]["messages"][0]["brand_new"] = {"x": 1}
    body["entry"][0]["changes"].append({"field": "account_update", "value": {"event": "X"}})

    assert len(parse_webhook(body)) == 1


def _broken(mutate: Any) -> dict[str, Any]:
    body = load_fixture("message.json", "text")
    mutate(body)
    return body


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account", "entry": {}},
        {"entry": ["x"]},
        {"entry": [{"changes": "x"}]},
        {"entry": [{"changes": [{"field": "messages"}]}]},
        _broken(lambda b: b["entry"][0]["changes"][0]["value"]["messages"][0].pop("id")),
        _broken(lambda b: b["entry"][0]["changes"][0]["value"]["messages"][0].pop("from")),
        _broken(lambda b: b["entry"][0]["changes"][0]["value"].pop("metadata")),
        _broken(lambda b: b["entry"][0]["changes"][0]["value"].update(messages={})),
        _broken(
            lambda b: b["entry"][0]["changes"][0]["value"]["messages"][0].update(timestamp="x")
        ),
    ],
)
def test_malformed_bodies(body: Any) -> None:
    with pytest.raises(MalformedWebhook):
        parse_webhook(body)
