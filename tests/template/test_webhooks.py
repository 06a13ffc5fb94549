"""Meta's account-level template webhooks (status, quality, category), signed with the
config's app secret and routed by its business_account_id, through the simulator."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from pytake.models import MessageTemplate
from tests.channel.support import post_meta
from tests.conftest import fixture_path
from tests.message.sending.support import Shop, eventually, new_customer
from tests.template.support import NAMED_ORDER, body_of, create, review


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def _get(http: httpx.AsyncClient, shop: Shop, template_id: str) -> dict[str, Any]:
    resp = await http.get(f"/v1/templates/{template_id}", headers=shop.headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_create_pending_approval_webhook_approved_then_send_with_variables(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    with review(shop.sim, template_auto_review=False):
        created = await create(http, shop, body_of(NAMED_ORDER, _name("order")))
    assert created["status"] == "PENDING"
    assert (await _get(http, shop, created["id"]))["status"] == "PENDING"

    # Meta approves: a signed message_template_status_update for the WABA, answered 200.
    assert await shop.sim.set_template_status(created["meta_template_id"], "APPROVED") == [200]
    approved = await _get(http, shop, created["id"])
    assert approved["status"] == "APPROVED" and approved["status_reason"] is None
    assert approved["status_updated_at"] is not None

    wa_id = new_customer()
    send = {
        "to": wa_id,
        "type": "template",
        "template": {
            "name": created["name"],
            "language": {"code": "pt_BR"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "parameter_name": "first_name", "text": "{{nome}}"},
                        {"type": "text", "parameter_name": "order_number", "text": "{{pedido}}"},
                    ],
                }
            ],
        },
        "variables": {"nome": "João", "pedido": "A-42"},
    }
    resp = await http.post("/v1/messages", json=send, headers=shop.headers)
    assert resp.status_code == 201, resp.text
    sent = shop.sim.state.find_sent(resp.json()["whatsapp_message_id"])
    assert sent is not None
    assert sent.body["template"]["components"][0]["parameters"] == [
        {"type": "text", "parameter_name": "first_name", "text": "João"},
        {"type": "text", "parameter_name": "order_number", "text": "A-42"},
    ]


async def test_automatic_review_approves_by_default(http: httpx.AsyncClient, shop: Shop) -> None:
    created = await create(http, shop, body_of(NAMED_ORDER, _name("auto")))
    await shop.sim.idle()
    got = await eventually(lambda: _status_is(http, shop, created["id"], "APPROVED"), timeout=10)
    assert got["meta_template_id"] == created["meta_template_id"]


async def _status_is(
    http: httpx.AsyncClient, shop: Shop, template_id: str, status: str
) -> dict[str, Any] | None:
    got = await _get(http, shop, template_id)
    return got if got["status"] == status else None


async def test_rejections_keep_metas_reason(http: httpx.AsyncClient, shop: Shop) -> None:
    body = body_of(NAMED_ORDER, _name("promo"))
    body["components"][0]["text"] = (
        "Olá {{first_name}}, isto não é um scam! Pedido {{order_number}}"
    )
    created = await create(http, shop, body)
    await shop.sim.idle()
    rejected = await _get(http, shop, created["id"])
    assert rejected["status"] == "REJECTED"
    assert rejected["status_reason"] == "ABUSIVE_CONTENT"
    assert "not allow" in rejected["rejection_info"]["reason"]
    listed = await http.get("/v1/templates", params={"status": "REJECTED"}, headers=shop.headers)
    assert [t["id"] for t in listed.json()["data"]] == [created["id"]]

    # Meta keeps a deleted template's name for 30 days: reusing it is rejected too.
    first = await create(http, shop, body_of(NAMED_ORDER, "reused_name"))
    await shop.sim.idle()
    assert (
        await http.delete(f"/v1/templates/{first['id']}", headers=shop.headers)
    ).status_code == 204
    again = await create(http, shop, body_of(NAMED_ORDER, "reused_name"))
    await shop.sim.idle()
    reused = await _get(http, shop, again["id"])
    assert reused["status"] == "REJECTED" and reused["status_reason"] == "INVALID_FORMAT"


async def test_pause_quality_and_category_updates(http: httpx.AsyncClient, shop: Shop) -> None:
    created = await create(http, shop, body_of(NAMED_ORDER, _name("rated")))
    await shop.sim.idle()
    meta_id = created["meta_template_id"]
    assert await shop.sim.set_template_quality(meta_id, "RED") == [200]
    assert await shop.sim.set_template_status(meta_id, "PAUSED", "Low quality") == [200]
    assert await shop.sim.set_template_category(meta_id, "MARKETING") == [200]
    got = await _get(http, shop, created["id"])
    assert got["quality_score"] == "RED"
    assert got["status"] == "PAUSED" and got["status_reason"] == "Low quality"
    assert got["category"] == "MARKETING" and got["previous_category"] == "UTILITY"
    # Reinstated by Meta: approved again.
    await shop.sim.set_template_status(meta_id, "REINSTATED")
    assert (await _get(http, shop, created["id"]))["status"] == "APPROVED"


def _status_body(waba: str, meta_id: str, event: str, at: int, **value: Any) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": waba,
                "time": at,
                "changes": [
                    {
                        "field": "message_template_status_update",
                        "value": {"event": event, "message_template_id": int(meta_id), **value},
                    }
                ],
            }
        ],
    }


async def test_late_and_duplicate_webhooks_are_harmless(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    created = await create(http, shop, body_of(NAMED_ORDER, _name("ordered")))
    await shop.sim.idle()
    waba, meta_id, secret = shop.number.waba, created["meta_template_id"], shop.number.app_secret
    paused = _status_body(waba, meta_id, "PAUSED", 4_000_000_000, reason="Low quality")
    for _ in range(2):  # a duplicate is the same change again
        assert (await post_meta(http, paused, secret)).status_code == 200
    assert (await _get(http, shop, created["id"]))["status"] == "PAUSED"
    # An older APPROVED arriving late does not undo the pause.
    late = _status_body(waba, meta_id, "APPROVED", 1_700_000_000)
    assert (await post_meta(http, late, secret)).status_code == 200
    assert (await _get(http, shop, created["id"]))["status"] == "PAUSED"
    # A wrong signature is refused and changes nothing.
    newer = _status_body(waba, meta_id, "APPROVED", 4_000_000_100)
    assert (await post_meta(http, newer, "not-the-secret")).status_code == 401
    assert (await _get(http, shop, created["id"]))["status"] == "PAUSED"
    assert (await post_meta(http, newer, secret)).status_code == 200
    assert (await _get(http, shop, created["id"]))["status"] == "APPROVED"


async def test_a_webhook_that_overtakes_metas_answer_finds_the_template_by_name(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI
) -> None:
    """The row is committed before Meta hears of the template; until Meta's answer is stored
    it has no Meta id, and the status webhook finds it by name and language."""
    template_id = uuid.uuid4()
    async with send_app.state.session_factory() as session, session.begin():
        session.add(
            MessageTemplate(
                id=template_id,
                organization_id=uuid.UUID(shop.org.id),
                channel_id=uuid.UUID(shop.number.id),
                business_account_id=shop.number.waba,
                name="in_flight",
                language="pt_BR",
                category="UTILITY",
                parameter_format="POSITIONAL",
                components=[{"type": "BODY", "text": "Oi"}],
                status="PENDING",
            )
        )
    body = _status_body(
        shop.number.waba,
        "987654321",
        "APPROVED",
        1_800_000_000,
        message_template_name="in_flight",
        message_template_language="pt-BR",
    )
    assert (await post_meta(http, body, shop.number.app_secret)).status_code == 200
    got = await _get(http, shop, str(template_id))
    assert got["status"] == "APPROVED" and got["meta_template_id"] == "987654321"


async def test_status_webhook_for_an_unknown_account_is_acknowledged(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    # Meta's own example, unchanged: entry id "0" is no account configured here.
    fixture = json.loads(fixture_path("meta-webhooks", "template_status.json").read_text())
    resp = await post_meta(http, fixture["approved"], "whatever-app-secret")
    assert resp.status_code == 200, resp.text
    assert resp.json()["events"] == 0
    # Unsigned, it is still refused; a message for an unknown number is still a 404.
    assert (await post_meta(http, fixture["approved"], None)).status_code in (401, 404)
    listed = await http.get("/v1/templates", headers=shop.headers)
    assert listed.json()["meta"]["total"] == 0


async def test_other_organisations_templates_are_untouched(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    """A webhook is applied to the organisations whose configuration it is signed for."""
    from tests.channel.support import create_official
    from tests.conftest import register_org

    other = await register_org(http, "Other")
    theirs = await create_official(http, other, shop.sim, str(http.base_url), is_default=True)
    with review(shop.sim, template_auto_review=False):
        mine = await create(http, shop, body_of(NAMED_ORDER, "same_name"))
        resp = await http.post(
            "/v1/templates", json=body_of(NAMED_ORDER, "same_name"), headers=other.headers
        )
    assert resp.status_code == 201
    body = _status_body(
        theirs.waba, resp.json()["meta_template_id"], "REJECTED", 1_900_000_000, reason="SCAM"
    )
    assert (await post_meta(http, body, theirs.app_secret)).status_code == 200
    assert (await _get(http, shop, mine["id"]))["status"] == "PENDING"
    got = await http.get(f"/v1/templates/{resp.json()['id']}", headers=other.headers)
    assert got.json()["status"] == "REJECTED" and got.json()["status_reason"] == "SCAM"


async def test_changes_record_template_updated_once(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI
) -> None:
    """Each real change is a `template.updated` event (outgoing webhooks, /ws); a duplicate
    or late webhook records nothing."""
    from sqlalchemy import select

    from pytake.events.types import CommittedEvent
    from pytake.models import OutboxEvent
    from pytake.realtime.frames import frame_for, required_scope

    hook = await http.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example/templates", "events": ["template.updated"]},
        headers=shop.headers,
    )
    assert hook.status_code == 201, hook.text
    with review(shop.sim, template_auto_review=False):
        created = await create(http, shop, body_of(NAMED_ORDER, _name("evented")))
    meta_id = created["meta_template_id"]
    await shop.sim.set_template_status(meta_id, "APPROVED")
    await shop.sim.set_template_status(meta_id, "APPROVED")  # Meta repeats itself
    await shop.sim.set_template_quality(meta_id, "YELLOW")
    async with send_app.state.session_factory() as session:
        events = list(
            await session.scalars(
                select(OutboxEvent)
                .where(
                    OutboxEvent.organization_id == uuid.UUID(shop.org.id),
                    OutboxEvent.type == "template.updated",
                )
                .order_by(OutboxEvent.id)
            )
        )
    assert [(e.payload["change"], e.payload["template"]["status"]) for e in events] == [
        ("status", "APPROVED"),
        ("quality", "APPROVED"),
    ]
    assert events[1].payload["template"]["quality_score"] == "YELLOW"
    assert events[0].payload["template"]["id"] == created["id"]
    deliveries = await http.get(
        f"/v1/webhooks/{hook.json()['id']}/deliveries", headers=shop.headers
    )
    assert [d["event"] for d in deliveries.json()["data"]] == ["template.updated"] * 2
    committed = CommittedEvent(1, shop.org.id, "template.updated", events[0].payload, "t")
    assert frame_for(committed)["type"] == "template"
    assert required_scope("template.updated") == ("templates:read",)
