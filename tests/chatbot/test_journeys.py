"""Chatbot journeys end to end: customers write through the simulator's signed webhooks, the
durable consumer answers, replies go out through the send queue and reach the simulator."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from pytake.config import Settings
from pytake.whatsapp.simulator import Simulator, SimulatorSettings
from tests.chatbot.engine.test_validate import LEAD_CAPTURE
from tests.chatbot.support import (
    Shop,
    World,
    consumer_of,
    new_customer,
    open_shop,
    own_database,
    world,
    world_settings,
)
from tests.chatbot.test_endpoints import SUPPORT_FLOW
from tests.conftest import register_org
from tests.message.sending.support import eventually


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
    async with own_database(tmp_path_factory.mktemp("bots")) as url:  # noqa: SIM117
        # (the settings need the database's URL)
        async with world(world_settings(make_settings, url, the_sim), the_sim) as w:
            yield w


@pytest.fixture
async def shop(the_world: World) -> Shop:
    return await open_shop(the_world)


async def test_keyword_buttons_and_a_question_that_refuses_twice(shop: Shop) -> None:
    await shop.bot(LEAD_CAPTURE)
    ana = new_customer()
    await shop.says(ana, "Começar")
    assert await shop.receives(ana, 1) == ["What is your e-mail?"]
    await shop.says(ana, "not an address")
    await shop.receives(ana, 2)
    await shop.says(ana, "still@not")
    await shop.receives(ana, 3)
    await shop.says(ana, "ana@example.com")
    got = await shop.receives(ana, 4)
    assert got[1:3] == ["That does not look like an e-mail address."] * 2
    assert got[3] == "Thanks ana@example.com! Anything else? ['Talk to sales', 'No, thanks']"
    await shop.taps(ana, "no", "No, thanks")
    assert (await shop.receives(ana, 5))[4] == "Bye!"
    # A customer who wants sales is handed off from the same menu.
    bob = new_customer()
    await shop.says(bob, "start")
    await shop.receives(bob, 1)
    await shop.says(bob, "bob@example.com")
    await shop.receives(bob, 2)
    await shop.taps(bob, "sales", "Talk to sales")
    assert (await shop.receives(bob, 3))[2] == "Passing you to a person."

    async def pending() -> bool:
        return (await shop.conversation(bob))["status"] == "pending"

    await eventually(pending)
    conversation = await shop.conversation(bob)
    assert conversation["is_bot_active"] is False
    [bot] = (await shop.api.get("/v1/chatbots", headers=shop.headers)).json()["data"]
    assert bot["statistics"]["total_conversations"] == 2
    # ana: 5 in, 5 out; bob: 3 in, 3 out
    assert bot["statistics"]["total_messages"] == 16


async def test_handoff_pauses_the_bot_agent_reply_and_resolve(shop: Shop) -> None:
    flow = {
        "name": "Help", "trigger": {"type": "keyword", "keywords": ["help"]}, "entry": "ask",
        "nodes": [
            {"id": "ask", "type": "question", "text": "Your order number?", "variable": "order",
             "input": {"type": "number"}, "next": "agent"},
            {"id": "agent", "type": "handoff", "text": "An agent will take it from here."},
        ],
    }  # fmt: skip
    bot = await shop.bot(flow, fallback_message="Say help")
    carla = new_customer()
    await shop.says(carla, "help")
    await shop.receives(carla, 1)
    await shop.says(carla, "1234")
    assert (await shop.receives(carla, 2))[1] == "An agent will take it from here."

    async def handed_off() -> dict[str, Any] | None:
        c = await shop.conversation(carla)
        return c if c["status"] == "pending" else None

    conversation = await eventually(handed_off)
    detail = await shop.api.get(f"/v1/conversations/{conversation['id']}", headers=shop.headers)
    assert detail.json()["bot_variables"]["order"] == 1234
    # While people have it, the bot is silent.
    await shop.says(carla, "hello?")
    await _settled(shop)
    assert len(shop.received(carla)) == 2
    # Resolving hands it back: the bot answers again.
    resp = await shop.api.patch(
        f"/v1/conversations/{conversation['id']}", json={"status": "resolved"}, headers=shop.headers
    )
    assert resp.status_code == 200, resp.text
    await shop.says(carla, "anything")
    assert (await shop.receives(carla, 3))[2] == "Say help"
    # An agent replying in the conversation pauses the bot there.
    await shop.says(carla, "help")
    await shop.receives(carla, 4)
    reply = await shop.api.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"type": "text", "text": {"body": "Hi, Ana from support here"}},
        headers=shop.headers,
    )
    assert reply.status_code in (201, 202), reply.text
    await shop.receives(carla, 5)
    await shop.says(carla, "42")
    await _settled(shop)
    assert len(shop.received(carla)) == 5  # no handoff text: the bot stopped
    sessions = await shop.api.get(f"/v1/chatbots/{bot['id']}/flows/{bot['flow_ids'][0]}/stats",
                                  headers=shop.headers)  # fmt: skip
    nodes = {n["node"]: n for n in sessions.json()["versions"][0]["nodes"]}
    assert nodes["ask"]["entered"] == 2 and nodes["agent"]["entered"] == 1


async def _settled(shop: Shop) -> None:
    """Until the bot has consumed everything it was given."""
    from sqlalchemy import func, select

    from pytake.models import ChatbotInbox

    async def empty() -> bool:
        async with shop.w.app.state.session_factory() as s:
            return not await s.scalar(select(func.count()).select_from(ChatbotInbox))

    await eventually(empty)
    consumer = consumer_of(shop.w.app)
    before = consumer.steps
    await eventually(lambda: _true(), timeout=0.3)  # a beat for a reply being queued
    assert consumer.steps == before


async def _true() -> bool:
    return True


async def test_legacy_support_flow_runs_with_transfer_to_tech(shop: Shop) -> None:
    team = await shop.api.post("/v1/teams", json={"name": "Tech"}, headers=shop.headers)
    assert team.status_code == 201, team.text
    resp = await shop.api.post("/api/v1/flows", json=SUPPORT_FLOW, headers=shop.headers)
    assert resp.status_code == 201, resp.text
    dan = new_customer()
    await shop.says(dan, "HELP")
    [menu] = await shop.receives(dan, 1)
    assert menu == "How can I help you today? ['Technical Issue', 'Billing', 'General Question']"
    await shop.taps(dan, "technical_issue", "Technical Issue")

    async def transferred() -> dict[str, Any] | None:
        c = await shop.conversation(dan)
        return c if c["status"] == "pending" else None

    conversation = await eventually(transferred)
    # In the team's queue (the name compared case-insensitively), waiting for its agents.
    assert conversation["team"] == {"id": team.json()["id"], "name": "Tech"}
    assert conversation["assigned_to"] is None
    detail = await shop.api.get(f"/v1/conversations/{conversation['id']}", headers=shop.headers)
    assert detail.json()["bot_variables"]["handoff_team"] == "tech"
    assert detail.json()["team"]["name"] == "Tech"
    assert detail.json()["bot_variables"]["answer"] == "Technical Issue"
    # "billing" typed (any case, no accents needed) ends the flow: no transfer.
    eve = new_customer()
    await shop.says(eve, "help")
    await shop.receives(eve, 1)
    await shop.says(eve, "BILLING")
    await _settled(shop)
    assert (await shop.conversation(eve))["status"] == "open"


TEAM_HANDOFFS = {
    "name": "Routing", "trigger": {"type": "keyword", "keywords": ["billing", "sales"]},
    "entry": "route",
    "nodes": [
        {"id": "route", "type": "condition",
         "rules": [{"when": {"all": [{"left": "last_input", "op": "equals", "right": "billing"}]},
                    "next": "to_billing"}],
         "else": "to_sales"},
        {"id": "to_billing", "type": "handoff", "text": "Billing will answer.",
         "assign_to": {"team": "BILLING"}},
        {"id": "to_sales", "type": "handoff", "text": "Sales will answer.",
         "assign_to": {"team": "sales"}},
    ],
}  # fmt: skip


async def test_a_handoff_names_a_team_and_falls_back_to_the_queue(shop: Shop) -> None:
    billing = await shop.api.post("/v1/teams", json={"name": "Billing"}, headers=shop.headers)
    assert billing.status_code == 201
    await shop.bot(TEAM_HANDOFFS)
    gil, hal = new_customer(), new_customer()
    await shop.says(gil, "billing")
    await shop.says(hal, "sales")
    assert await shop.receives(gil, 1) == ["Billing will answer."]
    assert await shop.receives(hal, 1) == ["Sales will answer."]

    async def handed(customer: str) -> dict[str, Any] | None:
        c = await shop.conversation(customer)
        return c if c["status"] == "pending" else None

    routed = await eventually(lambda: handed(gil))
    assert routed["team"] == {"id": billing.json()["id"], "name": "Billing"}
    queued = await eventually(lambda: handed(hal))  # no team "sales": the organisation's queue
    assert queued["team"] is None and queued["bot_variables"]["handoff_team"] == "sales"
    only = await shop.api.get(
        "/v1/conversations", params={"team_id": billing.json()["id"]}, headers=shop.headers
    )
    assert [c["id"] for c in only.json()["data"]] == [routed["id"]]


async def test_publishing_a_new_version_leaves_running_sessions_on_theirs(shop: Shop) -> None:
    bot = await shop.bot(LEAD_CAPTURE)
    fay = new_customer()
    await shop.says(fay, "start")
    await shop.receives(fay, 1)
    changed = copy.deepcopy(LEAD_CAPTURE)
    changed["nodes"][1]["text"] = "Version two, {{email}}"
    base = f"/v1/chatbots/{bot['id']}/flows/{bot['flow_ids'][0]}"
    assert (await shop.api.put(base, json=changed, headers=shop.headers)).status_code == 200
    assert (await shop.api.post(f"{base}/publish", headers=shop.headers)).json()["version"] == 2
    await shop.says(fay, "fay@example.com")
    assert (await shop.receives(fay, 2))[1].startswith("Thanks fay@example.com!")
    gus = new_customer()
    await shop.says(gus, "start")
    await shop.receives(gus, 1)
    await shop.says(gus, "gus@example.com")
    assert (await shop.receives(gus, 2))[1].startswith("Version two, gus@example.com")


async def test_loop_guard_hands_off(shop: Shop) -> None:
    loop = {"name": "Loop", "trigger": {"type": "keyword", "keywords": ["loop"]}, "entry": "a",
            "nodes": [{"id": "a", "type": "set_variable", "variable": "n", "value": "1",
                       "next": "b"}, {"id": "b", "type": "jump", "node": "a"}]}  # fmt: skip
    await shop.bot(loop, settings={"max_steps": 10})
    hal = new_customer()
    await shop.says(hal, "loop")

    async def handed_off() -> dict[str, Any] | None:
        c = await shop.conversation(hal)
        return c if c["status"] == "pending" else None

    conversation = await eventually(handed_off)
    detail = await shop.api.get(f"/v1/conversations/{conversation['id']}", headers=shop.headers)
    assert detail.json()["bot_variables"]["handoff_reason"].startswith("loop_guard")


async def test_http_node_calls_a_local_server_and_branches(shop: Shop) -> None:
    seen: list[dict[str, Any]] = []

    async def lookup(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"body": body, "auth": request.headers.get("Authorization")})
        status = "vip" if body["email"].startswith("vip") else "regular"
        return web.json_response({"customer": {"status": status}})

    server = web.Application()
    server.router.add_post("/lookup", lookup)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    flow = {
        "name": "Lookup", "trigger": {"type": "keyword", "keywords": ["status"]}, "entry": "ask",
        "nodes": [
            {"id": "ask", "type": "question", "text": "E-mail?", "variable": "email",
             "input": {"type": "email"}, "next": "call"},
            {"id": "call", "type": "http", "method": "POST",
             "url": f"http://127.0.0.1:{port}/lookup", "headers": {"Authorization": "Bearer k"},
             "body": {"email": "{{email}}"}, "timeout": 5, "map": {"tier": "$.customer.status"},
             "next": "branch", "on_error": "oops"},
            {"id": "branch", "type": "condition", "rules": [{"when": {"all": [
                {"left": "tier", "op": "equals", "right": "vip"}]}, "next": "vip"}],
             "else": "regular"},
            {"id": "vip", "type": "end", "text": "Welcome back, VIP"},
            {"id": "regular", "type": "end", "text": "Thanks, {{tier}} customer"},
            {"id": "oops", "type": "end", "text": "Lookup failed"},
        ],
    }  # fmt: skip
    try:
        await shop.bot(flow)
        ivy = new_customer()
        await shop.says(ivy, "status")
        await shop.receives(ivy, 1)
        await shop.says(ivy, "vip@example.com")
        assert (await shop.receives(ivy, 2))[1] == "Welcome back, VIP"
        assert seen == [{"body": {"email": "vip@example.com"}, "auth": "Bearer k"}]
        jon = new_customer()
        await shop.says(jon, "status")
        await shop.receives(jon, 1)
        await shop.says(jon, "jon@example.com")
        assert (await shop.receives(jon, 2))[1] == "Thanks, regular customer"
        # Without the development setting a private address is refused, never called.
        consumer = consumer_of(shop.w.app)
        consumer.allow_private = False
        try:
            kim = new_customer()
            await shop.says(kim, "status")
            await shop.receives(kim, 1)
            await shop.says(kim, "kim@example.com")
            assert (await shop.receives(kim, 2))[1] == "Lookup failed"
        finally:
            consumer.allow_private = True
        assert len(seen) == 2
    finally:
        await runner.cleanup()


async def test_a_flow_started_by_the_api(shop: Shop) -> None:
    survey = {
        "name": "Survey", "trigger": {"type": "manual"}, "entry": "rate",
        "nodes": [
            {"id": "rate", "type": "question", "text": "Rate us from 1 to 5",
             "variable": "score", "input": {"type": "number", "min": 1, "max": 5}, "next": "bye"},
            {"id": "bye", "type": "end", "text": "Thanks for the {{score}}!"},
        ],
    }  # fmt: skip
    bot = await shop.bot(survey)
    lea = new_customer()
    await shop.says(lea, "hello")  # no keyword: nothing answers
    await _settled(shop)  # (else "hello" could reach the survey as a bad answer)
    conversation = await shop.conversation(lea)
    url = f"/v1/conversations/{conversation['id']}/flow"
    resp = await shop.api.post(url, json={"flow_id": bot["flow_ids"][0]}, headers=shop.headers)
    assert resp.status_code == 201, resp.text
    assert (resp.json()["status"], resp.json()["node"], resp.json()["version"]) == (
        "active", "rate", 1,
    )  # fmt: skip
    assert await shop.receives(lea, 1) == ["Rate us from 1 to 5"]
    await shop.says(lea, "5")
    assert (await shop.receives(lea, 2))[1] == "Thanks for the 5!"
    other = await register_org(shop.api, "Elsewhere")
    resp = await shop.api.post(url, json={"flow_id": bot["flow_ids"][0]}, headers=other.headers)
    assert resp.status_code == 404
    resp = await shop.api.post(url, json={"flow_id": str(uuid.uuid4())}, headers=shop.headers)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "flow_id"
    resp = await shop.api.post(url, json={}, headers=shop.headers)
    assert resp.status_code == 422


def _hello(text: str) -> dict[str, Any]:
    return {"name": text, "trigger": {"type": "keyword", "keywords": ["hi"]}, "entry": "e",
            "nodes": [{"id": "e", "type": "end", "text": text}]}  # fmt: skip


async def test_a_number_may_name_the_chatbot_that_answers_on_it(shop: Shop) -> None:
    await shop.bot(_hello("first bot"))
    second = await shop.bot(_hello("second bot"))
    mia = new_customer()
    await shop.says(mia, "hi")
    assert await shop.receives(mia, 1) == ["first bot"]  # no choice made: the oldest answers
    url = f"/api/v1/whatsapp-configs/{shop.number.config['id']}"
    resp = await shop.api.put(url, json={"chatbot_id": second["id"]}, headers=shop.headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["chatbot_id"] == second["id"]
    got = await shop.api.get(
        f"/v1/whatsapp-configs/{shop.number.config['id']}", headers=shop.headers
    )
    assert got.json()["chatbot_id"] == second["id"]
    await shop.says(mia, "hi")
    assert (await shop.receives(mia, 2))[1] == "second bot"
    other = await register_org(shop.api, "Elsewhere")
    theirs = await shop.api.post("/v1/chatbots", json={"name": "x"}, headers=other.headers)
    resp = await shop.api.put(url, json={"chatbot_id": theirs.json()["id"]}, headers=shop.headers)
    assert resp.status_code == 422
    assert resp.json()["details"]["field"] == "chatbot_id"


async def test_outside_the_window_the_bot_sends_its_template_or_hands_off(shop: Shop) -> None:
    shop.w.sim.register_template(
        shop.number.waba, "follow_up", "en_US", body="Hi {{1}}, still there?"
    )
    synced = await shop.api.post("/v1/templates/sync", headers=shop.headers)
    assert synced.status_code == 200, synced.text
    template = {"name": "follow_up", "language": {"code": "en_US"},
                "variables": {"1": "{{contact.name}}"}}  # fmt: skip
    flow = {
        "name": "Later", "trigger": {"type": "keyword", "keywords": ["later", "never"]},
        "entry": "ok",
        "nodes": [
            {"id": "ok", "type": "message", "text": "I will write again", "next": "wait"},
            {"id": "wait", "type": "delay", "seconds": 2, "next": "check"},
            {"id": "check", "type": "condition", "rules": [{"when": {"all": [
                {"left": "last_input", "op": "equals", "right": "later"}]}, "next": "nudge"}],
             "else": "gone"},
            {"id": "nudge", "type": "message", "text": "Still there?", "template": template},
            {"id": "gone", "type": "message", "text": "Still there?",
             "template": {**template, "name": "no_such_template"}},
        ],
    }  # fmt: skip
    await shop.bot(flow)
    for customer, word, expected in (
        (new_customer(), "later", "template:follow_up"),
        (new_customer(), "never", None),
    ):
        await shop.says(customer, word)
        await shop.receives(customer, 1)
        await _close_window(shop, customer)
        if expected is not None:
            got = await shop.receives(customer, 2)
            assert got[1] == expected
            [sent] = [
                m for m in shop.w.sim.state.sent_messages(to=customer) if m.type == "template"
            ]
            params = sent.body["template"]["components"][0]["parameters"]
            assert params == [{"type": "text", "text": "Maria"}]
        else:
            # The template cannot be sent (PyTake knows no such approved template): people take
            # over instead of a free-form message WhatsApp would refuse.
            async def handed_off(c: str = customer) -> dict[str, Any] | None:
                conversation = await shop.conversation(c)
                return conversation if conversation["status"] == "pending" else None

            conversation = await eventually(handed_off)
            detail = await shop.api.get(
                f"/v1/conversations/{conversation['id']}", headers=shop.headers
            )
            assert detail.json()["bot_variables"]["handoff_reason"].startswith(
                "template_unavailable"
            )
            assert len(shop.received(customer)) == 1


async def test_a_flow_naming_a_template_that_is_not_approved_is_not_published(
    shop: Shop,
) -> None:
    """Issue 13: a bot node using a template that is not APPROVED is a 422 naming its status."""
    sim_template = shop.w.sim.register_template(
        shop.number.waba, "paused_offer", "en_US", body="Our offer", status="PAUSED"
    )
    synced = await shop.api.post("/v1/templates/sync", headers=shop.headers)
    assert synced.status_code == 200, synced.text
    flow = {
        "name": "Offer", "trigger": {"type": "keyword", "keywords": ["offer"]}, "entry": "send",
        "nodes": [{"id": "send", "type": "template",
                   "template": {"name": "paused_offer", "language": {"code": "en_US"}}}],
    }  # fmt: skip
    bot = await shop.api.post("/v1/chatbots", json={"name": "Offers"}, headers=shop.headers)
    base = f"/v1/chatbots/{bot.json()['id']}/flows"
    created = await shop.api.post(base, json=flow, headers=shop.headers)
    assert created.status_code == 201, created.text  # a draft may name any template
    publish = f"{base}/{created.json()['id']}/publish"
    refused = await shop.api.post(publish, headers=shop.headers)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "template_not_approved", error
    [detail] = error["details"]
    assert detail["field"] == "nodes.send.template" and "is PAUSED" in detail["message"], error
    # Once Meta approves it again, the same flow is published.
    await shop.w.sim.set_template_status(sim_template.id, "APPROVED")
    published = await eventually_published(shop, publish)
    assert published["version"] == 1


async def eventually_published(shop: Shop, url: str) -> dict[str, Any]:
    async def publish() -> dict[str, Any] | None:
        resp = await shop.api.post(url, headers=shop.headers)
        return resp.json() if resp.status_code == 201 else None

    return await eventually(publish)


async def _close_window(shop: Shop, customer: str) -> None:
    """As if the customer's last message were more than 24 hours old."""
    from datetime import timedelta

    from sqlalchemy import update

    from pytake.db import unit_of_work
    from pytake.models import Conversation
    from pytake.models.base import utcnow

    conversation = await shop.conversation(customer)
    async with unit_of_work(shop.w.app.state.session_factory) as s:
        await s.execute(
            update(Conversation)
            .where(Conversation.id == uuid.UUID(conversation["id"]))
            .values(window_expires_at=utcnow() - timedelta(minutes=1))
        )


