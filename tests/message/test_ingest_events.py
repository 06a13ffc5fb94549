"""Ingest records the domain events of what it changed, once: contact.created,
conversation.created, message.received, message.<status> (forward moves only), and
contact.updated for opt-outs."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pytake.models.event import OutboxEvent
from pytake.whatsapp.simulator import Simulator
from tests.channel.support import MetaNumber, create_official, messages_of, post_meta
from tests.conftest import Org
from tests.message.test_meta_webhook import _outbound, status_body

CUSTOMER = "5511976543210"


@pytest.fixture
async def number(api: httpx.AsyncClient, wa_org: Org, sim: Simulator, wa_url: str) -> MetaNumber:
    return await create_official(api, wa_org, sim, wa_url)


async def _events(app: FastAPI, org: Org) -> list[OutboxEvent]:
    async with app.state.session_factory() as session:
        rows = await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.organization_id == uuid.UUID(org.id))
            .order_by(OutboxEvent.id)
        )
        return list(rows)


async def test_first_message_records_contact_conversation_and_message_once(
    number: MetaNumber, sim: Simulator, wa_app: FastAPI, wa_org: Org, api: httpx.AsyncClient
) -> None:
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text="Olá", profile_name="Maria")
    events = await _events(wa_app, wa_org)
    assert [e.type for e in events] == [
        "contact.created",
        "conversation.created",
        "message.received",
    ]
    [message] = await messages_of(wa_app, number.id)
    received = events[2].payload
    assert received["message"]["id"] == str(message.id)
    assert received["message"]["whatsapp_message_id"] == message.provider_message_id
    assert received["message"]["content"] == {"text": "Olá"}
    assert received["conversation"] == {"id": str(message.conversation_id), "status": "open"}
    assert received["contact"]["whatsapp_id"] == "+" + CUSTOMER
    assert received["contact"]["name"] == "Maria"
    assert events[1].payload["conversation"]["contact_id"] == str(message.contact_id)

    # The same message again (Meta redelivers) records nothing; a new one only message.received.
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text="again")
    types = [e.type for e in await _events(wa_app, wa_org)]
    assert types[3:] == ["message.received"]


async def test_status_events_only_for_forward_moves(
    number: MetaNumber, sim: Simulator, wa_app: FastAPI, wa_org: Org, api: httpx.AsyncClient
) -> None:
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text="hi")
    [inbound] = await messages_of(wa_app, number.id)
    wamid = "wamid.ev-" + uuid.uuid4().hex
    await _outbound(wa_app, number, wamid, inbound)
    before = len(await _events(wa_app, wa_org))
    for status, ts in (("read", 1700000300), ("delivered", 1700000200), ("read", 1700000300)):
        resp = await post_meta(api, status_body(number, wamid, status, ts), number.app_secret)
        assert resp.status_code == 200
    new = (await _events(wa_app, wa_org))[before:]
    assert [e.type for e in new] == ["message.read"]
    assert new[0].payload["message"]["whatsapp_message_id"] == wamid
    assert new[0].payload["status"] == "read"
    assert new[0].payload["timestamp"].startswith("2023-11-14T22:18:20")


async def test_opt_out_keyword_records_contact_updated(
    number: MetaNumber, sim: Simulator, wa_app: FastAPI, wa_org: Org
) -> None:
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text="hello")
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text=" stop ")
    events = await _events(wa_app, wa_org)
    updated = [e for e in events if e.type == "contact.updated"]
    assert len(updated) == 1
    assert updated[0].payload["changes"] == ["opt_in"]
    assert updated[0].payload["contact"]["opt_in"] is False


async def test_nul_characters_are_stored_not_refused(
    number: MetaNumber, sim: Simulator, wa_app: FastAPI
) -> None:
    # PostgreSQL cannot hold NUL in text or JSONB; refusing would make Meta retry for days.
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text="a\x00b")
    [message] = await messages_of(wa_app, number.id)
    assert message.content["text"] == "a\ufffdb"


async def test_events_show_the_contact_as_this_message_leaves_it(
    number: MetaNumber, sim: Simulator, wa_app: FastAPI, wa_org: Org, api: httpx.AsyncClient
) -> None:
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text="1", profile_name="Maria")
    # The customer renames herself on WhatsApp: the next event already carries the new name.
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text="2", profile_name="Mari")
    received = [e for e in await _events(wa_app, wa_org) if e.type == "message.received"]
    assert [e.payload["contact"]["name"] for e in received] == ["Maria", "Mari"]
    # A name the business gave the contact wins over the WhatsApp profile.
    contact_id = received[0].payload["contact"]["id"]
    resp = await api.patch(
        f"/v1/contacts/{contact_id}", json={"name": "Maria Silva"}, headers=wa_org.headers
    )
    assert resp.status_code == 200, resp.text
    await sim.customer_sends(number.pnid, CUSTOMER, type="text", text="3", profile_name="M")
    received = [e for e in await _events(wa_app, wa_org) if e.type == "message.received"]
    assert received[-1].payload["contact"]["name"] == "Maria Silva"
    assert received[-1].payload["contact"]["opt_in"] is True
