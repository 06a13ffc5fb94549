"""API keys: shown once, stored hashed, scoped, revocable, admin-only, tenant-isolated."""

from __future__ import annotations

import httpx

from tests.conftest import Org, add_user, create_api_key


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_key_is_shown_once_and_listed_without_the_secret(
    client: httpx.AsyncClient, org: Org
) -> None:
    created = await client.post(
        "/v1/api-keys", json={"name": "CRM sync", "scopes": ["contacts:read"]}, headers=org.headers
    )
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("pytake_live_")
    assert body["key"].startswith(body["prefix"])
    assert body["scopes"] == ["contacts:read"]

    listed = await client.get("/v1/api-keys", headers=org.headers)
    assert listed.status_code == 200
    [item] = [k for k in listed.json()["data"] if k["id"] == body["id"]]
    assert "key" not in item
    assert body["key"] not in listed.text
    assert item["last_used_at"] is None

    used = await client.get("/v1/users", headers=_bearer(body["key"]))
    assert used.status_code == 403  # authenticated, but contacts:read does not cover users
    listed = await client.get("/v1/api-keys", headers=org.headers)
    [item] = [k for k in listed.json()["data"] if k["id"] == body["id"]]
    assert item["last_used_at"] is not None


async def test_scope_allows_and_denies(client: httpx.AsyncClient, org: Org) -> None:
    reader = await create_api_key(client, org, ["users:read"])
    other = await create_api_key(client, org, ["contacts:read"])
    allowed = await client.get("/v1/users", headers=_bearer(reader))
    assert allowed.status_code == 200
    assert [u["id"] for u in allowed.json()["data"]] == [org.admin_id]
    denied = await client.get("/v1/users", headers=_bearer(other))
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "insufficient_permissions"
    assert "users:read" in denied.json()["error"]["message"]


async def test_revoked_key_is_rejected_at_once(client: httpx.AsyncClient, org: Org) -> None:
    key = await create_api_key(client, org, ["users:read"])
    assert (await client.get("/v1/users", headers=_bearer(key))).status_code == 200
    [item] = [
        k
        for k in (await client.get("/v1/api-keys", headers=org.headers)).json()["data"]
        if key.startswith(k["prefix"])
    ]
    assert (
        await client.delete(f"/v1/api-keys/{item['id']}", headers=org.headers)
    ).status_code == 204
    resp = await client.get("/v1/users", headers=_bearer(key))
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"
    again = await client.delete(f"/v1/api-keys/{item['id']}", headers=org.headers)
    assert again.status_code == 404


async def test_unknown_key_is_invalid_api_key(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/users", headers=_bearer("pytake_live_not-a-real-key"))
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"


async def test_unknown_scope_is_422_naming_the_field(client: httpx.AsyncClient, org: Org) -> None:
    resp = await client.post(
        "/v1/api-keys",
        json={"name": "x", "scopes": ["contacts:read", "root:all"]},
        headers=org.headers,
    )
    assert resp.status_code == 422
    [detail] = resp.json()["error"]["details"]
    assert detail["field"] == "scopes"
    assert "root:all" in detail["message"]


async def test_only_org_admins_manage_keys(client: httpx.AsyncClient, org: Org) -> None:
    _, agent_token = await add_user(client, org, "agent")
    resp = await client.post(
        "/v1/api-keys",
        json={"name": "x", "scopes": ["contacts:read"]},
        headers=_bearer(agent_token),
    )
    assert resp.status_code == 403
    # A key, even one with every scope, cannot mint more keys.
    key = await create_api_key(client, org, ["users:read", "contacts:write"])
    resp = await client.get("/v1/api-keys", headers=_bearer(key))
    assert resp.status_code == 403


async def test_keys_of_another_organisation_are_404(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    await create_api_key(client, other_org, ["contacts:read"])
    theirs = (await client.get("/v1/api-keys", headers=other_org.headers)).json()["data"][0]
    mine = (await client.get("/v1/api-keys", headers=org.headers)).json()["data"]
    assert theirs["id"] not in [k["id"] for k in mine]
    resp = await client.delete(f"/v1/api-keys/{theirs['id']}", headers=org.headers)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "resource_not_found"


async def test_the_scopes_a_key_may_carry_are_listed(client: httpx.AsyncClient, org: Org) -> None:
    resp = await client.get("/v1/api-keys/scopes", headers=org.headers)
    assert resp.status_code == 200, resp.text
    scopes = {s["name"]: s["description"] for s in resp.json()["data"]}
    assert scopes["contacts:read"] == "Read contacts and tags"
    assert "webhooks:write" in scopes and all(scopes.values())
    _, agent_token = await add_user(client, org, "agent")
    assert (
        await client.get("/v1/api-keys/scopes", headers=_bearer(agent_token))
    ).status_code == 403