JOIN = {
    "name": "Join", "trigger": {"type": "keyword", "keywords": ["join"]}, "entry": "tag",
    "nodes": [
        {"id": "tag", "type": "update_contact", "add_tags": ["vip"], "next": "done"},
        {"id": "done", "type": "end", "text": "Welcome to the club"},
    ],
}  # fmt: skip
STATUS = {
    "name": "Status", "trigger": {"type": "keyword", "keywords": ["status"]}, "entry": "check",
    "nodes": [
        {"id": "check", "type": "condition",
         "rules": [{"when": {"all": [{"left": "contact.tags", "op": "contains", "right": "VIP"}]},
                    "next": "vip"}],
         "else": "regular"},
        {"id": "vip", "type": "end", "text": "You are a VIP"},
        {"id": "regular", "type": "end", "text": "Regular customer"},
    ],
}  # fmt: skip


async def test_a_condition_reads_the_contacts_tags_as_stored(shop: Shop) -> None:
    await shop.bot(JOIN, STATUS)
    ivy = new_customer()
    await shop.says(ivy, "status")
    assert (await shop.receives(ivy, 1))[0] == "Regular customer"
    await shop.says(ivy, "join")
    assert (await shop.receives(ivy, 2))[1] == "Welcome to the club"
    await shop.says(ivy, "status")  # a new session: the tag read back from the contact
    assert (await shop.receives(ivy, 3))[2] == "You are a VIP"
