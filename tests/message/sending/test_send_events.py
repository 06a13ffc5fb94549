"""Sending and conversation changes record their domain events: message.sent / message.failed,
conversation.assigned / conversation.resolved."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from pytake.models.event import OutboxEvent
from tests.conftest import add_user
from tests.message.sending.support import Shop, eventually, new_customer


async def _event_types(app: FastAPI, shop: Shop, kind: str) -> list[OutboxEvent]:
    async with app.state.session_factory() as session:
        rows = await session.scalars(
            select(OutboxEvent)
            .where(
                OutboxEvent.organization_id == uuid.UUID(shop.org.id),
                OutboxEvent.type.like(kind + "%"),
            )
            .order_by(OutboxEvent.id)
        )
        return list(rows)


async def test_sent_and_failed_sends_record_events(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    ok = await http.post(
        "/v1/messages",
        json={"to": wa_id, "type": "text", "text": {"body": "Hi"}},
        headers=shop.headers,
    )
    assert ok.status_code == 201, ok.text
    shop.sim.state.close_window(shop.number.pnid, wa_id)  # Meta answers 131047 from now on
    failed = await http.post(
        "/v1/messages",
        json={"to": wa_id, "type": "text", "text": {"body": "Late"}},
        headers=shop.headers,
    )
    assert failed.status_code == 422, failed.text
    events = [
        e for e in await _event_types(send_app, shop, "message.") if e.type != "message.received"
    ]
    sent = [e for e in events if e.type == "message.sent"]
    assert [e.payload["message"]["id"] for e in sent] == [ok.json()["id"]]
    assert sent[0].payload["message"]["whatsapp_message_id"] == ok.json()["whatsapp_message_id"]
    [fail] = [e for e in events if e.type == "message.failed"]
    assert fail.payload["message"]["id"] == failed.json()["error"]["message_id"]
    assert fail.payload["error"]["code"] == 131047


async def test_assign_and_resolve_record_events(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    [conversation] = (await http.get("/v1/conversations", headers=shop.headers)).json()["data"]
    agent_id, _ = await add_user(http, shop.org, "agent")
    url = f"/v1/conversations/{conversation['id']}"
    assert (
        await http.patch(url, json={"assigned_to": agent_id}, headers=shop.headers)
    ).status_code == 200
    assert (
        await http.patch(url, json={"status": "resolved"}, headers=shop.headers)
    ).status_code == 200
    events = await _event_types(send_app, shop, "conversation.")
    assert [e.type for e in events] == [
        "conversation.created",
        "conversation.assigned",
        "conversation.resolved",
    ]
    assert events[1].payload["conversation"]["assigned_to_id"] == agent_id
    assert events[2].payload["conversation"]["status"] == "resolved"


async def test_a_send_that_opens_a_conversation_records_conversation_created(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI
) -> None:
    wa_id = new_customer()  # never wrote: the send creates the contact and the conversation
    shop.sim.register_template(shop.number.waba, "hello", "en_US", body="Hello")
    body = {
        "to": wa_id,
        "type": "template",
        "template": {"name": "hello", "language": {"code": "en_US"}},
    }
    first = await http.post("/v1/messages", json=body, headers=shop.headers)
    again = await http.post("/v1/messages", json=body, headers=shop.headers)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    conversation_id = first.json()["conversation_id"]
    assert again.json()["conversation_id"] == conversation_id  # the same live conversation
    [created] = await _event_types(send_app, shop, "conversation.created")
    assert created.payload["conversation"]["id"] == conversation_id
    assert created.payload["conversation"]["status"] == "open"
    assert created.payload["conversation"]["channel_id"] == shop.number.id
    assert created.payload["contact"]["whatsapp_id"] == "+" + wa_id
    # Recorded in the send's transaction, before the message's own outcome event.
    [sent, _] = await _event_types(send_app, shop, "message.sent")
    assert created.id < sent.id


async def test_a_send_to_a_new_number_records_contact_created_once(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI
) -> None:
    wa_id = new_customer()  # unknown: the send creates the contact
    shop.sim.register_template(shop.number.waba, "hello", "en_US", body="Hello")
    body = {
        "to": wa_id,
        "type": "template",
        "template": {"name": "hello", "language": {"code": "en_US"}},
    }
    for _ in range(2):
        resp = await http.post("/v1/messages", json=body, headers=shop.headers)
        assert resp.status_code == 201, resp.text
    mine = [
        e
        for e in await _event_types(send_app, shop, "contact.created")
        if e.payload["contact"]["whatsapp_id"] == "+" + wa_id
    ]
    assert len(mine) == 1  # the second send found the contact
    [conversation_created] = [
        e
        for e in await _event_types(send_app, shop, "conversation.created")
        if e.payload["contact"]["whatsapp_id"] == "+" + wa_id
    ]
    assert mine[0].payload["contact"]["id"] == conversation_created.payload["contact"]["id"]
    assert mine[0].id < conversation_created.id


async def test_each_event_type_has_one_shape_whoever_records_it(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI
) -> None:
    """Ingest and sending both open conversations and create contacts; the dispatcher and the
    status webhooks both move messages: each event type carries the same keys either way."""
    writer = new_customer()
    await shop.customer_writes(writer)  # ingest: contact.created, conversation.created
    ok = await http.post(
        "/v1/messages",
        json={"to": writer, "type": "text", "text": {"body": "Hi"}},
        headers=shop.headers,
    )
    assert ok.status_code == 201, ok.text
    shop.sim.register_template(shop.number.waba, "hello", "en_US", body="Hello")
    template = {"name": "hello", "language": {"code": "en_US"}}
    stranger = new_customer()  # sending to a new number: contact.created, conversation.created
    first = await http.post(
        "/v1/messages",
        json={"to": stranger, "type": "template", "template": template},
        headers=shop.headers,
    )
    assert first.status_code == 201, first.text
    made = await http.post(
        "/v1/contacts", json={"whatsapp_id": "+" + new_customer()}, headers=shop.headers
    )
    assert made.status_code == 201, made.text

    async def delivered() -> list[OutboxEvent]:
        return await _event_types(send_app, shop, "message.delivered")

    await eventually(delivered)

    def shapes(kind: str) -> list[dict[str, set[str]]]:
        return [
            {key: set(value) for key, value in e.payload.items() if isinstance(value, dict)}
            for e in events
            if e.type == kind
        ]

    events = await _event_types(send_app, shop, "")
    for kind, count in (("conversation.created", 2), ("contact.created", 3)):
        found = shapes(kind)
        assert len(found) == count and all(shape == found[0] for shape in found), (kind, found)
    [sent, *_] = shapes("message.sent")
    assert shapes("message.delivered")[0] == sent
    assert set(sent["message"]) == {
        "id",
        "whatsapp_message_id",
        "conversation_id",
        "type",
        "status",
    }
