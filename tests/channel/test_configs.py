"""/api/v1/whatsapp-configs and /v1/whatsapp-configs over real HTTP: shapes, secrets never
echoed, one default per organisation, tenant isolation, scopes."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pytake.models import Channel
from pytake.whatsapp.simulator import Simulator
from tests.channel.support import create_evolution, create_official
from tests.conftest import Org, create_api_key, register_org


async def test_create_official_never_echoes_secrets(
    api: httpx.AsyncClient, wa_org: Org, sim: Simulator, wa_url: str, wa_app: FastAPI
) -> None:
    number = await create_official(api, wa_org, sim, wa_url)
    created = number.config
    assert created["provider"] == "official"
    assert created["phone_number_id"] == number.pnid
    assert created["health_status"] == "unknown"
    assert created["is_default"] is True  # the organisation's first number
    assert created["created_by"] == wa_org.admin_email
    assert created["has_access_token"] and created["has_app_secret"]
    got = await api.get(f"/api/v1/whatsapp-configs/{number.id}", headers=wa_org.headers)
    listed = await api.get("/api/v1/whatsapp-configs", headers=wa_org.headers)
    v1 = await api.get(f"/v1/whatsapp-configs/{number.id}", headers=wa_org.headers)
    for resp in (got, listed, v1):
        assert resp.status_code == 200
        assert number.token not in resp.text and number.app_secret not in resp.text
    for body in (got.json(), v1.json(), *listed.json()["configs"]):
        assert not {"access_token", "app_secret", "evolution_api_key"} & set(body)
    assert got.json()["webhook_verify_token"] == number.verify_token
    assert got.json()["business_account_id"] == number.waba
    # Encrypted at rest: the plaintext appears in no column.
    async with wa_app.state.session_factory() as session:
        row = await session.scalar(select(Channel).where(Channel.id == uuid.UUID(number.id)))
    assert row is not None and row.access_token_encrypted and row.app_secret_encrypted
    assert number.token not in row.access_token_encrypted
    assert number.app_secret not in row.app_secret_encrypted


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"provider": "official", "access_token": "t", "app_secret": "s"}, "phone_number_id"),
        ({"provider": "official", "phone_number_id": "1", "app_secret": "s"}, "access_token"),
        ({"provider": "official", "phone_number_id": "1", "access_token": "t"}, "app_secret"),
        (
            {"provider": "evolution", "evolution_api_key": "k", "instance_name": "i"},
            "evolution_url",
        ),
        (
            {"provider": "evolution", "evolution_url": "http://e", "instance_name": "i"},
            "evolution_api_key",
        ),
        (
            {"provider": "evolution", "evolution_url": "http://e", "evolution_api_key": "k"},
            "instance_name",
        ),
        (
            {
                "provider": "evolution",
                "evolution_url": "ftp://e",
                "evolution_api_key": "k",
                "instance_name": "i",
            },
            "evolution_url",
        ),
        ({"provider": "twilio"}, "provider"),
    ],
)
async def test_create_names_the_missing_field(
    api: httpx.AsyncClient, wa_org: Org, body: dict[str, str], field: str
) -> None:
    resp = await api.post(
        "/api/v1/whatsapp-configs", json={"name": "x", **body}, headers=wa_org.headers
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["details"]["field"] == field
    v1 = await api.post("/v1/whatsapp-configs", json={"name": "x", **body}, headers=wa_org.headers)
    assert v1.status_code == 422
    assert v1.json()["error"]["details"][0]["field"] == field


async def test_list_filters_and_exactly_one_default(
    api: httpx.AsyncClient, wa_org: Org, sim: Simulator, wa_url: str
) -> None:
    first = await create_official(api, wa_org, sim, wa_url, name="First")
    evo = await create_evolution(api, wa_org, sim)
    second = await create_official(api, wa_org, sim, wa_url, name="Second", is_default=True)
    h = wa_org.headers

    async def default_id() -> str:
        resp = await api.get("/api/v1/whatsapp-configs/default", headers=h)
        assert resp.status_code == 200
        return str(resp.json()["id"])

    listed = (await api.get("/api/v1/whatsapp-configs", headers=h)).json()
    assert listed["total"] == 3
    assert sum(1 for c in listed["configs"] if c["is_default"]) == 1
    assert await default_id() == second.id
    only_evo = (await api.get("/api/v1/whatsapp-configs?provider=evolution", headers=h)).json()
    assert [c["id"] for c in only_evo["configs"]] == [evo["id"]]

    resp = await api.post(f"/api/v1/whatsapp-configs/{first.id}/set-default", headers=h)
    assert resp.status_code == 200
    assert resp.json() == {
        "message": "Default configuration updated successfully",
        "config": {"id": first.id, "name": "First", "is_default": True},
    }
    assert await default_id() == first.id
    listed = (await api.get("/api/v1/whatsapp-configs", headers=h)).json()
    assert [c["id"] for c in listed["configs"] if c["is_default"]] == [first.id]

    # Deactivate one: filtered out of active=true, health becomes inactive.
    resp = await api.put(
        f"/api/v1/whatsapp-configs/{second.id}", json={"is_active": False}, headers=h
    )
    assert resp.status_code == 200
    assert resp.json()["health_status"] == "inactive"
    active = (await api.get("/api/v1/whatsapp-configs?active=true", headers=h)).json()
    assert second.id not in [c["id"] for c in active["configs"]] and active["total"] == 2

    # The default cannot be simply switched off, and deleting it hands it on.
    resp = await api.put(
        f"/api/v1/whatsapp-configs/{first.id}", json={"is_default": False}, headers=h
    )
    assert resp.status_code == 422 and resp.json()["details"]["field"] == "is_default"
    resp = await api.delete(f"/api/v1/whatsapp-configs/{first.id}", headers=h)
    assert resp.status_code == 200
    assert resp.json() == {"message": "Configuration deleted successfully", "config_id": first.id}
    assert await default_id() in (evo["id"], second.id)
    assert (await api.get(f"/api/v1/whatsapp-configs/{first.id}", headers=h)).status_code == 404


async def test_partial_update_keeps_and_replaces_secrets(
    api: httpx.AsyncClient,
    wa_org: Org,
    sim: Simulator,
    wa_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    number = await create_official(api, wa_org, sim, wa_url)
    url = f"/api/v1/whatsapp-configs/{number.id}"
    resp = await api.put(url, json={"name": "Renamed"}, headers=wa_org.headers)
    assert resp.status_code == 200 and resp.json()["name"] == "Renamed"
    # The stored token still works: the test passes against the simulator.
    assert (await api.post(f"{url}/test", headers=wa_org.headers)).status_code == 200
    resp = await api.put(url, json={"access_token": "new-secret-value"}, headers=wa_org.headers)
    assert resp.status_code == 200 and "new-secret-value" not in resp.text
    failed = await api.post(f"{url}/test", headers=wa_org.headers)
    assert failed.status_code == 400 and failed.json()["details"]["code"] == 190
    resp = await api.put(url, json={"access_token": ""}, headers=wa_org.headers)
    assert resp.status_code == 422 and resp.json()["details"]["field"] == "access_token"
    for secret in (number.token, number.app_secret, "new-secret-value"):
        assert secret not in caplog.text


async def test_other_organisations_configs_are_not_found(
    api: httpx.AsyncClient, wa_org: Org, sim: Simulator, wa_url: str
) -> None:
    number = await create_official(api, wa_org, sim, wa_url)
    other = await register_org(api, "Other")
    url = f"/api/v1/whatsapp-configs/{number.id}"
    assert (await api.get(url, headers=other.headers)).status_code == 404
    assert (await api.put(url, json={"name": "x"}, headers=other.headers)).status_code == 404
    assert (await api.post(f"{url}/test", headers=other.headers)).status_code == 404
    assert (await api.post(f"{url}/set-default", headers=other.headers)).status_code == 404
    assert (await api.delete(url, headers=other.headers)).status_code == 404
    assert (await api.get(f"/v1/whatsapp-configs/{number.id}", headers=other.headers)).json()[
        "error"
    ]["code"] == "resource_not_found"
    listed = (await api.get("/api/v1/whatsapp-configs", headers=other.headers)).json()
    assert listed == {"configs": [], "total": 0}
    assert (
        await api.get("/api/v1/whatsapp-configs/default", headers=other.headers)
    ).status_code == 404
    # Still intact for its owner.
    assert (await api.get(url, headers=wa_org.headers)).json()["name"] == "Main number"


async def test_v1_surface_conventions_and_scopes(
    api: httpx.AsyncClient, wa_org: Org, sim: Simulator, wa_url: str
) -> None:
    number = await create_official(api, wa_org, sim, wa_url)
    page = await api.get("/v1/whatsapp-configs?limit=1", headers=wa_org.headers)
    assert page.status_code == 200
    assert page.json()["meta"] == {"current_page": 1, "per_page": 1, "total": 1, "total_pages": 1}
    resp = await api.patch(
        f"/v1/whatsapp-configs/{number.id}", json={"name": "Patched"}, headers=wa_org.headers
    )
    assert resp.status_code == 200 and resp.json()["name"] == "Patched"
    reader = await create_api_key(api, wa_org, ["whatsapp:read"])
    rh = {"Authorization": f"Bearer {reader}"}
    assert (await api.get("/v1/whatsapp-configs", headers=rh)).status_code == 200
    denied = await api.post(
        "/v1/whatsapp-configs", json={"name": "x", "provider": "official"}, headers=rh
    )
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "insufficient_permissions"
    assert (await api.get("/api/v1/whatsapp-configs", headers=rh)).status_code == 200
    assert (
        await api.delete(f"/api/v1/whatsapp-configs/{number.id}", headers=rh)
    ).status_code == 403
    no_scope = await create_api_key(api, wa_org, ["contacts:read"])
    nh = {"Authorization": f"Bearer {no_scope}"}
    assert (await api.get("/v1/whatsapp-configs", headers=nh)).status_code == 403
    assert (
        await api.delete(f"/v1/whatsapp-configs/{number.id}", headers=wa_org.headers)
    ).status_code == 204
    assert (await api.get("/v1/whatsapp-configs", headers=wa_org.headers)).json()["meta"][
        "total"
    ] == 0


async def test_unauthenticated_is_401(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/v1/whatsapp-configs")).status_code == 401
    assert (await api.get("/v1/whatsapp-configs")).status_code == 401
