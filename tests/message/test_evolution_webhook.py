"""Evolution inbound webhooks over real HTTP, delivered by the simulator to the URL and secret
header PyTake registered with `webhook/set` (through instance creation)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pytake.models import Contact, Message
from pytake.whatsapp.simulator import Simulator
from tests.channel.support import count_rows, create_evolution, messages_of
from tests.conftest import Org

CUSTOMER = "5511977776666"


@dataclass
class Instance:
    name: str
    config_id: str
    secret: str
    url: str


@pytest.fixture
async def instance(api: httpx.AsyncClient, wa_org: Org, sim: Simulator) -> AsyncIterator[Instance]:
    name = "evo-" + uuid.uuid4().hex[:8]
    config = await create_evolution(api, wa_org, sim, instance=name)
    resp = await api.post(
        "/api/v1/whatsapp/instance/create", json={"instance_name": name}, headers=wa_org.headers
    )
    assert resp.status_code == 201, resp.text
    sim.scan(name, "5511900001111", "Loja")
    await sim.idle()
    hook = sim.state.instances[name].webhook or {}
    yield Instance(name, config["id"], hook["headers"]["X-PyTake-Webhook-Secret"], hook["url"])


async def contact_of(app: FastAPI, message: Message) -> Contact:
    async with app.state.session_factory() as session:
        contact = await session.scalar(select(Contact).where(Contact.id == message.contact_id))
    assert contact is not None
    return contact


@pytest.mark.parametrize("shape", ["conversation", "extended"])
async def test_text_in_both_shapes(
    shape: str, instance: Instance, sim: Simulator, wa_app: FastAPI
) -> None:
    sent = await sim.evolution_customer_sends(
        instance.name,
        CUSTOMER,
        type="text",
        text="Oi, tudo bem?",
        text_shape=shape,
        profile_name="Ana",
    )
    assert sent.webhook_status == 200
    [message] = await messages_of(wa_app, instance.config_id)
    assert message.type == "text" and message.content == {"text": "Oi, tudo bem?"}
    assert message.provider_message_id == sent.id and message.direction == "inbound"
    contact = await contact_of(wa_app, message)
    assert contact.whatsapp_id == "+" + CUSTOMER and contact.profile_name == "Ana"


async def test_media_and_reply(instance: Instance, sim: Simulator, wa_app: FastAPI) -> None:
    first = await sim.evolution_customer_sends(instance.name, CUSTOMER, type="text", text="a")
    await sim.evolution_customer_sends(
        instance.name, CUSTOMER, type="image", caption="foto", context_message_id=first.id
    )
    image = (await messages_of(wa_app, instance.config_id))[-1]
    assert image.type == "image" and image.content["caption"] == "foto"
    assert image.content["media_id"] and image.content["mime_type"]
    assert image.context_provider_message_id == first.id


async def test_lid_sender_is_resolved_by_phone(
    instance: Instance, sim: Simulator, wa_app: FastAPI, wa_org: Org
) -> None:
    await sim.evolution_customer_sends(instance.name, CUSTOMER, type="text", text="pn")
    await sim.evolution_customer_sends(
        instance.name, CUSTOMER, type="text", text="lid", lid="123456789012345"
    )
    first, second = await messages_of(wa_app, instance.config_id)
    assert first.contact_id == second.contact_id
    assert (await contact_of(wa_app, second)).whatsapp_id == "+" + CUSTOMER
    assert await count_rows(wa_app, "contacts", wa_org.id) == 1


async def _post(api: httpx.AsyncClient, instance: Instance, body: Any, secret: str | None) -> Any:
    headers = {"X-PyTake-Webhook-Secret": secret} if secret else {}
    path = f"/api/v1/whatsapp/webhook/evolution/{instance.config_id}"
    assert instance.url.endswith(path)  # where PyTake told Evolution to post
    return await api.post(path, json=body, headers=headers)


def upsert(instance: Instance, message_id: str, text: str) -> dict[str, Any]:
    return {
        "event": "messages.upsert",
        "instance": instance.name,
        "data": {
            "key": {"remoteJid": f"{CUSTOMER}@s.whatsapp.net", "fromMe": False, "id": message_id},
            "pushName": "Ana",
            "message": {"conversation": text},
            "messageType": "conversation",
            "messageTimestamp": 1717689097,
        },
    }


async def test_secret_header_is_required(
    instance: Instance, api: httpx.AsyncClient, wa_app: FastAPI, wa_org: Org
) -> None:
    body = upsert(instance, "3A" + uuid.uuid4().hex[:16].upper(), "hi")
    assert (await _post(api, instance, body, None)).status_code == 401
    assert (await _post(api, instance, body, "wrong")).status_code == 401
    assert await count_rows(wa_app, "messages", wa_org.id) == 0
    ok = await _post(api, instance, body, instance.secret)
    assert ok.status_code == 200 and ok.json()["messages"] == 1
    again = await _post(api, instance, body, instance.secret)
    assert again.json()["duplicates"] == 1
    assert await count_rows(wa_app, "messages", wa_org.id) == 1
    unknown = await api.post(f"/api/v1/whatsapp/webhook/evolution/{uuid.uuid4()}", json=body)
    assert unknown.status_code == 404


async def test_malformed_evolution_bodies_are_400(
    instance: Instance, api: httpx.AsyncClient, wa_app: FastAPI, wa_org: Org
) -> None:
    headers = {"X-PyTake-Webhook-Secret": instance.secret, "Content-Type": "application/json"}
    path = f"/api/v1/whatsapp/webhook/evolution/{instance.config_id}"
    for raw in (
        b'{"event": "messages.upsert", "instance": "x", "data": {"ke',
        b"[]",
        b'{"event": "messages.upsert", "instance": "x", "data": {"key": {}}}',
    ):
        resp = await api.post(path, content=raw, headers=headers)
        assert resp.status_code == 400, resp.text
    assert await count_rows(wa_app, "messages", wa_org.id) == 0


async def test_message_update_statuses_forward_only(
    instance: Instance, api: httpx.AsyncClient, sim: Simulator, wa_app: FastAPI
) -> None:
    await sim.evolution_customer_sends(instance.name, CUSTOMER, type="text", text="hi")
    [inbound] = await messages_of(wa_app, instance.config_id)
    key_id = "3EB0" + uuid.uuid4().hex[:16].upper()
    async with wa_app.state.session_factory() as session, session.begin():
        session.add(
            Message(
                organization_id=inbound.organization_id,
                conversation_id=inbound.conversation_id,
                contact_id=inbound.contact_id,
                channel_id=uuid.UUID(instance.config_id),
                direction="outbound",
                type="text",
                content={"text": "ok"},
                status="sent",
                provider_message_id=key_id,
            )
        )
    for status in ("READ", "DELIVERY_ACK", "SERVER_ACK"):
        body = {
            "event": "messages.update",
            "instance": instance.name,
            "data": {
                "keyId": key_id,
                "remoteJid": f"{CUSTOMER}@s.whatsapp.net",
                "fromMe": True,
                "status": status,
            },
        }
        resp = await _post(api, instance, body, instance.secret)
        assert resp.status_code == 200 and resp.json()["statuses"] == 1
    out = [m for m in await messages_of(wa_app, instance.config_id) if m.direction == "outbound"]
    assert out[0].status == "read" and out[0].read_at and out[0].delivered_at


async def test_connection_and_qrcode_are_kept_on_the_config(
    instance: Instance, api: httpx.AsyncClient, wa_org: Org
) -> None:
    qr = {
        "event": "qrcode.updated",
        "instance": instance.name,
        "data": {
            "qrcode": {
                "instance": instance.name,
                "code": "2@abc",
                "base64": "data:image/png;base64,QUJD",
            }
        },
    }
    assert (await _post(api, instance, qr, instance.secret)).status_code == 200
    shown = await api.get(
        f"/api/v1/whatsapp/instance/{instance.name}/qrcode", headers=wa_org.headers
    )
    assert shown.json()["qr_code"] == "data:image/png;base64,QUJD"
    closed = {
        "event": "connection.update",
        "instance": instance.name,
        "data": {"instance": instance.name, "state": "close", "statusReason": 401},
    }
    assert (await _post(api, instance, closed, instance.secret)).status_code == 200
    got = (
        await api.get(f"/api/v1/whatsapp-configs/{instance.config_id}", headers=wa_org.headers)
    ).json()
    assert got["connection_state"] == "close" and got["health_status"] == "unhealthy"


async def test_an_api_sends_copy_is_not_stored_as_a_message(
    instance: Instance, api: httpx.AsyncClient, wa_app: FastAPI, wa_org: Org
) -> None:
    """`send.message` echoes a message sent through the API, possibly before the send's
    answer gave PyTake its id: it must not become a second row holding that id."""
    body = upsert(instance, "3EB0" + uuid.uuid4().hex[:16].upper(), "sent by the API")
    body["event"] = "send.message"
    body["data"]["key"]["fromMe"] = True
    resp = await _post(api, instance, body, instance.secret)
    assert resp.status_code == 200 and resp.json()["duplicates"] == 1
    assert await count_rows(wa_app, "messages", wa_org.id) == 0
