"""/v1/conversations and /api/v1/conversations/agent over HTTP, fed by the simulator."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import add_user, register_org
from tests.message.sending.support import Shop, eventually, new_customer


async def _conversation_of(http: httpx.AsyncClient, shop: Shop, wa_id: str) -> dict[str, Any]:
    resp = await http.get("/v1/conversations", params={"search": wa_id}, headers=shop.headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["meta"]["total"] == 1, resp.json()
    return dict(resp.json()["data"][0])


async def test_list_filters_and_fields(http: httpx.AsyncClient, shop: Shop) -> None:
    first, second = new_customer(), new_customer()
    await shop.customer_writes(first, "hello")
    await shop.customer_writes(second, "hi")
    conv = await _conversation_of(http, shop, first)
    assert conv["contact"]["whatsapp_id"] == "+" + first and conv["contact"]["name"] == "Maria"
    assert conv["status"] == "open" and conv["unread_count"] == 1 and conv["message_count"] == 1
    assert conv["window_expires_at"] and conv["last_message_at"] and conv["is_bot_active"] is True
    everything = await http.get("/v1/conversations", headers=shop.headers)
    assert everything.json()["meta"]["total"] == 2
    by_contact = await http.get(
        "/v1/conversations", params={"contact_id": conv["contact"]["id"]}, headers=shop.headers
    )
    assert [c["id"] for c in by_contact.json()["data"]] == [conv["id"]]
    agent_id, _ = await add_user(http, shop.org, "agent")
    patched = await http.patch(
        f"/v1/conversations/{conv['id']}", json={"assigned_to": agent_id}, headers=shop.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["status"] == "assigned"
    assert patched.json()["assigned_to"]["id"] == agent_id
    for params, expected in (
        ({"status": "assigned"}, [conv["id"]]),
        ({"assigned_to": agent_id}, [conv["id"]]),
        ({"status": "resolved"}, []),
    ):
        resp = await http.get("/v1/conversations", params=params, headers=shop.headers)
        assert [c["id"] for c in resp.json()["data"]] == expected, params
    bad = await http.get("/v1/conversations", params={"status": "lost"}, headers=shop.headers)
    assert bad.status_code == 422


async def test_list_filters_unassigned_and_by_tag(http: httpx.AsyncClient, shop: Shop) -> None:
    first, second = new_customer(), new_customer()
    await shop.customer_writes(first, "hello")
    await shop.customer_writes(second, "hi")
    one, two = await _conversation_of(http, shop, first), await _conversation_of(http, shop, second)
    agent_id, _ = await add_user(http, shop.org, "agent")
    for conv, body in ((one, {"assigned_to": agent_id}), (two, {"tags": ["vip", "billing"]})):
        resp = await http.patch(f"/v1/conversations/{conv['id']}", json=body, headers=shop.headers)
        assert resp.status_code == 200, resp.text
    for params, expected in (
        ({"unassigned": "true"}, [two["id"]]),
        ({"unassigned": "false"}, sorted([one["id"], two["id"]])),
        ({"tag": "vip"}, [two["id"]]),
        ({"tag": "billing", "unassigned": "true"}, [two["id"]]),
        ({"tag": "vi"}, []),  # a whole tag, not a fragment
        ({"tag": "vip", "assigned_to": agent_id}, []),
    ):
        resp = await http.get("/v1/conversations", params=params, headers=shop.headers)
        assert resp.status_code == 200, resp.text
        assert sorted(c["id"] for c in resp.json()["data"]) == expected, params
        assert resp.json()["meta"]["total"] == len(expected)
    empty = await http.get("/v1/conversations", params={"tag": ""}, headers=shop.headers)
    assert empty.status_code == 422


async def test_detail_lists_the_latest_page_oldest_first_and_pages_back(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    wa_id = new_customer()
    for n in range(5):
        await shop.customer_writes(wa_id, f"msg {n}")
    conv = await _conversation_of(http, shop, wa_id)
    page = await http.get(
        f"/v1/conversations/{conv['id']}", params={"messages_limit": 2}, headers=shop.headers
    )
    assert page.status_code == 200, page.text
    body = page.json()
    # As the document shows a thread: the customer's first message above the reply to it.
    assert [m["content"]["text"] for m in body["messages"]] == ["msg 3", "msg 4"]
    assert body["messages_meta"]["has_more"] is True
    pages = []
    cursor = body["messages_meta"]["next_cursor"]
    while cursor:
        older = await http.get(
            f"/v1/conversations/{conv['id']}",
            params={"messages_limit": 2, "messages_cursor": cursor},
            headers=shop.headers,
        )
        assert older.status_code == 200, older.text
        pages.append([m["content"]["text"] for m in older.json()["messages"]])
        cursor = older.json()["messages_meta"]["next_cursor"]
    assert pages == [["msg 1", "msg 2"], ["msg 0"]]
    assert older.json()["messages_meta"] == {"limit": 2, "has_more": False, "next_cursor": None}


async def test_assignment_rules(http: httpx.AsyncClient, shop: Shop) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    conv = await _conversation_of(http, shop, wa_id)
    url = f"/v1/conversations/{conv['id']}"
    viewer_id, _ = await add_user(http, shop.org, "viewer")
    other = await register_org(http, "Elsewhere")
    outsider_id, _ = await add_user(http, other, "agent")
    for user_id in (viewer_id, outsider_id):
        resp = await http.patch(url, json={"assigned_to": user_id}, headers=shop.headers)
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["details"][0]["field"] == "assigned_to"
    # Another organisation cannot see or change the conversation at all.
    assert (await http.get(url, headers=other.headers)).status_code == 404
    assert (await http.patch(url, json={"tags": ["x"]}, headers=other.headers)).status_code == 404
    done = await http.patch(
        url, json={"status": "resolved", "tags": ["vip", "vip", "billing"]}, headers=shop.headers
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "resolved" and done.json()["resolved_at"]
    assert done.json()["tags"] == ["vip", "billing"]


async def test_scopes(http: httpx.AsyncClient, shop: Shop) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    conv = await _conversation_of(http, shop, wa_id)
    _, viewer_token = await add_user(http, shop.org, "viewer")
    viewer = {"Authorization": f"Bearer {viewer_token}"}
    assert (await http.get(f"/v1/conversations/{conv['id']}", headers=viewer)).status_code == 200
    patch = await http.patch(f"/v1/conversations/{conv['id']}", json={"tags": []}, headers=viewer)
    assert patch.status_code == 403


async def test_reply_read_and_window(http: httpx.AsyncClient, shop: Shop) -> None:
    wa_id = new_customer()
    inbound = await shop.customer_writes(wa_id)
    conv = await _conversation_of(http, shop, wa_id)
    reply = await http.post(
        f"/v1/conversations/{conv['id']}/messages",
        json={"type": "text", "text": {"body": "Hello {{contact.first_name}}"}},
        headers=shop.headers,
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["conversation_id"] == conv["id"]
    sent = shop.sim.state.find_sent(reply.json()["whatsapp_message_id"])
    assert sent is not None and sent.body["text"]["body"] == "Hello Maria"
    read = await http.post(f"/v1/conversations/{conv['id']}/read", headers=shop.headers)
    assert read.status_code == 200, read.text
    assert read.json() == {"conversation_id": conv["id"], "marked_read": 1, "unread_count": 0}
    assert {"channel": shop.number.pnid, "message_id": inbound, "typing": False} in (
        shop.sim.state.read_marks
    )
    after = await http.get(f"/v1/conversations/{conv['id']}", headers=shop.headers)
    assert after.json()["unread_count"] == 0 and after.json()["message_count"] == 2


async def test_resolved_conversation_reopens_on_new_inbound(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    conv = await _conversation_of(http, shop, wa_id)
    await http.patch(
        f"/v1/conversations/{conv['id']}", json={"status": "resolved"}, headers=shop.headers
    )
    await shop.customer_writes(wa_id, "me again")

    async def reopened() -> bool:
        got = (await http.get(f"/v1/conversations/{conv['id']}", headers=shop.headers)).json()
        return bool(got["status"] == "open")

    await eventually(reopened, timeout=3)
    assert (await _conversation_of(http, shop, wa_id))["id"] == conv["id"]


async def test_legacy_agent_conversations_shape(http: httpx.AsyncClient, shop: Shop) -> None:
    wa_id, other = new_customer(), new_customer()
    await shop.customer_writes(wa_id)
    await shop.customer_writes(other)
    conv = await _conversation_of(http, shop, wa_id)
    agent_id, _ = await add_user(http, shop.org, "agent")
    await http.patch(
        f"/v1/conversations/{conv['id']}", json={"assigned_to": agent_id}, headers=shop.headers
    )
    resp = await http.get(
        "/api/v1/conversations/agent",
        params={"agent_id": agent_id, "status": "active"},
        headers=shop.headers,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["total"] == 1 and body["limit"] == 50 and body["offset"] == 0
    (item,) = body["conversations"]
    assert set(item) == {
        "id",
        "customer_phone",
        "agent_id",
        "status",
        "started_at",
        "last_message_at",
        "message_count",
    }
    assert item["customer_phone"] == "+" + wa_id and item["status"] == "active"
    assert item["agent_id"] == agent_id
    pending = await http.get(
        "/api/v1/conversations/agent", params={"status": "pending"}, headers=shop.headers
    )
    assert [c["customer_phone"] for c in pending.json()["conversations"]] == ["+" + other]
    bad = await http.get(
        "/api/v1/conversations/agent", params={"status": "nope"}, headers=shop.headers
    )
    assert bad.status_code == 422 and bad.json()["error"] == "validation_error"
