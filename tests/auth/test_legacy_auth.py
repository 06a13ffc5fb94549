"""/api/v1 register → login → me, and what each refuses."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from tests.conftest import PASSWORD, client_for


def _email() -> str:
    return f"u-{uuid.uuid4().hex[:12]}@example.com"


async def test_register_login_me(client: httpx.AsyncClient) -> None:
    email = _email()
    reg = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "John Doe"}
    )
    assert reg.status_code == 201
    body = reg.json()
    assert body["token"].count(".") == 2
    assert body["user"]["email"] == email
    assert body["user"]["name"] == "John Doe"
    assert body["user"]["roles"] == ["org_admin"]
    assert body["user"]["created_at"].endswith("Z")

    login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200
    assert login.json()["user"]["last_login"] is not None

    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {login.json()['token']}"}
    )
    assert me.status_code == 200
    assert me.json()["id"] == body["user"]["id"]
    assert me.json()["roles"] == ["org_admin"]


async def test_email_is_case_insensitive_and_unique(client: httpx.AsyncClient) -> None:
    email = _email()
    first = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "A"}
    )
    assert first.status_code == 201
    again = await client.post(
        "/api/v1/auth/register", json={"email": email.upper(), "password": PASSWORD, "name": "B"}
    )
    assert again.status_code == 409
    assert again.json()["error"] == "duplicate_resource"
    assert again.json()["details"]["field"] == "email"
    login = await client.post(
        "/api/v1/auth/login", json={"email": email.upper(), "password": PASSWORD}
    )
    assert login.status_code == 200


async def test_weak_password_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/api/v1/auth/register", json={"email": _email(), "password": "short", "name": "A"}
    )
    assert resp.status_code == 422
    body = resp.json()
    assert body["error"] == "validation_error"
    assert body["code"] == 422
    assert body["details"]["field"] == "password"


async def test_wrong_password_and_unknown_user_look_the_same(client: httpx.AsyncClient) -> None:
    email = _email()
    await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "A"}
    )
    wrong = await client.post("/api/v1/auth/login", json={"email": email, "password": "nope-nope"})
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": _email(), "password": "nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["message"] == unknown.json()["message"]


async def test_me_requires_a_token(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/v1/auth/me")
    assert resp.status_code == 401
    assert resp.json()["error"] == "authentication_failed"


async def test_signup_can_be_turned_off(start_app, make_settings) -> None:  # type: ignore[no-untyped-def]
    app: FastAPI = await start_app(make_settings(allow_signup=False))
    async with client_for(app) as client:
        resp = await client.post(
            "/api/v1/auth/register", json={"email": _email(), "password": PASSWORD, "name": "A"}
        )
    assert resp.status_code == 403
    assert resp.json()["error"] == "insufficient_permissions"


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/api/v1/auth/register",
        content=b'{"email": "x@example.com", "pass',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "validation_error"
