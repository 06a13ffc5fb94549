"""Meta inbound webhooks over real HTTP: challenge, signatures, every fixture case stored,
duplicates, status ordering, malformed and oversized bodies, opt-out, Brazilian numbers."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pytake.message.statuses import apply_pending_statuses
from pytake.models import ChannelEvent, Contact, Conversation, Message
from pytake.whatsapp.simulator import Simulator
from tests.channel.support import (
    MetaNumber,
    count_rows,
    create_official,
    messages_of,
    post_meta,
)
from tests.conftest import Org, fixture_path, meta_fixture_files

CUSTOMER = "5511987654321"


@pytest.fixture
async def number(api: httpx.AsyncClient, wa_org: Org, sim: Simulator, wa_url: str) -> MetaNumber:
    return await create_official(api, wa_org, sim, wa_url)


def fixture_cases() -> list[tuple[str, str]]:
    cases = []
    for path in meta_fixture_files():
        cases += [(path.name, case) for case in json.loads(path.read_text())]
    return cases


def adapt(body: dict[str, Any], number: MetaNumber, tag: str) -> dict[str, Any]:
    """Point a fixture at our number, give its messages unique ids and a real customer."""
    text = json.dumps(body)
    text = text.replace("1122334455667", number.pnid).replace("<WHATSAPP_MESSAGE_ID>", "wamid.x")
    text = text.replace("<WHATSAPP_USER_PHONE_NUMBER>", CUSTOMER)
    adapted: dict[str, Any] = json.loads(text)
    for entry in adapted["entry"]:
        entry["id"] = number.waba
        for change in entry["changes"]:
            value = change["value"]
            for key in ("messages", "statuses", "message_echoes"):
                for item in value.get(key, []):
                    item["id"] = f"{item['id']}-{tag}"
    return adapted


async def session_rows(app: FastAPI, model: Any, **where: Any) -> list[Any]:
    async with app.state.session_factory() as session:
        stmt = select(model)
        for name, value in where.items():
            stmt = stmt.where(getattr(model, name) == value)
        return list(await session.scalars(stmt))


async def test_get_challenge(api: httpx.AsyncClient, number: MetaNumber, sim: Simulator) -> None:
    result = await sim.verify_webhook(number.pnid)  # Meta's own handshake, over HTTP
    assert result["verified"] is True
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": number.verify_token,
        "hub.challenge": "1158201444",
    }
    resp = await api.get("/api/v1/whatsapp/webhook", params=params)
    assert resp.status_code == 200 and resp.text == "1158201444"
    assert resp.headers["content-type"].startswith("text/plain")
    wrong = await api.get("/api/v1/whatsapp/webhook", params={**params, "hub.verify_token": "no"})
    assert wrong.status_code == 403
    missing = await api.get("/api/v1/whatsapp/webhook", params={"hub.challenge": "1"})
    assert missing.status_code == 403


async def test_signed_message_is_stored(
    number: MetaNumber, sim: Simulator, wa_app: FastAPI, api: httpx.AsyncClient, wa_org: Org
) -> None:
    sent = await sim.customer_sends(
        number.pnid, CUSTOMER, type="text", text="Olá!", profile_name="Maria"
    )
    assert sent.webhook_status == 200
    [message] = await messages_of(wa_app, number.id)
    assert message.direction == "inbound" and message.type == "text"
    assert message.content["text"] == "Olá!" and message.status == "received"
    assert message.provider_message_id == sent.id
    [contact] = await session_rows(wa_app, Contact, id=message.contact_id)
    assert contact.whatsapp_id == "+" + CUSTOMER and contact.profile_name == "Maria"
    [conversation] = await session_rows(wa_app, Conversation, id=message.conversation_id)
    assert conversation.status == "open" and conversation.message_count == 1
    assert conversation.unread_count == 1
    assert conversation.window_expires_at == message.provider_timestamp + timedelta(hours=24)
    assert conversation.last_inbound_at == message.provider_timestamp
    # A second message reuses the open conversation and moves the window.
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text="?")
    second = (await messages_of(wa_app, number.id))[-1]
    assert second.conversation_id == conversation.id
    [conversation] = await session_rows(wa_app, Conversation, id=conversation.id)
    assert conversation.message_count == 2
    assert await count_rows(wa_app, "contacts", wa_org.id) == 1


async def test_resolved_conversation_reopens_and_closed_one_is_not_reused(
    number: MetaNumber, sim: Simulator, wa_app: FastAPI
) -> None:
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text="one")
    [first] = await messages_of(wa_app, number.id)
    async with wa_app.state.session_factory() as session, session.begin():
        conversation = await session.get(Conversation, first.conversation_id)
        assert conversation is not None
        conversation.status = "resolved"
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text="two")
    second = (await messages_of(wa_app, number.id))[-1]
    assert second.conversation_id == first.conversation_id
    [reopened] = await session_rows(wa_app, Conversation, id=first.conversation_id)
    assert reopened.status == "open" and reopened.resolved_at is None

    async with wa_app.state.session_factory() as session, session.begin():
        conversation = await session.get(Conversation, first.conversation_id)
        assert conversation is not None
        conversation.status = "closed"
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text="three")
    third = (await messages_of(wa_app, number.id))[-1]
    assert third.conversation_id != first.conversation_id
    assert third.contact_id == first.contact_id


async def test_wrong_or_missing_signature_stores_nothing(
    number: MetaNumber, api: httpx.AsyncClient, wa_app: FastAPI, wa_org: Org
) -> None:
    body = adapt(
        json.loads(fixture_path("meta-webhooks", "message.json").read_text())["text"], number, "sig"
    )
    assert (await post_meta(api, body, "not-the-secret")).status_code == 401
    assert (await post_meta(api, body, None)).status_code == 401
    assert (await post_meta(api, body, None, signature="sha256=00")).status_code == 401
    assert await count_rows(wa_app, "messages", wa_org.id) == 0
    assert await count_rows(wa_app, "contacts", wa_org.id) == 0
    ok = await post_meta(api, body, number.app_secret)
    assert ok.status_code == 200 and ok.json()["messages"] == 1


@pytest.mark.parametrize(("file", "case"), fixture_cases())
async def test_every_fixture_is_accepted_and_stored(
    file: str,
    case: str,
    number: MetaNumber,
    api: httpx.AsyncClient,
    wa_app: FastAPI,
    wa_org: Org,
) -> None:
    original = json.loads(fixture_path("meta-webhooks", file).read_text())[case]
    body = adapt(original, number, uuid.uuid4().hex[:8])
    resp = await post_meta(api, body, number.app_secret)
    assert resp.status_code == 200, resp.text
    ack = resp.json()
    value = body["entry"][0]["changes"][0]["value"]
    stored = await messages_of(wa_app, number.id)
    if file == "message_status.json":
        assert ack["pending_statuses"] == 1 and stored == []
        pending = await count_rows(wa_app, "pending", wa_org.id)
        assert pending == 1
    elif file == "template_status.json":
        events = await session_rows(wa_app, ChannelEvent, channel_id=uuid.UUID(number.id))
        assert [e.kind for e in events] == ["template_status"]
        assert events[0].payload["event"] == "APPROVED"
        assert events[0].payload["template_name"] == "my_message_template"
    elif file == "outgoing_message.json":
        [echo] = stored
        assert echo.direction == "outbound" and echo.status == "sent"
        assert echo.content == {"text": "Test message"}
    elif case == "user_id_change":
        events = await session_rows(wa_app, ChannelEvent, channel_id=uuid.UUID(number.id))
        assert [e.kind for e in events] == ["unresolved_sender"]
        assert events[0].payload["system"]["user_id"] == "MX.0987654321"
    else:
        [item] = value["messages"]
        [message] = stored
        assert message.direction == "inbound" and message.type == item["type"]
        assert message.provider_message_id == item["id"]
        _assert_content(message, item)
        if value.get("errors"):  # value-level errors concern the messages beside them
            assert message.error_code == value["errors"][0]["code"]


def _assert_content(message: Message, item: dict[str, Any]) -> None:
    kind, content = item["type"], message.content
    obj = item.get(kind)
    if kind == "text":
        assert content["text"] == obj["body"]
    elif kind in ("image", "video", "audio", "document", "sticker"):
        assert content["media_id"] == obj["id"] and content["mime_type"] == obj["mime_type"]
    elif kind == "location":
        assert content["latitude"] == obj["latitude"]
    elif kind == "contacts":
        assert content["contacts"] == obj
    elif kind == "reaction":
        assert content["message_id"] == obj["message_id"]
    elif kind == "interactive" and obj:
        reply = obj[obj["type"]]
        assert content["reply_id"] == reply["id"] and content["title"] == reply["title"]
    elif kind == "button":
        assert content["payload"] == obj["payload"]
    elif kind == "order":
        assert content["product_items"] == obj["product_items"]
    elif kind == "system":
        assert content["body"] == obj["body"]
    elif kind == "unsupported":
        assert message.error_code == 131051
    if item.get("context", {}).get("id"):
        assert message.context_provider_message_id == item["context"]["id"]
    if item.get("context", {}).get("forwarded") or item.get("context", {}).get(
        "frequently_forwarded"
    ):
        assert content["forwarded"] is True
    if item.get("referral"):
        assert content["referral"] == item["referral"]
    if item.get("errors"):
        assert message.error_code == item["errors"][0]["code"]


async def test_duplicates_change_nothing_twice(
    number: MetaNumber, api: httpx.AsyncClient, wa_app: FastAPI, sim: Simulator
) -> None:
    body = adapt(
        json.loads(fixture_path("meta-webhooks", "message.json").read_text())["text"], number, "dup"
    )
    first = await post_meta(api, body, number.app_secret)
    again = await post_meta(api, body, number.app_secret)
    assert first.json()["messages"] == 1
    assert again.status_code == 200 and again.json() == {
        **first.json(),
        "messages": 0,
        "duplicates": 1,
    }
    # The simulator's duplicate-delivery fault too.
    sim.set_faults(duplicate_webhooks=True)
    try:
        await sim.customer_sends(number.pnid, CUSTOMER, type="text", text="twice?")
        await sim.idle()
    finally:
        sim.clear_faults()
    stored = await messages_of(wa_app, number.id)
    assert len(stored) == 2
    [conversation] = await session_rows(wa_app, Conversation, id=stored[-1].conversation_id)
    assert conversation.message_count == 1 and conversation.unread_count == 1


def status_body(number: MetaNumber, wamid: str, status: str, ts: int, **extra: Any) -> dict:
    item = {"id": wamid, "status": status, "timestamp": str(ts), "recipient_id": CUSTOMER, **extra}
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": number.waba,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": number.pnid,
                            },
                            "statuses": [item],
                        },
                    }
                ],
            }
        ],
    }


async def _outbound(app: FastAPI, number: MetaNumber, wamid: str, inbound: Message) -> None:
    """Store an outbound message as the send path will, then apply waiting statuses."""
    async with app.state.session_factory() as session, session.begin():
        session.add(
            Message(
                organization_id=inbound.organization_id,
                conversation_id=inbound.conversation_id,
                contact_id=inbound.contact_id,
                channel_id=uuid.UUID(number.id),
                direction="outbound",
                type="text",
                content={"text": "hi"},
                status="sent",
                provider_message_id=wamid,
            )
        )
        await session.flush()
        await apply_pending_statuses(session, uuid.UUID(number.id), [wamid])


async def test_statuses_only_move_forward(
    number: MetaNumber, api: httpx.AsyncClient, wa_app: FastAPI, sim: Simulator
) -> None:
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text="hi")
    [inbound] = await messages_of(wa_app, number.id)
    wamid = "wamid.out-" + uuid.uuid4().hex
    await _outbound(wa_app, number, wamid, inbound)
    for status, ts in (
        ("read", 1700000300),
        ("delivered", 1700000200),
        ("sent", 1700000100),
        ("read", 1700000300),
    ):
        resp = await post_meta(api, status_body(number, wamid, status, ts), number.app_secret)
        assert resp.status_code == 200 and resp.json()["statuses"] == 1
    [out] = [m for m in await messages_of(wa_app, number.id) if m.direction == "outbound"]
    assert out.status == "read"
    assert out.read_at is not None and out.read_at.timestamp() == 1700000300
    assert out.delivered_at is not None and out.delivered_at.timestamp() == 1700000200
    failed = status_body(
        number,
        wamid,
        "failed",
        1700000400,
        errors=[{"code": 131026, "title": "Message undeliverable", "error_data": {"details": "x"}}],
    )
    assert (await post_meta(api, failed, number.app_secret)).status_code == 200
    late = status_body(number, wamid, "read", 1700000500)
    assert (await post_meta(api, late, number.app_secret)).status_code == 200
    [out] = [m for m in await messages_of(wa_app, number.id) if m.direction == "outbound"]
    assert out.status == "failed" and out.error_code == 131026
    assert out.error_title == "Message undeliverable"


async def test_status_before_its_message_is_kept_then_applied(
    number: MetaNumber, api: httpx.AsyncClient, wa_app: FastAPI, sim: Simulator, wa_org: Org
) -> None:
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text="hi")
    [inbound] = await messages_of(wa_app, number.id)
    wamid = "wamid.early-" + uuid.uuid4().hex
    for status in ("delivered", "delivered"):
        resp = await post_meta(
            api, status_body(number, wamid, status, 1700000200), number.app_secret
        )
        assert resp.status_code == 200 and resp.json()["pending_statuses"] == 1
    assert await count_rows(wa_app, "pending", wa_org.id) == 1
    await _outbound(wa_app, number, wamid, inbound)
    [out] = [m for m in await messages_of(wa_app, number.id) if m.direction == "outbound"]
    assert out.status == "delivered" and out.delivered_at is not None


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b'{"object": "whatsapp_business_account", "entry": [{"id": "1", "chan', 400),
        (b"\x00\xff" * (1024 * 1024), 400),  # 2 MB of junk
        (b"", 400),
        (b'{"object": "whatsapp_business_account", "entry": "nope"}', 400),
        (b'{"entry": [{"changes": [{"value": {"messages": [{"id": "w"}]}}]}]}', 400),
        (b"x" * (3 * 1024 * 1024 + 1), 413),
    ],
)
async def test_malformed_or_oversized_bodies_store_nothing(
    raw: bytes,
    status: int,
    number: MetaNumber,
    api: httpx.AsyncClient,
    wa_app: FastAPI,
    wa_org: Org,
) -> None:
    resp = await post_meta(api, raw, number.app_secret)
    assert resp.status_code == status, resp.text
    assert resp.json()["message"]
    for what in ("messages", "contacts", "conversations", "pending"):
        assert await count_rows(wa_app, what, wa_org.id) == 0


async def test_unknown_number_is_404(number: MetaNumber, api: httpx.AsyncClient) -> None:
    body = adapt(
        json.loads(fixture_path("meta-webhooks", "message.json").read_text())["text"], number, "u"
    )
    body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    assert (await post_meta(api, body, number.app_secret)).status_code == 404


@pytest.mark.parametrize(
    ("text", "opts_out"),
    [("STOP", True), ("  parar ", True), ("Sair", True), ("stop please", False)],
)
async def test_opt_out_keyword(
    text: str, opts_out: bool, number: MetaNumber, sim: Simulator, wa_app: FastAPI
) -> None:
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text=text)
    [message] = await messages_of(wa_app, number.id)
    [contact] = await session_rows(wa_app, Contact, id=message.contact_id)
    assert contact.opt_in is (not opts_out)
    if opts_out:
        assert contact.opt_in_source == "keyword" and contact.opt_in_changed_at is not None
    else:
        assert contact.opt_in_source is None


async def test_brazilian_wa_id_without_ninth_digit_finds_the_contact(
    number: MetaNumber, sim: Simulator, wa_app: FastAPI, api: httpx.AsyncClient, wa_org: Org
) -> None:
    created = await api.post(
        "/v1/contacts",
        json={"whatsapp_id": "+5561999999999", "name": "João"},
        headers=wa_org.headers,
    )
    assert created.status_code == 201, created.text
    await sim.customer_sends(number.pnid, "556199999999", type="text", text="oi")
    [message] = await messages_of(wa_app, number.id)
    assert str(message.contact_id) == created.json()["id"]
    assert await count_rows(wa_app, "contacts", wa_org.id) == 1
    [contact] = await session_rows(wa_app, Contact, id=message.contact_id)
    assert contact.whatsapp_id == "+5561999999999" and contact.wa_id == "556199999999"
    assert contact.name == "João"


async def test_new_brazilian_contact_is_stored_in_e164(
    number: MetaNumber, sim: Simulator, wa_app: FastAPI, wa_org: Org
) -> None:
    await sim.customer_sends(number.pnid, "556188887777", type="text", text="oi")
    await sim.customer_sends(number.pnid, "5561988887777", type="text", text="de novo")
    stored = await messages_of(wa_app, number.id)
    assert len(stored) == 2 and stored[0].contact_id == stored[1].contact_id
    [contact] = await session_rows(wa_app, Contact, id=stored[0].contact_id)
    assert contact.whatsapp_id == "+5561988887777"
    assert await count_rows(wa_app, "contacts", wa_org.id) == 1


async def test_the_webhook_is_served_ahead_of_the_router_with_request_id_and_metrics(
    api: httpx.AsyncClient, number: MetaNumber
) -> None:
    # pytake.message.webhooks.MetaWebhookFastPath answers this route; it must keep what the
    # observability middleware gives every route, and the legacy error envelope.
    refused = await post_meta(api, {"object": "whatsapp_business_account", "entry": []}, None)
    assert refused.status_code == 401
    assert refused.json()["error"] and refused.json()["code"]
    assert refused.headers["x-request-id"]
    body = status_body(number, f"wamid.fast-{uuid.uuid4().hex}", "delivered", 1700000000)
    accepted = await post_meta(api, body, number.app_secret)
    assert accepted.status_code == 200 and accepted.json()["status"] == "received"
    assert accepted.headers["x-request-id"]
    metrics = (await api.get("/metrics")).text
    assert 'route="/api/v1/whatsapp/webhook",status="200"' in metrics
    assert 'route="/api/v1/whatsapp/webhook",status="401"' in metrics
