"""/v1/chatbots and /api/v1/flows: shapes, validation 422s naming node and field, publishing
and versions, scopes and tenant isolation."""

from __future__ import annotations

import copy
import uuid

import httpx

from tests.chatbot.engine.test_validate import LEAD_CAPTURE
from tests.conftest import Org, create_api_key

SUPPORT_FLOW = {
    "name": "Support Flow",
    "description": "Customer support automation",
    "category": "support",
    "trigger": "keyword",
    "trigger_value": "help",
    "steps": [
        {"type": "message", "content": "How can I help you today?",
         "options": ["Technical Issue", "Billing", "General Question"]},
        {"type": "condition", "conditions": [{"if": "Technical Issue", "then": "transfer_to_tech"}]},
    ],
    "is_active": True,
}  # fmt: skip


async def create_bot(client: httpx.AsyncClient, org: Org, **extra: object) -> dict:
    body = {"name": "Suporte Técnico", "description": "Bot de suporte",
            "welcome_message": "Bem-vindo ao suporte!", "is_active": True, **extra}  # fmt: skip
    resp = await client.post("/v1/chatbots", json=body, headers=org.headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_create_list_get_update_delete_chatbot(client: httpx.AsyncClient, org: Org) -> None:
    bot = await create_bot(client, org)
    assert bot["settings"]["welcome_message"] == "Bem-vindo ao suporte!"
    assert bot["settings"]["handoff_enabled"] is True and bot["flows"] == []
    listed = (await client.get("/v1/chatbots", headers=org.headers)).json()["data"]
    assert [b["id"] for b in listed] == [bot["id"]]
    assert listed[0]["statistics"] == {"total_conversations": 0, "total_messages": 0}
    assert listed[0]["is_published"] is False
    resp = await client.patch(
        f"/v1/chatbots/{bot['id']}",
        json={"fallback_message": "Não entendi", "settings": {"session_timeout_minutes": 30}},
        headers=org.headers,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["settings"]["fallback_message"] == "Não entendi"
    assert resp.json()["settings"]["session_timeout_minutes"] == 30
    assert (
        await client.delete(f"/v1/chatbots/{bot['id']}", headers=org.headers)
    ).status_code == 204
    assert (await client.get(f"/v1/chatbots/{bot['id']}", headers=org.headers)).status_code == 404


async def test_bad_chatbot_input_names_the_field(client: httpx.AsyncClient, org: Org) -> None:
    resp = await client.post("/v1/chatbots", json={"description": "x"}, headers=org.headers)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"].endswith("name")
    bot = await create_bot(client, org)
    resp = await client.patch(
        f"/v1/chatbots/{bot['id']}", json={"settings": {"timezone": "Mars/Olympus"}},
        headers=org.headers,
    )  # fmt: skip
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "settings.timezone"


async def test_flow_crud_publish_versions(client: httpx.AsyncClient, org: Org) -> None:
    bot = await create_bot(client, org)
    base = f"/v1/chatbots/{bot['id']}/flows"
    flow_in = copy.deepcopy(LEAD_CAPTURE)
    flow_in["nodes"][0]["position"] = {"x": 10, "y": 20}
    flow_in["editor"] = {"zoom": 1.5}  # fields the format does not name are kept
    resp = await client.post(base, json=flow_in, headers=org.headers)
    assert resp.status_code == 201, resp.text
    flow = resp.json()
    assert flow["is_active"] is False and flow["version"] is None and flow["warnings"] == []
    assert flow["nodes"] == flow_in["nodes"] and flow["editor"] == {"zoom": 1.5}
    assert flow["trigger"] == flow_in["trigger"] and flow["entry"] == "ask_email"
    flow_url = f"{base}/{flow['id']}"
    resp = await client.post(f"{flow_url}/publish", headers=org.headers)
    assert resp.status_code == 201, resp.text
    assert resp.json()["version"] == 1
    got = (await client.get(flow_url, headers=org.headers)).json()
    assert got["is_active"] is True and got["version"] == 1
    assert got["has_unpublished_changes"] is False
    changed = copy.deepcopy(flow_in)
    changed["nodes"][3]["text"] = "Tchau!"
    resp = await client.put(flow_url, json=changed, headers=org.headers)
    assert resp.status_code == 200 and resp.json()["has_unpublished_changes"] is True
    assert (await client.post(f"{flow_url}/publish", headers=org.headers)).json()["version"] == 2
    versions = (await client.get(f"{flow_url}/versions", headers=org.headers)).json()["data"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["nodes"][3]["text"] == "Bye!" and versions[0]["nodes"][3]["text"] == "Tchau!"
    detail = (await client.get(f"/v1/chatbots/{bot['id']}", headers=org.headers)).json()
    assert detail["is_published"] is True
    assert [(f["id"], f["type"], f["is_active"]) for f in detail["flows"]] == [
        (flow["id"], "main", True)
    ]
    assert len(detail["flows"][0]["nodes"]) == 4
    listed = (await client.get(base, headers=org.headers)).json()["data"]
    assert [f["id"] for f in listed] == [flow["id"]]
    stats = (await client.get(f"{flow_url}/stats", headers=org.headers)).json()
    assert [v["version"] for v in stats["versions"]] == [2, 1]
    assert stats["versions"][0]["nodes"][0] == {
        "node": "ask_email", "type": "question", "entered": 0, "completed": 0, "dropped": 0,
    }  # fmt: skip
    assert (await client.delete(flow_url, headers=org.headers)).status_code == 204
    assert (await client.get(flow_url, headers=org.headers)).status_code == 404


async def test_invalid_flow_is_a_422_naming_node_and_field(
    client: httpx.AsyncClient, org: Org
) -> None:
    bot = await create_bot(client, org)
    flow_in = copy.deepcopy(LEAD_CAPTURE)
    flow_in["nodes"][1]["buttons"][0]["title"] = "Talk to a sales person now"
    flow_in["nodes"][0].pop("variable")
    resp = await client.post(f"/v1/chatbots/{bot['id']}/flows", json=flow_in, headers=org.headers)
    assert resp.status_code == 422
    details = resp.json()["error"]["details"]
    assert {d["field"] for d in details} == {
        "nodes.ask_email.variable",
        "nodes.menu.buttons[0].title",
    }
    assert all("'ask_email'" in d["message"] or "'menu'" in d["message"] for d in details)


async def test_unreachable_nodes_come_back_as_warnings(client: httpx.AsyncClient, org: Org) -> None:
    bot = await create_bot(client, org)
    flow_in = copy.deepcopy(LEAD_CAPTURE)
    flow_in["nodes"].append({"id": "lost", "type": "end"})
    resp = await client.post(f"/v1/chatbots/{bot['id']}/flows", json=flow_in, headers=org.headers)
    assert resp.status_code == 201
    assert resp.json()["warnings"] == [
        {
            "node": "lost",
            "field": "nodes.lost",
            "message": "Node 'lost' cannot be reached from the entry",
        }
    ]


async def test_other_organisation_sees_404_everywhere(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    bot = await create_bot(client, org)
    flow = (
        await client.post(f"/v1/chatbots/{bot['id']}/flows", json=LEAD_CAPTURE, headers=org.headers)
    ).json()
    bot_url = f"/v1/chatbots/{bot['id']}"
    flow_url = f"{bot_url}/flows/{flow['id']}"
    h = other_org.headers
    assert (await client.get(bot_url, headers=h)).status_code == 404
    assert (await client.patch(bot_url, json={"name": "x"}, headers=h)).status_code == 404
    assert (await client.delete(bot_url, headers=h)).status_code == 404
    assert (await client.get(f"{bot_url}/flows", headers=h)).status_code == 404
    assert (await client.post(f"{bot_url}/flows", json=LEAD_CAPTURE, headers=h)).status_code == 404
    for path in (flow_url, f"{flow_url}/versions", f"{flow_url}/stats"):
        assert (await client.get(path, headers=h)).status_code == 404
    assert (await client.put(flow_url, json=LEAD_CAPTURE, headers=h)).status_code == 404
    assert (await client.post(f"{flow_url}/publish", headers=h)).status_code == 404
    assert (await client.delete(flow_url, headers=h)).status_code == 404
    assert (await client.get("/v1/chatbots", headers=h)).json()["data"] == []
    assert (await client.get("/api/v1/flows", headers=h)).json()["total"] == 0
    # A flow id under another chatbot of the same organisation is not found either.
    second = await create_bot(client, org)
    wrong = f"/v1/chatbots/{second['id']}/flows/{flow['id']}"
    assert (await client.get(wrong, headers=org.headers)).status_code == 404
    assert (
        await client.get(f"{bot_url}/flows/{uuid.uuid4()}", headers=org.headers)
    ).status_code == 404


async def test_scopes(client: httpx.AsyncClient, org: Org) -> None:
    reader = {"Authorization": f"Bearer {await create_api_key(client, org, ['chatbots:read'])}"}
    assert (await client.get("/v1/chatbots", headers=reader)).status_code == 200
    resp = await client.post("/v1/chatbots", json={"name": "x"}, headers=reader)
    assert resp.status_code == 403
    assert (
        await client.post("/api/v1/flows", json=SUPPORT_FLOW, headers=reader)
    ).status_code == 403
    nobody = {"Authorization": f"Bearer {await create_api_key(client, org, ['contacts:read'])}"}
    assert (await client.get("/v1/chatbots", headers=nobody)).status_code == 403
    assert (await client.get("/api/v1/flows", headers=nobody)).status_code == 403


async def test_legacy_flows_create_and_list(client: httpx.AsyncClient, org: Org) -> None:
    resp = await client.post("/api/v1/flows", json=SUPPORT_FLOW, headers=org.headers)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert set(created) == {"id", "name", "description", "category", "is_active", "created_at"}
    assert (created["name"], created["category"], created["is_active"]) == (
        "Support Flow", "support", True,
    )  # fmt: skip
    draft = {**SUPPORT_FLOW, "name": "Draft", "category": "sales", "is_active": False}
    assert (await client.post("/api/v1/flows", json=draft, headers=org.headers)).status_code == 201
    listed = (await client.get("/api/v1/flows", headers=org.headers)).json()
    assert listed["total"] == 2
    assert listed["flows"][0]["trigger"] == "keyword"
    active = (await client.get("/api/v1/flows?active=true", headers=org.headers)).json()
    assert [f["name"] for f in active["flows"]] == ["Support Flow"]
    sales = (await client.get("/api/v1/flows?category=sales", headers=org.headers)).json()
    assert [f["name"] for f in sales["flows"]] == ["Draft"]
    # The default chatbot holds them, as graph flows the /v1 API reads.
    [bot] = (await client.get("/v1/chatbots", headers=org.headers)).json()["data"]
    flows = (await client.get(f"/v1/chatbots/{bot['id']}/flows", headers=org.headers)).json()
    support = next(f for f in flows["data"] if f["name"] == "Support Flow")
    assert support["trigger"] == {"type": "keyword", "keywords": ["help"], "match": "exact"}
    kinds = {n["id"]: n["type"] for n in support["nodes"]}
    assert kinds["step_1"] == "question" and kinds["step_2"] == "condition"
    assert kinds["__transfer_to_tech"] == "handoff"


async def test_legacy_flow_bad_input_names_the_field(client: httpx.AsyncClient, org: Org) -> None:
    bad_then = copy.deepcopy(SUPPORT_FLOW)
    bad_then["steps"][1]["conditions"][0]["then"] = "somewhere"
    resp = await client.post("/api/v1/flows", json=bad_then, headers=org.headers)
    assert resp.status_code == 422
    assert resp.json()["details"]["field"] == "steps[1].conditions[0].then"
    no_value = {**SUPPORT_FLOW, "trigger_value": None}
    resp = await client.post("/api/v1/flows", json=no_value, headers=org.headers)
    assert resp.status_code == 422 and resp.json()["details"]["field"] == "trigger_value"
    bad_type = {**SUPPORT_FLOW, "steps": [{"type": "dance"}]}
    resp = await client.post("/api/v1/flows", json=bad_type, headers=org.headers)
    assert resp.status_code == 422 and resp.json()["details"]["field"] == "steps[0].type"
    resp = await client.post(
        "/api/v1/flows", json={**SUPPORT_FLOW, "steps": []}, headers=org.headers
    )
    assert resp.status_code == 422 and resp.json()["details"]["field"].endswith("steps")
