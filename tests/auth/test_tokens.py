"""/v1 login → refresh → reuse detection → logout; expired, tampered and locked-out credentials."""

from __future__ import annotations

import uuid

import httpx

from pytake.auth.tokens import issue_access_token
from tests.conftest import PASSWORD, Org, client_for, register_org


async def _login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/v1/auth/login", json={"email": email, "password": password})


async def test_login_shape(client: httpx.AsyncClient, org: Org) -> None:
    resp = await _login(client, org.admin_email)
    assert resp.status_code == 200
    body = resp.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["access_token"] and body["refresh_token"]
    assert body["user"] == {
        "id": org.admin_id,
        "email": org.admin_email,
        "full_name": "Acme",
        "role": "org_admin",
        "organization_id": org.id,
    }


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: httpx.AsyncClient, org: Org
) -> None:
    first = (await _login(client, org.admin_email)).json()
    second = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    me = await client.get(
        "/v1/users/" + org.admin_id, headers={"Authorization": f"Bearer {rotated['access_token']}"}
    )
    assert me.status_code == 200

    # A stolen, already-rotated token is replayed: refused, and the whole family dies with it.
    replay = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "authentication_failed"
    legit = await client.post("/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert legit.status_code == 401

    # Another login (another family) is unaffected.
    other = (await _login(client, org.admin_email)).json()
    assert (
        await client.post("/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    ).status_code == 200


async def test_logout_revokes_the_refresh_token(client: httpx.AsyncClient, org: Org) -> None:
    tokens = (await _login(client, org.admin_email)).json()
    out = await client.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 204
    again = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401


async def test_unknown_refresh_token_is_401(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/auth/refresh", json={"refresh_token": "rt_made-up"})
    assert resp.status_code == 401


async def test_expired_and_tampered_tokens_are_401(
    client: httpx.AsyncClient, app, org: Org
) -> None:  # type: ignore[no-untyped-def]
    secret = app.state.settings.secret_key
    expired = issue_access_token(
        secret, uuid.UUID(org.admin_id), uuid.UUID(org.id), "org_admin", ttl_seconds=-10
    )
    resp = await client.get("/v1/users", headers={"Authorization": f"Bearer {expired}"})
    assert resp.status_code == 401
    assert "expired" in resp.json()["error"]["message"]

    header, payload, signature = org.token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    for bad in (f"{header}.{payload}.{flipped}", "not-a-jwt", org.token + "x"):
        resp = await client.get("/v1/users", headers={"Authorization": f"Bearer {bad}"})
        assert resp.status_code == 401, bad
        assert resp.json()["error"]["code"] == "authentication_failed"

    forged = issue_access_token(
        "someone-elses-secret-key-0123456789",
        uuid.UUID(org.admin_id),
        uuid.UUID(org.id),
        "org_admin",
        900,
    )
    resp = await client.get("/v1/users", headers={"Authorization": f"Bearer {forged}"})
    assert resp.status_code == 401


async def test_repeated_failures_lock_the_account(start_app, make_settings) -> None:  # type: ignore[no-untyped-def]
    app = await start_app(make_settings(login_max_failures=3, login_lockout_seconds=120))
    async with client_for(app) as client:
        org = await register_org(client)
        for _ in range(3):
            assert (await _login(client, org.admin_email, "wrong-password")).status_code == 401
        locked = await _login(client, org.admin_email)  # even the right password waits
        assert locked.status_code == 429
        assert locked.json()["error"]["code"] == "rate_limit_exceeded"
        assert 0 < int(locked.headers["Retry-After"]) <= 120
        # Other accounts are not affected.
        other = await register_org(client)
        assert (await _login(client, other.admin_email)).status_code == 200
