"""A person answering from the business's phone pauses the bot, as an agent's reply in the
console does: Evolution's `fromMe` upserts and the Cloud API's `smb_message_echoes` (the
WhatsApp Business app on a coexistence number). Echoes of API sends do not."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from pytake.config import Settings
from pytake.models import ChatbotInbox, ChatbotSession, Conversation, Message
from pytake.whatsapp.simulator import Simulator, SimulatorSettings
from tests.channel.support import create_evolution, post_meta
from tests.chatbot.support import (
    Shop,
    World,
    new_customer,
    open_shop,
    own_database,
    world,
    world_settings,
)
from tests.message.sending.support import eventually

HELP = {
    "name": "Help", "trigger": {"type": "keyword", "keywords": ["help"]}, "entry": "ask",
    "nodes": [
        {"id": "ask", "type": "question", "text": "Your order number?", "variable": "order",
         "input": {"type": "number"}, "next": "thanks"},
        {"id": "thanks", "type": "end", "text": "Thanks, we are on it."},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
async def the_sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorSettings.for_tests()) as simulator:
        yield simulator


@pytest.fixture(scope="module")
async def the_world(
    the_sim: Simulator,
    make_settings: Callable[..., Settings],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    async with own_database(tmp_path_factory.mktemp("echoes")) as url:  # noqa: SIM117
        async with world(world_settings(make_settings, url, the_sim), the_sim) as w:
            yield w


@pytest.fixture
async def shop(the_world: World) -> Shop:
    shop = await open_shop(the_world)
    await shop.bot(HELP)
    return shop


async def _outbound(shop: Shop, customer: str) -> list[dict[str, Any]]:
    async with shop.w.app.state.session_factory() as s:
        rows = await s.scalars(
            select(Message.content)
            .where(Message.direction == "outbound", Message.recipient == "+" + customer)
            .order_by(Message.created_at)
        )
        return list(rows)


async def _conversation(shop: Shop, customer: str) -> Conversation:
    async with shop.w.app.state.session_factory() as s:
        found = await s.scalar(
            select(Conversation)
            .join(Message, Message.conversation_id == Conversation.id)
            .where(Message.recipient == "+" + customer)
            .limit(1)
        )
    assert found is not None
    return found


async def _settled(shop: Shop) -> None:
    async def empty() -> bool:
        async with shop.w.app.state.session_factory() as s:
            return not await s.scalar(select(func.count()).select_from(ChatbotInbox))

    await eventually(empty)


async def _session_end(shop: Shop, conversation_id: uuid.UUID) -> str | None:
    async with shop.w.app.state.session_factory() as s:
        return await s.scalar(
            select(ChatbotSession.end_reason).where(
                ChatbotSession.conversation_id == conversation_id
            )
        )


def _cloud_echo(shop: Shop, customer: str, text: str) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": shop.number.sim_number.display_phone_number,
                     "phone_number_id": shop.number.pnid},
        "message_echoes": [{
            "from": shop.number.sim_number.display_phone_number, "to": customer,
            "id": f"wamid.echo{uuid.uuid4().hex}", "timestamp": str(int(time.time())),
            "type": "text", "text": {"body": text},
        }],
    }  # fmt: skip
    return {"object": "whatsapp_business_account",
            "entry": [{"id": shop.number.waba,
                       "changes": [{"value": value, "field": "smb_message_echoes"}]}]}  # fmt: skip


async def test_a_reply_from_the_business_app_pauses_the_bot(shop: Shop) -> None:
    ana = new_customer()
    await shop.says(ana, "help")
    assert await shop.receives(ana, 1) == ["Your order number?"]
    resp = await post_meta(shop.api, _cloud_echo(shop, ana, "I'll take it from here"),
                           shop.number.app_secret)  # fmt: skip
    assert resp.status_code == 200, resp.text
    conversation = await _conversation(shop, ana)
    assert conversation.is_bot_active is False
    assert await _session_end(shop, conversation.id) == "agent_replied_from_phone"
    await shop.says(ana, "1234")
    await _settled(shop)
    assert shop.received(ana) == ["Your order number?"]  # the bot stayed silent


async def test_a_reply_from_the_evolution_phone_pauses_the_bot_an_api_echo_does_not(
    shop: Shop,
) -> None:
    sim, api, org = shop.w.sim, shop.api, shop.org
    name = "evo-" + uuid.uuid4().hex[:8]
    config = await create_evolution(api, org, sim, instance=name)
    resp = await api.post("/api/v1/whatsapp/instance/create", json={"instance_name": name},
                          headers=org.headers)  # fmt: skip
    assert resp.status_code == 201, resp.text
    sim.scan(name, "5511900001111", "Loja")
    await sim.idle()
    hook = sim.state.instances[name].webhook or {}
    # The instance was created through the in-process client: point it at the live server.
    hook["url"] = shop.w.url + hook["url"].removeprefix("http://pytake.test")
    secret = hook["headers"]["X-PyTake-Webhook-Secret"]
    path = f"/api/v1/whatsapp/webhook/evolution/{config['id']}"
    bea = "55119" + str(uuid.uuid4().int)[:8]

    async def customer(text: str) -> None:
        sent = await sim.evolution_customer_sends(name, bea, type="text", text=text)
        assert sent.webhook_status == 200

    async def from_business(text: str, event: str) -> None:
        body = {"event": event, "instance": name, "data": {
            "key": {"remoteJid": f"{bea}@s.whatsapp.net", "fromMe": True,
                    "id": "3EB0" + uuid.uuid4().hex[:16].upper()},
            "message": {"conversation": text}, "messageType": "conversation",
            "messageTimestamp": int(time.time())}}  # fmt: skip
        resp = await api.post(path, json=body, headers={"X-PyTake-Webhook-Secret": secret})
        assert resp.status_code == 200, resp.text

    async def answered(n: int) -> list[dict[str, Any]] | None:
        """n replies sent (an echo while one is in flight may be of it: no pause then)."""
        async with shop.w.app.state.session_factory() as s:
            statuses = list(await s.scalars(
                select(Message.status)
                .where(Message.direction == "outbound", Message.recipient == "+" + bea)
            ))  # fmt: skip
        done = [st for st in statuses if st not in ("queued", "sending")]
        return statuses if len(done) >= n and len(done) == len(statuses) else None

    await customer("help")
    await eventually(lambda: answered(1))
    # An API send's echo (`send.message`) is the bot's own message: it answers on.
    await from_business("Your order number?", "send.message")
    await customer("abc")
    await eventually(lambda: answered(2))  # the retry of the question
    conversation = await _conversation(shop, bea)
    assert conversation.is_bot_active is True
    # Someone answers on the phone itself: the bot stops there.
    await from_business("Oi! Aqui é a Bia, da loja", "messages.upsert")
    conversation = await _conversation(shop, bea)
    assert conversation.is_bot_active is False
    await customer("1234")
    await _settled(shop)
    assert len(await _outbound(shop, bea)) == 2
