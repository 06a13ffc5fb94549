"""/v1/campaigns as a resource: the documented shapes, audiences counted at creation, every
validation a 422 naming the field, other organisations' campaigns a 404, scopes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.campaign.support import Campaigns
from tests.conftest import create_api_key, register_org


def _fields(resp: httpx.Response) -> set[str]:
    return {d["field"] for d in resp.json()["error"].get("details", [])}


async def _promo(camps: Campaigns, **extra: Any) -> dict[str, Any]:
    template = await camps.template(body="Oi {{1}}, cupom {{2}}")
    body = {
        "name": "Black Friday",
        "target_type": "tags",
        "target_filters": {"tags": ["vip"]},
        "template_id": str(template.id),
        "message_content": {"variables": {"1": "{{contact.name}}", "2": "BF2025"}},
        "send_rate_limit": 100,
    }
    body.update(extra)
    return body


async def test_create_counts_the_audience_by_tags_and_reports_who_is_left_out(
    camps: Campaigns,
) -> None:
    await camps.contact("Ana", tags=["vip", "active"])
    await camps.contact("Bia", tags=["vip", "active"])
    await camps.contact("Caio", tags=["vip"])  # lacks "active"
    await camps.contact("Duda", tags=["vip", "active"], opt_in=False)
    blocked = await camps.contact("Edu", tags=["vip", "active"])
    resp = await camps.http.post(f"/v1/contacts/{blocked['id']}/block", headers=camps.headers)
    assert resp.status_code == 200, resp.text
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    body = await _promo(
        camps,
        target_filters={"tags": ["vip", "active"]},
        scheduled_at=at.isoformat().replace("+00:00", "Z"),
    )
    created = await camps.create(body)
    assert created["status"] == "scheduled"
    assert created["total_recipients"] == 2
    assert created["skipped_reasons"] == {"opted_out": 1, "blocked": 1}
    assert created["skipped_count"] == 2
    assert created["scheduled_at"].startswith(at.strftime("%Y-%m-%dT%H:%M:%S"))
    for key in ("id", "name", "created_at", "sent_count", "delivery_rate", "reply_rate"):
        assert key in created
    got = await camps.get(created["id"])
    assert got["total_recipients"] == 2 and got["status"] == "scheduled"


async def test_audience_by_contact_ids_counts_deleted_and_unknown(camps: Campaigns) -> None:
    ana = await camps.contact("Ana")
    gone = await camps.contact("Gone")
    resp = await camps.http.delete(f"/v1/contacts/{gone['id']}", headers=camps.headers)
    assert resp.status_code == 204
    unknown = "00000000-0000-4000-8000-000000000001"
    body = await _promo(
        camps,
        target_type="contacts",
        target_filters={"contact_ids": [ana["id"], gone["id"], unknown, ana["id"]]},
    )
    created = await camps.create(body)
    assert created["status"] == "draft"
    assert created["total_recipients"] == 1
    assert created["skipped_reasons"] == {"deleted": 1, "not_found": 1}


async def test_audience_by_segment_search_tags_attributes(camps: Campaigns) -> None:
    await camps.contact("Maria Sampa", tags=["lead"], attributes={"city": "SP", "vip": True})
    await camps.contact("Maria Rio", tags=["lead"], attributes={"city": "RJ", "vip": True})
    await camps.contact("Maria Sampa 2", tags=["lead"], attributes={"city": "SP", "vip": False})
    await camps.contact("João Sampa", tags=["lead"], attributes={"city": "SP", "vip": True})
    body = await _promo(
        camps,
        target_type="segment",
        target_filters={
            "search": "maria",
            "tags": ["lead"],
            "attributes": {"city": "SP", "vip": True},
            "opt_in": True,
        },
    )
    created = await camps.create(body)
    assert created["total_recipients"] == 1


async def test_validation_names_each_field(camps: Campaigns) -> None:
    await camps.contact("Ana", tags=["vip"])
    body = await _promo(camps)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"scheduled_at": past}, "scheduled_at"),
        ({"send_rate_limit": 0}, "send_rate_limit"),
        ({"send_rate_limit": -5}, "send_rate_limit"),
        ({"target_filters": {"tags": ["nobody-has-this"]}}, "target_filters"),
        ({"target_filters": {}}, "target_filters.tags"),
        ({"target_type": "contacts", "target_filters": {}}, "target_filters.contact_ids"),
        ({"template_id": "00000000-0000-4000-8000-000000000009"}, "template_id"),
        ({"message_content": {"variables": {"1": "x"}}}, "message_content.variables.2"),
        ({"scheduled_at": "2030-01-01T10:00:00"}, "scheduled_at"),  # no time zone
        ({"target_type": "everyone"}, "target_type"),
    ]
    for change, field in cases:
        resp = await camps.http.post(
            "/v1/campaigns", json={**body, **change}, headers=camps.headers
        )
        assert resp.status_code == 422, (change, resp.text)
        assert field in _fields(resp), (change, resp.json())
    pending = await camps.template(status="PENDING")
    resp = await camps.http.post(
        "/v1/campaigns",
        json={**body, "template_id": str(pending.id)},
        headers=camps.headers,
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "template_not_approved"
    assert "template_id" in _fields(resp)


async def test_missing_variables_are_each_named(camps: Campaigns) -> None:
    await camps.contact("Ana", tags=["vip"])
    body = await _promo(camps, message_content={"variables": {}})
    resp = await camps.http.post("/v1/campaigns", json=body, headers=camps.headers)
    assert resp.status_code == 422
    assert _fields(resp) == {"message_content.variables.1", "message_content.variables.2"}


async def test_template_by_name_and_named_parameters(camps: Campaigns) -> None:
    await camps.contact("Ana", tags=["vip"])
    template = await camps.template(
        body="Oi {{first_name}}, seu cupom é {{code}}", parameter_format="NAMED"
    )
    body = {
        "name": "By name",
        "target_type": "tags",
        "target_filters": {"tags": ["vip"]},
        "message_content": {
            "template": template.name,
            "variables": {"first_name": "{{contact.name}}", "code": "BF2025"},
        },
    }
    created = await camps.create(body)
    assert created["template_id"] == str(template.id)
    assert created["template_name"] == template.name
    resp = await camps.http.post(
        "/v1/campaigns",
        json={**body, "message_content": {"template": "no_such_template"}},
        headers=camps.headers,
    )
    assert resp.status_code == 422
    assert "message_content.template" in _fields(resp)


async def test_other_organisations_campaigns_are_not_found(camps: Campaigns) -> None:
    await camps.contact("Ana", tags=["vip"])
    created = await camps.create(await _promo(camps))
    other = await register_org(camps.http, "Other shop")
    cid = created["id"]
    for method, path in (
        ("GET", f"/v1/campaigns/{cid}"),
        ("PATCH", f"/v1/campaigns/{cid}"),
        ("DELETE", f"/v1/campaigns/{cid}"),
        ("POST", f"/v1/campaigns/{cid}/start"),
        ("POST", f"/v1/campaigns/{cid}/cancel"),
        ("GET", f"/v1/campaigns/{cid}/recipients"),
    ):
        resp = await camps.http.request(
            method, path, headers=other.headers, json={} if method == "PATCH" else None
        )
        assert resp.status_code == 404, (method, path, resp.text)
    listed = await camps.http.get("/v1/campaigns", headers=other.headers)
    assert listed.json()["data"] == []


async def test_scopes(camps: Campaigns) -> None:
    await camps.contact("Ana", tags=["vip"])
    created = await camps.create(await _promo(camps))
    reader = await create_api_key(camps.http, camps.shop.org, ["campaigns:read"])
    headers = {"Authorization": f"Bearer {reader}"}
    assert (
        await camps.http.get(f"/v1/campaigns/{created['id']}", headers=headers)
    ).status_code == 200
    resp = await camps.http.post("/v1/campaigns", json=await _promo(camps), headers=headers)
    assert resp.status_code == 403
    resp = await camps.http.post(f"/v1/campaigns/{created['id']}/start", headers=headers)
    assert resp.status_code == 403
    nobody = await create_api_key(camps.http, camps.shop.org, ["contacts:read"])
    resp = await camps.http.get("/v1/campaigns", headers={"Authorization": f"Bearer {nobody}"})
    assert resp.status_code == 403


async def test_patch_while_draft_delete_only_draft_and_list_filters(camps: Campaigns) -> None:
    await camps.contact("Ana", tags=["vip"])
    await camps.contact("Bia", tags=["vip", "new"])
    created = await camps.create(await _promo(camps))
    cid = created["id"]
    resp = await camps.http.patch(
        f"/v1/campaigns/{cid}",
        json={"name": "Renamed", "target_filters": {"tags": ["vip", "new"]}},
        headers=camps.headers,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["name"] == "Renamed"
    assert resp.json()["total_recipients"] == 1
    resp = await camps.http.patch(
        f"/v1/campaigns/{cid}", json={"send_rate_limit": 0}, headers=camps.headers
    )
    assert resp.status_code == 422 and "send_rate_limit" in _fields(resp)
    listed = await camps.http.get(
        "/v1/campaigns", params={"status": "draft"}, headers=camps.headers
    )
    assert [c["id"] for c in listed.json()["data"]] == [cid]
    assert listed.json()["meta"]["total"] == 1
    assert (
        await camps.http.get("/v1/campaigns", params={"status": "running"}, headers=camps.headers)
    ).json()["data"] == []
    await camps.act(cid, "cancel")
    resp = await camps.http.patch(f"/v1/campaigns/{cid}", json={"name": "x"}, headers=camps.headers)
    assert resp.status_code == 409
    resp = await camps.http.delete(f"/v1/campaigns/{cid}", headers=camps.headers)
    assert resp.status_code == 409
    second = await camps.create(await _promo(camps))
    resp = await camps.http.delete(f"/v1/campaigns/{second['id']}", headers=camps.headers)
    assert resp.status_code == 204
    resp = await camps.http.get(f"/v1/campaigns/{second['id']}", headers=camps.headers)
    assert resp.status_code == 404


async def test_openapi_documents_the_rate_limit_in_messages_per_second(camps: Campaigns) -> None:
    schema = (await camps.http.get("/openapi.json")).json()
    create = schema["components"]["schemas"]["CampaignCreateIn"]["properties"]
    assert "per second" in create["send_rate_limit"]["description"]
    paths = schema["paths"]
    for path in (
        "/v1/campaigns",
        "/v1/campaigns/{campaign_id}",
        "/v1/campaigns/{campaign_id}/start",
        "/v1/campaigns/{campaign_id}/pause",
        "/v1/campaigns/{campaign_id}/resume",
        "/v1/campaigns/{campaign_id}/cancel",
        "/v1/campaigns/{campaign_id}/recipients",
    ):
        assert path in paths, path
