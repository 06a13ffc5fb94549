"""/v1/users: team management by org admins, roles as scopes, deactivation, tenant isolation."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import PASSWORD, Org, add_user


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_admin_creates_lists_gets_and_updates_users(
    client: httpx.AsyncClient, org: Org
) -> None:
    email = f"agent-{uuid.uuid4().hex[:8]}@example.com"
    created = await client.post(
        "/v1/users",
        json={"email": email, "password": PASSWORD, "full_name": "Maria Agent", "role": "agent"},
        headers=org.headers,
    )
    assert created.status_code == 201
    user = created.json()
    assert user["role"] == "agent" and user["is_active"] is True
    assert "password" not in created.text and "password_hash" not in created.text

    page = (await client.get("/v1/users?limit=1", headers=org.headers)).json()
    assert page["meta"] == {"current_page": 1, "per_page": 1, "total": 2, "total_pages": 2}
    assert page["data"][0]["id"] == user["id"]  # newest first

    agents = (await client.get("/v1/users?role=agent", headers=org.headers)).json()
    assert [u["id"] for u in agents["data"]] == [user["id"]]

    patched = await client.patch(
        f"/v1/users/{user['id']}",
        json={"role": "viewer", "full_name": "Maria V"},
        headers=org.headers,
    )
    assert patched.status_code == 200
    assert patched.json()["role"] == "viewer" and patched.json()["full_name"] == "Maria V"
    got = await client.get(f"/v1/users/{user['id']}", headers=org.headers)
    assert got.json()["role"] == "viewer"


async def test_roles_map_to_scopes(client: httpx.AsyncClient, org: Org) -> None:
    _, viewer = await add_user(client, org, "viewer")
    _, agent = await add_user(client, org, "agent")
    for token in (viewer, agent):
        assert (await client.get("/v1/users", headers=_bearer(token))).status_code == 200
        resp = await client.post(
            "/v1/users",
            json={"email": "x@example.com", "password": PASSWORD, "full_name": "X"},
            headers=_bearer(token),
        )
        assert resp.status_code == 403
        assert resp.json()["error"]["code"] == "insufficient_permissions"


async def test_deactivated_user_is_locked_out_at_once(client: httpx.AsyncClient, org: Org) -> None:
    user_id, token = await add_user(client, org, "agent")
    me = await client.get(f"/v1/users/{user_id}", headers=_bearer(token))
    assert me.status_code == 200
    email = me.json()["email"]
    login = (
        await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    ).json()

    assert (await client.delete(f"/v1/users/{user_id}", headers=org.headers)).status_code == 204

    assert (await client.get("/v1/users", headers=_bearer(token))).status_code == 401
    refresh = await client.post("/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
    assert refresh.status_code == 401
    relogin = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert relogin.status_code == 401
    listed = await client.get(f"/v1/users/{user_id}", headers=org.headers)
    assert listed.json()["is_active"] is False

    reactivated = await client.patch(
        f"/v1/users/{user_id}", json={"is_active": True}, headers=org.headers
    )
    assert reactivated.status_code == 200
    relogin = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert relogin.status_code == 200


async def test_admin_cannot_deactivate_or_demote_themselves(
    client: httpx.AsyncClient, org: Org
) -> None:
    resp = await client.delete(f"/v1/users/{org.admin_id}", headers=org.headers)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "is_active"
    resp = await client.patch(
        f"/v1/users/{org.admin_id}", json={"role": "agent"}, headers=org.headers
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "role"


async def test_org_admin_cannot_grant_super_admin(client: httpx.AsyncClient, org: Org) -> None:
    resp = await client.post(
        "/v1/users",
        json={
            "email": "s@example.com",
            "password": PASSWORD,
            "full_name": "S",
            "role": "super_admin",
        },
        headers=org.headers,
    )
    assert resp.status_code == 403


async def test_weak_password_and_bad_role_name_the_field(
    client: httpx.AsyncClient, org: Org
) -> None:
    resp = await client.post(
        "/v1/users",
        json={"email": "w@example.com", "password": "1234567", "full_name": "W"},
        headers=org.headers,
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "password"
    resp = await client.post(
        "/v1/users",
        json={"email": "w@example.com", "password": PASSWORD, "full_name": "W", "role": "owner"},
        headers=org.headers,
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "role"


async def test_users_of_another_organisation_are_404(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    theirs, _ = await add_user(client, other_org, "agent")
    for method, kwargs in (
        ("GET", {}),
        ("PATCH", {"json": {"full_name": "Hijacked"}}),
        ("DELETE", {}),
    ):
        resp = await client.request(method, f"/v1/users/{theirs}", headers=org.headers, **kwargs)
        assert resp.status_code == 404, method
        assert resp.json()["error"]["code"] == "resource_not_found"
    listed = (await client.get("/v1/users", headers=org.headers)).json()["data"]
    assert theirs not in [u["id"] for u in listed]
    still = await client.get(f"/v1/users/{theirs}", headers=other_org.headers)
    assert still.json()["full_name"] == "Agent" and still.json()["is_active"] is True
