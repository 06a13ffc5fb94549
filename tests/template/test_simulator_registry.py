"""The simulator's template registry over its own HTTP APIs: Graph creation and deletion as
Meta answers them, the review's verdict, and the control API that plays Meta's reviewers."""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx

from pytake.whatsapp.simulator import GRAPH_VERSION
from tests.message.sending.support import Shop, new_customer
from tests.template.support import NAMED_ORDER, body_of, review


async def _call(
    method: str, url: str, token: str | None = None, **kw: Any
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, headers=headers, **kw) as r,
    ):
        return r.status, await r.json()


async def test_graph_creation_review_and_deletion(shop: Shop) -> None:
    sim, number = shop.sim, shop.number
    url = f"{sim.base_url}/{GRAPH_VERSION}/{number.waba}/message_templates"
    body = body_of(NAMED_ORDER, "sim_order")
    with review(sim, template_auto_review=False):
        status, created = await _call("POST", url, number.token, json=body)
        assert status == 200 and created["status"] == "PENDING"
        assert created["category"] == "UTILITY" and created["id"].isdigit()
        # The same name in the same language is refused at once, as Meta does.
        status, dup = await _call("POST", url, number.token, json=body)
        assert status == 400
        assert (dup["error"]["code"], dup["error"]["error_subcode"]) == (100, 2388024)
    status, missing = await _call("POST", url, number.token, json={"language": "en_US"})
    assert status == 400 and missing["error"]["code"] == 100
    status, _ = await _call("POST", url, "EAAnot-a-token", json=body)
    assert status == 401
    status, other = await _call(
        "POST",
        f"{sim.base_url}/{GRAPH_VERSION}/not-my-waba/message_templates",
        number.token,
        json=body,
    )
    assert status == 400 and other["error"]["error_subcode"] == 33

    # The control API plays Meta's reviewers; the signed webhook reaches PyTake (200).
    control = f"{sim.base_url}/_sim/templates/{created['id']}"
    status, answer = await _call("POST", f"{control}/status", json={"status": "APPROVED"})
    assert status == 200 and answer == {"webhooks": [200]}
    status, listed = await _call("GET", url, number.token, params={"status": "APPROVED"})
    assert [t["name"] for t in listed["data"]] == ["sim_order"]
    status, answer = await _call("POST", f"{control}/quality", json={"score": "YELLOW"})
    assert answer == {"webhooks": [200]}
    status, _ = await _call("POST", f"{control}/status", json={})
    assert status == 400
    # The simulator is shared by the session: other tests' webhooks (statuses of their sends)
    # may land after this one, so look for this WABA's last one.
    [*_, change] = [
        entry
        for webhook in sim.state.webhook_log
        for entry in webhook["body"].get("entry", [])
        if entry.get("id") == number.waba
    ]
    assert "metadata" not in change["changes"][0]["value"]
    assert change["changes"][0]["field"] == "message_template_quality_update"

    status, deleted = await _call("DELETE", url, number.token, params={"name": "sim_order"})
    assert status == 200 and deleted == {"success": True}
    status, _ = await _call("DELETE", url, number.token, params={"name": "sim_order"})
    assert status == 400
    # The name stays taken for 30 days: a new template with it is rejected by the review.
    template = sim.graph.templates.create(number.waba, body)
    assert sim.graph.templates.verdict(template) == ("REJECTED", "INVALID_FORMAT")


async def test_the_phone_shows_a_template_as_the_customer_sees_it(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    shop.sim.register_template(
        shop.number.waba,
        "delivery",
        "pt_BR",
        components=[
            {"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}"},
            {"type": "BODY", "text": "Olá {{1}}, chega {{2}}."},
            {"type": "FOOTER", "text": "Loja"},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Ok"}]},
        ],
    )
    wa_id = new_customer()
    params = [{"type": "text", "text": "Ana"}, {"type": "text", "text": "amanhã"}]
    send = {
        "to": wa_id,
        "type": "template",
        "template": {
            "name": "delivery",
            "language": {"code": "pt_BR"},
            "components": [
                {"type": "header", "parameters": [{"type": "text", "text": "42"}]},
                {"type": "body", "parameters": params},
            ],
        },
    }
    resp = await http.post("/v1/messages", json=send, headers=shop.headers)
    assert resp.status_code == 201, resp.text
    [shown] = [m for m in shop.sim.thread(shop.number.pnid, wa_id) if m["direction"] == "out"]
    assert shown["rendered"] == {
        "text": "Pedido 42\nOlá Ana, chega amanhã.\nLoja\n[Ok]",
        "quick_replies": [{"payload": "Ok", "text": "Ok"}],
    }
