"""Webhooks the fake Graph API posts: signed, in order, parseable by our own parser, and
misbehaving on request (duplicates, reordering, drops, async failures, retries)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from pytake.whatsapp import InboundMessage, OutboundMessage, StatusUpdate
from pytake.whatsapp.cloud import SIGNATURE_HEADER, CloudProvider, parse_webhook, verify_signature
from pytake.whatsapp.simulator import Simulator

from .conftest import APP_SECRET, CUSTOMER, PNID, WABA, Receiver


def _statuses(receiver: Receiver) -> list[StatusUpdate]:
    events = [event for request in receiver.requests for event in parse_webhook(request.json)]
    return [event for event in events if isinstance(event, StatusUpdate)]


TEXT = OutboundMessage(to=CUSTOMER, type="text", content={"body": "hi"}, callback_data="row-1")


@pytest.mark.usefixtures("open_window")
async def test_statuses_arrive_signed_and_in_order(
    sim: Simulator, cloud: CloudProvider, receiver: Receiver
) -> None:
    result = await cloud.send(TEXT)
    await sim.idle()

    for request in receiver.requests:
        assert request.path == "/meta"
        assert verify_signature(APP_SECRET, request.raw, request.headers.get(SIGNATURE_HEADER))
    statuses = _statuses(receiver)
    assert [s.status for s in statuses] == ["sent", "delivered", "read"]
    assert {s.provider_message_id for s in statuses} == {result.provider_message_id}
    assert {(s.channel, s.recipient, s.callback_data) for s in statuses} == {
        (PNID, CUSTOMER, "row-1")
    }
    assert statuses[0].pricing == {
        "billable": False,
        "pricing_model": "PMP",
        "type": "free_customer_service",
        "category": "service",
    }


async def test_customer_message_arrives_signed_and_parses(
    sim: Simulator, number: object, receiver: Receiver
) -> None:
    record = await sim.customer_sends(PNID, CUSTOMER, type="text", text="oi", profile_name="Ana")

    [request] = receiver.requests
    assert verify_signature(APP_SECRET, request.raw, request.headers[SIGNATURE_HEADER])
    [event] = parse_webhook(request.json)
    assert isinstance(event, InboundMessage)
    assert (event.channel, event.sender, event.profile_name) == (PNID, CUSTOMER, "Ana")
    assert (event.provider_message_id, event.content) == (record.id, {"text": "oi"})
    assert record.webhook_status == 200


@pytest.mark.parametrize(
    ("spec", "kind", "content"),
    [
        (
            {"type": "button_reply", "reply_id": "yes", "title": "Yes"},
            "interactive",
            {"kind": "button_reply", "reply_id": "yes", "title": "Yes", "description": None},
        ),
        (
            {"type": "list_reply", "reply_id": "r1", "title": "Row"},
            "interactive",
            {"kind": "list_reply", "reply_id": "r1", "title": "Row", "description": None},
        ),
        (
            {"type": "button", "payload": "STOP", "text": "Stop"},
            "button",
            {"payload": "STOP", "text": "Stop"},
        ),
        (
            {"type": "location", "latitude": 1.5, "longitude": 2.5},
            "location",
            {"latitude": 1.5, "longitude": 2.5, "name": None, "address": None, "url": None},
        ),
        (
            {"type": "order", "catalog_id": "c1", "text": "", "product_items": [{"quantity": 1}]},
            "order",
            {"catalog_id": "c1", "text": "", "product_items": [{"quantity": 1}]},
        ),
        (
            {"type": "reaction", "message_id": "wamid.X", "emoji": "❤"},
            "reaction",
            {"message_id": "wamid.X", "emoji": "❤"},
        ),
    ],
)
async def test_customer_message_types_round_trip(
    sim: Simulator, number: object, receiver: Receiver, spec: dict, kind: str, content: dict
) -> None:
    await sim.customer_sends(PNID, CUSTOMER, **spec)

    [event] = parse_webhook(receiver.requests[0].json)
    assert isinstance(event, InboundMessage)
    assert (event.type, event.content) == (kind, content)


async def test_customer_media_can_be_downloaded(
    sim: Simulator, cloud: CloudProvider, receiver: Receiver
) -> None:
    await sim.customer_sends(
        PNID,
        CUSTOMER,
        type="document",
        caption="invoice",
        filename="inv.pdf",
        mime_type="application/pdf",
    )

    [event] = parse_webhook(receiver.requests[0].json)
    assert isinstance(event, InboundMessage)
    media = await cloud.download_media(event.content["media_id"])
    assert (media.data, media.mime_type) == (b"simulated document", "application/pdf")
    assert event.content["filename"] == "inv.pdf"


@pytest.mark.usefixtures("open_window")
async def test_duplicate_and_reordered_statuses(
    sim: Simulator, cloud: CloudProvider, receiver: Receiver
) -> None:
    sim.set_faults(duplicate_webhooks=True, reorder_statuses=True)

    await cloud.send(TEXT)
    await sim.idle()

    assert [s.status for s in _statuses(receiver)] == [
        "read",
        "read",
        "delivered",
        "delivered",
        "sent",
        "sent",
    ]


@pytest.mark.usefixtures("open_window")
async def test_coalesced_statuses_share_webhooks_each_message_in_order(
    sim: Simulator, cloud: CloudProvider, receiver: Receiver
) -> None:
    sim.state.settings = dataclasses.replace(sim.state.settings, status_coalesce_seconds=0.2)
    before = len(receiver.requests)

    sent = await asyncio.gather(
        *(cloud.send(dataclasses.replace(TEXT, callback_data=f"row-{n}")) for n in range(4))
    )
    await sim.idle()

    requests = receiver.requests[before:]
    for request in requests:
        assert verify_signature(APP_SECRET, request.raw, request.headers.get(SIGNATURE_HEADER))
    # Three rounds (sent, delivered, read), each in one webhook for the four messages.
    assert len(requests) == 3
    assert [len(r.json["entry"][0]["changes"][0]["value"]["statuses"]) for r in requests] == [
        4,
        4,
        4,
    ]
    statuses = [e for r in requests for e in parse_webhook(r.json) if isinstance(e, StatusUpdate)]
    for result in sent:
        mine = [s for s in statuses if s.provider_message_id == result.provider_message_id]
        assert [s.status for s in mine] == ["sent", "delivered", "read"]
    assert sorted({s.callback_data for s in statuses}) == [f"row-{n}" for n in range(4)]


@pytest.mark.usefixtures("open_window")
async def test_dropped_statuses(sim: Simulator, cloud: CloudProvider, receiver: Receiver) -> None:
    sim.set_faults(drop_statuses=["delivered"])

    await cloud.send(TEXT)
    await sim.idle()

    assert [s.status for s in _statuses(receiver)] == ["sent", "read"]


async def test_window_failure_reported_asynchronously(
    sim: Simulator, cloud: CloudProvider, receiver: Receiver
) -> None:
    sim.set_faults(window_mode="async")

    result = await cloud.send(
        OutboundMessage(to="5511977776666", type="text", content={"body": "late"})
    )
    await sim.idle()

    [failed] = _statuses(receiver)
    assert (failed.provider_message_id, failed.status) == (result.provider_message_id, "failed")
    assert [e.code for e in failed.errors] == [131047]


@pytest.mark.usefixtures("open_window")
async def test_async_error_fault_and_unknown_recipient(
    sim: Simulator, cloud: CloudProvider, receiver: Receiver
) -> None:
    sim.set_faults(async_error={"code": 131049, "count": 1})
    sim.register_template(WABA, "hello", "en_US", body="Hello")

    await cloud.send(TEXT)
    await cloud.send(
        OutboundMessage(
            to="123", type="template", content={"name": "hello", "language": {"code": "en_US"}}
        )
    )
    await sim.idle()

    codes = sorted(e.code for s in _statuses(receiver) for e in s.errors if e.code is not None)
    assert codes == [131026, 131049]


@pytest.mark.usefixtures("open_window")
async def test_webhooks_are_retried_until_accepted(
    sim: Simulator, cloud: CloudProvider, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]

    await cloud.send(TEXT)
    await sim.idle()

    assert [s.status for s in _statuses(receiver)] == ["sent", "sent", "sent", "delivered", "read"]
    assert [entry["attempts"] for entry in sim.state.webhook_log[1:]] == [3, 1, 1]


async def test_subscription_challenge(sim: Simulator, number: object, receiver: Receiver) -> None:
    result = await sim.verify_webhook(PNID)

    assert result["verified"] is True
    assert receiver.requests[0].headers.get(SIGNATURE_HEADER) is None
