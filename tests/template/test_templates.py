"""/v1/templates over real HTTP against the simulator: create (Meta's own example bodies,
unchanged), list with filters, get, delete, scopes and tenant isolation."""

from __future__ import annotations

import uuid

import httpx

from tests.channel.support import create_evolution, create_official
from tests.conftest import create_api_key, register_org
from tests.message.sending.support import Shop
from tests.template.support import (
    META_AUTHENTICATION,
    META_FLOW_LOWERCASE_BODY,
    META_IMAGE_HEADER_CTA,
    META_TEXT_HEADER_QUICK_REPLIES,
    NAMED_ORDER,
    body_of,
    create,
    review,
)


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def test_meta_example_bodies_are_accepted_and_submitted_unchanged(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    with review(shop.sim, template_auto_review=False):
        for example in (
            META_TEXT_HEADER_QUICK_REPLIES,
            META_IMAGE_HEADER_CTA,
            META_AUTHENTICATION,
            META_FLOW_LOWERCASE_BODY,
            NAMED_ORDER,
        ):
            body = body_of(example, _name("meta"))
            created = await create(http, shop, body)
            assert created["status"] == "PENDING"
            assert created["meta_template_id"]
            assert created["business_account_id"] == shop.number.waba
            assert created["channel_id"] == shop.number.id
            at_meta = shop.sim.state.templates[(shop.number.waba, body["name"], body["language"])]
            assert at_meta.id == created["meta_template_id"]
            assert at_meta.category == example["category"]
            # What Meta got is the body's components, types upper-cased as Meta lists them.
            assert [c["type"] for c in at_meta.components] == [
                c["type"].upper() for c in example["components"]
            ]
            assert at_meta.components[0].get("text") == example["components"][0].get("text")
            assert at_meta.parameter_format == example.get("parameter_format", "POSITIONAL")


async def test_variables_are_listed_per_format(http: httpx.AsyncClient, shop: Shop) -> None:
    with review(shop.sim, template_auto_review=False):
        promo = await create(http, shop, body_of(META_TEXT_HEADER_QUICK_REPLIES, _name("promo")))
        offer = await create(http, shop, body_of(META_IMAGE_HEADER_CTA, _name("offer")))
        named = await create(http, shop, body_of(NAMED_ORDER, _name("order")))
    assert promo["variables"] == ["header.1", "1", "2", "3"]
    assert offer["variables"] == ["header", "1", "2", "3", "button.1"]
    assert named["variables"] == ["first_name", "order_number"]


async def test_list_filters_get_and_delete(http: httpx.AsyncClient, shop: Shop) -> None:
    with review(shop.sim, template_auto_review=False):
        first = await create(http, shop, body_of(META_TEXT_HEADER_QUICK_REPLIES, _name("a")))
        second = await create(
            http, shop, body_of(NAMED_ORDER, _name("b"), category="MARKETING", language="es")
        )
    listed = await http.get("/v1/templates", headers=shop.headers)
    assert listed.status_code == 200
    assert listed.json()["meta"]["total"] == 2
    for params, expected in (
        ({"name": first["name"]}, [first["id"]]),
        ({"language": "es"}, [second["id"]]),
        ({"category": "MARKETING"}, sorted([first["id"], second["id"]])),
        ({"status": "PENDING", "channel_id": shop.number.id}, sorted([first["id"], second["id"]])),
        ({"status": "APPROVED"}, []),
    ):
        resp = await http.get("/v1/templates", params=params, headers=shop.headers)
        assert resp.status_code == 200, resp.text
        assert sorted(t["id"] for t in resp.json()["data"]) == expected, params
    bad = await http.get("/v1/templates", params={"status": "GREAT"}, headers=shop.headers)
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"].endswith("status")

    got = await http.get(f"/v1/templates/{first['id']}", headers=shop.headers)
    assert got.status_code == 200 and got.json()["components"][1]["type"] == "BODY"

    gone = await http.delete(f"/v1/templates/{first['id']}", headers=shop.headers)
    assert gone.status_code == 204
    assert (shop.number.waba, first["name"], first["language"]) not in shop.sim.state.templates
    assert (await http.get(f"/v1/templates/{first['id']}", headers=shop.headers)).status_code == 404


async def test_a_name_taken_in_the_language_is_a_409(http: httpx.AsyncClient, shop: Shop) -> None:
    body = body_of(NAMED_ORDER, _name("dup"))
    with review(shop.sim, template_auto_review=False):
        await create(http, shop, body)
        again = await create(http, shop, body, expect=409)
        assert again["error"]["details"][0]["field"] == "name"
        # Meta itself refuses a name it already has (created in its own tools).
        shop.sim.register_template(shop.number.waba, "made_at_meta", "pt_BR", body="Oi")
        at_meta = await create(http, shop, body_of(NAMED_ORDER, "made_at_meta"), expect=409)
    assert "already" in at_meta["error"]["message"]
    listed = await http.get("/v1/templates", params={"name": "made_at_meta"}, headers=shop.headers)
    assert listed.json()["meta"]["total"] == 0  # nothing half-created is left behind


async def test_channel_rules(http: httpx.AsyncClient, shop: Shop) -> None:
    other = await register_org(http, "Other")
    theirs = await create_official(http, other, shop.sim, str(http.base_url))
    body = body_of(NAMED_ORDER, _name("chan"), channel_id=theirs.id)
    resp = await http.post("/v1/templates", json=body, headers=shop.headers)
    assert resp.status_code == 404, resp.text

    evolution = await create_evolution(http, shop.org, shop.sim)
    body["channel_id"] = evolution["id"]
    resp = await http.post("/v1/templates", json=body, headers=shop.headers)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "channel_id"

    lonely = await register_org(http, "No numbers")
    resp = await http.post(
        "/v1/templates", json=body_of(NAMED_ORDER, _name("none")), headers=lonely.headers
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "channel_id"


async def test_tenant_isolation(http: httpx.AsyncClient, shop: Shop) -> None:
    with review(shop.sim, template_auto_review=False):
        mine = await create(http, shop, body_of(NAMED_ORDER, _name("mine")))
    other = await register_org(http, "Other")
    path = f"/v1/templates/{mine['id']}"
    assert (await http.get(path, headers=other.headers)).status_code == 404
    assert (await http.delete(path, headers=other.headers)).status_code == 404
    preview = await http.post(f"{path}/preview", json={}, headers=other.headers)
    assert preview.status_code == 404
    listed = await http.get("/v1/templates", headers=other.headers)
    assert listed.json()["meta"]["total"] == 0
    assert (await http.get(path, headers=shop.headers)).status_code == 200


async def test_scopes(http: httpx.AsyncClient, shop: Shop) -> None:
    reader = await create_api_key(http, shop.org, ["templates:read"])
    writer = await create_api_key(http, shop.org, ["templates:write"])
    nothing = await create_api_key(http, shop.org, ["contacts:read"])
    body = body_of(NAMED_ORDER, _name("scoped"))

    def auth(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    assert (await http.get("/v1/templates", headers=auth(reader))).status_code == 200
    assert (await http.get("/v1/templates", headers=auth(nothing))).status_code == 403
    refused = await http.post("/v1/templates", json=body, headers=auth(reader))
    assert refused.status_code == 403
    assert "templates:write" in refused.json()["error"]["message"]
    with review(shop.sim, template_auto_review=False):
        made = await http.post("/v1/templates", json=body, headers=auth(writer))
    assert made.status_code == 201, made.text
    assert (await http.get("/v1/templates")).status_code == 401


async def test_templates_are_in_the_openapi_schema(http: httpx.AsyncClient) -> None:
    schema = (await http.get("/openapi.json")).json()
    assert {"/v1/templates", "/v1/templates/sync", "/v1/templates/{template_id}"} <= set(
        schema["paths"]
    )
    assert "post" in schema["paths"]["/v1/templates/{template_id}/preview"]


async def test_preview_over_http(http: httpx.AsyncClient, shop: Shop) -> None:
    with review(shop.sim, template_auto_review=False):
        named = await create(http, shop, body_of(NAMED_ORDER, _name("preview")))
    path = f"/v1/templates/{named['id']}/preview"
    resp = await http.post(path, json={"variables": {"first_name": "Ana"}}, headers=shop.headers)
    assert resp.status_code == 200, resp.text
    shown = resp.json()
    assert shown["body"] == "Obrigado, Ana! Seu pedido {{order_number}} foi confirmado."
    assert shown["missing"] == ["order_number"] and shown["complete"] is False
    assert shown["message"] is None
    full = await http.post(
        path,
        json={"variables": {"first_name": "Ana", "order_number": "77"}},
        headers=shop.headers,
    )
    assert full.json()["text"] == "Obrigado, Ana! Seu pedido 77 foi confirmado."
    assert full.json()["complete"] is True
    sendable = full.json()["message"]
    assert sendable["name"] == named["name"] and sendable["language"] == {"code": named["language"]}
    [body_params] = [c["parameters"] for c in sendable["components"] if c["type"] == "body"]
    assert {p.get("parameter_name"): p["text"] for p in body_params} == {
        "first_name": "Ana",
        "order_number": "77",
    }
    bad = await http.post(path, json={"variables": "Ana"}, headers=shop.headers)
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"].startswith("variables")
