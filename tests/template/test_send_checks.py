"""Sends that name a template: PyTake refuses one it knows is not APPROVED, or whose
parameters do not match, before anything is sent; the simulator refuses what Meta would
(132001 unknown or unapproved, 132000 parameter count, 132015 paused)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.message.sending.support import Shop, new_customer
from tests.template.support import (
    META_TEXT_HEADER_QUICK_REPLIES,
    NAMED_ORDER,
    body_of,
    create,
    review,
)


def _send(
    name: str, language: str, components: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if components is not None:
        template["components"] = components
    return {"to": new_customer(), "type": "template", "template": template}


def _named_body(first: str = "Ana", order: str = "42") -> list[dict[str, Any]]:
    return [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "parameter_name": "first_name", "text": first},
                {"type": "text", "parameter_name": "order_number", "text": order},
            ],
        }
    ]


async def _sent_count(shop: Shop) -> int:
    return len(shop.sim.state.sent_messages(channel=shop.number.pnid))


async def test_a_paused_template_blocks_sends_with_a_clear_422(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    created = await create(http, shop, body_of(NAMED_ORDER, f"paused_{uuid.uuid4().hex[:6]}"))
    await shop.sim.idle()
    ok = await http.post(
        "/v1/messages", json=_send(created["name"], "pt_BR", _named_body()), headers=shop.headers
    )
    assert ok.status_code == 201, ok.text
    await shop.sim.set_template_status(created["meta_template_id"], "PAUSED", "Low quality")
    before = await _sent_count(shop)
    resp = await http.post(
        "/v1/messages", json=_send(created["name"], "pt_BR", _named_body()), headers=shop.headers
    )
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "template_not_approved"
    assert "PAUSED" in error["message"] and created["name"] in error["message"]
    assert error["template"]["status"] == "PAUSED"
    legacy = await http.post(
        "/api/v1/whatsapp/send",
        json={
            "to": "+" + new_customer(),
            "message_type": "template",
            "template_name": created["name"],
            "template_language": "pt_BR",
            "template_parameters": _named_body()[0]["parameters"],
        },
        headers=shop.headers,
    )
    assert legacy.status_code == 422, legacy.text
    assert legacy.json()["error"] == "template_not_approved"
    assert await _sent_count(shop) == before  # nothing reached WhatsApp


async def test_pending_and_rejected_templates_are_refused(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    with review(shop.sim, template_auto_review=False):
        pending = await create(http, shop, body_of(NAMED_ORDER, f"wait_{uuid.uuid4().hex[:6]}"))
    resp = await http.post(
        "/v1/messages", json=_send(pending["name"], "pt_BR", _named_body()), headers=shop.headers
    )
    assert resp.status_code == 422 and "PENDING" in resp.json()["error"]["message"]
    await shop.sim.set_template_status(
        pending["meta_template_id"], "REJECTED", "INCORRECT_CATEGORY"
    )
    resp = await http.post(
        "/v1/messages", json=_send(pending["name"], "pt_BR", _named_body()), headers=shop.headers
    )
    assert resp.status_code == 422
    assert "REJECTED (INCORRECT_CATEGORY)" in resp.json()["error"]["message"]


async def test_missing_extra_or_unnamed_parameters_are_422_before_sending(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    promo = await create(
        http, shop, body_of(META_TEXT_HEADER_QUICK_REPLIES, f"promo_{uuid.uuid4().hex[:6]}")
    )
    named = await create(http, shop, body_of(NAMED_ORDER, f"named_{uuid.uuid4().hex[:6]}"))
    await shop.sim.idle()
    header = {"type": "header", "parameters": [{"type": "text", "text": "Sale"}]}
    body3 = {"type": "body", "parameters": [{"type": "text", "text": v} for v in ("a", "b", "c")]}
    before = await _sent_count(shop)
    cases = [
        (_send(promo["name"], "en", [body3]), "template.components.header"),
        (
            _send(promo["name"], "en", [header, {**body3, "parameters": body3["parameters"][:2]}]),
            "template.components.body",
        ),
        (
            _send(
                promo["name"],
                "en",
                [
                    header,
                    body3,
                    {
                        "type": "button",
                        "sub_type": "quick_reply",
                        "index": 0,
                        "parameters": [
                            {"type": "payload", "payload": "x"},
                            {"type": "payload", "payload": "y"},
                        ],
                    },
                ],
            ),
            "template.components.button[0]",
        ),
        (
            _send(
                named["name"],
                "pt_BR",
                [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "a"},
                            {"type": "text", "text": "b"},
                        ],
                    }
                ],
            ),
            "template.components.body",
        ),
        (_send(named["name"], "pt_BR"), "template.components.body"),
    ]
    for body, field in cases:
        resp = await http.post("/v1/messages", json=body, headers=shop.headers)
        assert resp.status_code == 422, resp.text
        assert field in [d["field"] for d in resp.json()["error"]["details"]], resp.text
    assert await _sent_count(shop) == before
    good = await http.post(
        "/v1/messages", json=_send(promo["name"], "en", [header, body3]), headers=shop.headers
    )
    assert good.status_code == 201, good.text


async def test_simulator_refuses_what_meta_would(http: httpx.AsyncClient, shop: Shop) -> None:
    """Templates PyTake does not know go to Meta as given; Meta's codes come back."""
    waba = shop.number.waba
    shop.sim.register_template(waba, "only_at_meta", "pt_BR", body="Oi {{1}}")
    shop.sim.register_template(waba, "paused_at_meta", "pt_BR", body="Oi", status="PAUSED")
    shop.sim.register_template(waba, "pending_at_meta", "pt_BR", body="Oi", status="PENDING")
    one = [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]
    for body, code in (
        (_send("never_heard_of", "pt_BR"), 132001),
        (_send("pending_at_meta", "pt_BR"), 132001),
        (_send("only_at_meta", "pt_BR"), 132000),
        (_send("paused_at_meta", "pt_BR"), 132015),
    ):
        resp = await http.post("/v1/messages", json=body, headers=shop.headers)
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["whatsapp_error"]["code"] == code, body
    ok = await http.post(
        "/v1/messages", json=_send("only_at_meta", "pt_BR", one), headers=shop.headers
    )
    assert ok.status_code == 201, ok.text
