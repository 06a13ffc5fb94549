"""Rate limits on both surfaces: headers on every limited response, 429 with Retry-After."""

from __future__ import annotations

import time
import uuid

import httpx

from tests.conftest import PASSWORD, client_for, create_api_key, register_org


def _assert_headers(resp: httpx.Response, limit: int, remaining: int) -> None:
    assert resp.headers["X-RateLimit-Limit"] == str(limit)
    assert resp.headers["X-RateLimit-Remaining"] == str(remaining)
    reset = int(resp.headers["X-RateLimit-Reset"])
    assert time.time() - 1 <= reset <= time.time() + 3700


async def test_legacy_auth_limit_per_client_address(start_app, make_settings) -> None:  # type: ignore[no-untyped-def]
    app = await start_app(make_settings(rate_limit_legacy_auth="3/minute"))
    async with client_for(app) as client:
        body = {"email": f"x-{uuid.uuid4().hex[:8]}@example.com", "password": "wrong-password"}
        for i in range(3):
            resp = await client.post("/api/v1/auth/login", json=body)
            assert resp.status_code == 401
            _assert_headers(resp, 3, 2 - i)
        limited = await client.post("/api/v1/auth/login", json=body)
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limit_exceeded"
    assert limited.json()["code"] == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    _assert_headers(limited, 3, 0)


async def test_v1_limit_is_per_organisation(start_app, make_settings) -> None:  # type: ignore[no-untyped-def]
    app = await start_app(make_settings(rate_limit_v1_per_org="4/minute;100/second"))
    async with client_for(app) as client:
        org = await register_org(client)
        other = await register_org(client)
        key_a = await create_api_key(client, org, ["users:read"])
        key_b = await create_api_key(client, org, ["users:read"])
        # Two credentials of one organisation share its budget (the key creations used two).
        first = await client.get("/v1/users", headers={"Authorization": f"Bearer {key_a}"})
        assert first.status_code == 200
        _assert_headers(first, 4, 1)
        second = await client.get("/v1/users", headers={"Authorization": f"Bearer {key_b}"})
        _assert_headers(second, 4, 0)
        limited = await client.get("/v1/users", headers=org.headers)
        fine = await client.get("/v1/users", headers=other.headers)
    assert limited.status_code == 429
    error = limited.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["retry_after"] == int(limited.headers["Retry-After"])
    assert 1 <= error["retry_after"] <= 60
    assert fine.status_code == 200


async def test_v1_burst_limit(start_app, make_settings) -> None:  # type: ignore[no-untyped-def]
    app = await start_app(make_settings(rate_limit_v1_per_org="1000/minute;3/hour"))
    async with client_for(app) as client:
        org = await register_org(client)
        statuses = [
            (await client.get("/v1/users", headers=org.headers)).status_code for _ in range(4)
        ]
    assert statuses == [200, 200, 200, 429]


async def test_every_limited_response_has_headers_even_errors(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/v1/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    assert resp.status_code == 401
    assert "X-RateLimit-Limit" in resp.headers and "X-RateLimit-Remaining" in resp.headers
