"""Both error envelopes for 401/403/404/422/429 and the 500 with a request id."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI

from pytake.app import create_app
from tests.conftest import Org, add_user, client_for, create_api_key


def _assert_v1(resp: httpx.Response, status: int, code: str) -> dict:  # type: ignore[type-arg]
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def _assert_legacy(resp: httpx.Response, status: int, code: str) -> dict:  # type: ignore[type-arg]
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == code
    assert body["code"] == status
    assert isinstance(body["message"], str) and body["message"]
    return body  # type: ignore[no-any-return]


async def test_401_in_both_envelopes(client: httpx.AsyncClient) -> None:
    _assert_v1(await client.get("/v1/users"), 401, "authentication_failed")
    _assert_legacy(await client.get("/api/v1/auth/me"), 401, "authentication_failed")
    bad = {"Authorization": "Bearer nonsense"}
    _assert_v1(await client.get("/v1/users", headers=bad), 401, "authentication_failed")
    _assert_legacy(await client.get("/api/v1/auth/me", headers=bad), 401, "authentication_failed")


async def test_403_in_both_envelopes(client: httpx.AsyncClient, org: Org) -> None:
    key = await create_api_key(client, org, ["contacts:read"])
    _, viewer = await add_user(client, org, "viewer")
    _assert_v1(
        await client.get("/v1/users", headers={"Authorization": f"Bearer {key}"}),
        403,
        "insufficient_permissions",
    )
    _assert_v1(
        await client.post(
            "/v1/api-keys",
            json={"name": "x", "scopes": ["contacts:read"]},
            headers={"Authorization": f"Bearer {viewer}"},
        ),
        403,
        "insufficient_permissions",
    )


async def test_404_in_both_envelopes(client: httpx.AsyncClient, org: Org) -> None:
    _assert_v1(await client.get("/v1/no-such-thing"), 404, "resource_not_found")
    _assert_legacy(await client.get("/api/v1/no-such-thing"), 404, "resource_not_found")
    missing = "/v1/users/00000000-0000-4000-8000-000000000000"
    _assert_v1(await client.get(missing, headers=org.headers), 404, "resource_not_found")
    # A key that is not a user has no /me.
    key = await create_api_key(client, org, ["users:read"])
    _assert_legacy(
        await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"}),
        404,
        "resource_not_found",
    )


async def test_422_names_the_field_in_both_envelopes(client: httpx.AsyncClient, org: Org) -> None:
    err = _assert_v1(
        await client.get("/v1/users?limit=101", headers=org.headers), 422, "validation_error"
    )
    assert err["details"][0]["field"] == "limit"
    err = _assert_v1(
        await client.get("/v1/users/not-a-uuid", headers=org.headers), 422, "validation_error"
    )
    assert err["details"][0]["field"] == "user_id"
    body = _assert_legacy(
        await client.post("/api/v1/auth/login", json={"email": "not-an-email", "password": "x"}),
        422,
        "validation_error",
    )
    assert body["details"]["field"] == "email"


async def test_405_is_in_the_envelope(client: httpx.AsyncClient) -> None:
    resp = await client.put("/v1/auth/login", json={})
    assert resp.status_code == 405
    assert resp.json()["error"]["code"] == "method_not_allowed"


@pytest.fixture
async def exploding_app(make_settings) -> FastAPI:  # type: ignore[no-untyped-def]
    app = create_app(make_settings())

    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    app.add_api_route("/v1/boom", boom)
    app.add_api_route("/api/v1/boom", boom)
    return app


async def test_500_has_a_request_id_and_no_stack_trace(
    exploding_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="pytake.observability")
    async with client_for(exploding_app) as client:
        resp = await client.get("/v1/boom")
        legacy = await client.get("/api/v1/boom", headers={"X-Request-ID": "req-abc-123"})
    err = _assert_v1(resp, 500, "internal_error")
    request_id = resp.headers["x-request-id"]
    assert err["request_id"] == request_id
    assert "secret internal detail" not in resp.text and "Traceback" not in resp.text
    body = _assert_legacy(legacy, 500, "internal_error")
    assert body["request_id"] == "req-abc-123"
    logged = [
        r for r in caplog.records if r.name == "pytake.observability" and r.levelno == logging.ERROR
    ]
    messages = " ".join(r.getMessage() for r in logged)
    assert f"request_id={request_id}" in messages
    assert "request_id=req-abc-123" in messages
    assert all(r.exc_info for r in logged)  # the trace goes to the log, not the client


def test_field_names_keep_nested_segments_called_body() -> None:
    from pytake.app import _field_name

    assert _field_name(("body", "text", "body")) == "text.body"
    assert _field_name(("query", "limit")) == "limit"
    assert _field_name(("body",)) == "body"
    assert _field_name(("body", "items", 2, "title")) == "items.2.title"


async def test_absurd_page_is_422_not_500(client: httpx.AsyncClient, org: Org) -> None:
    # Found by schemathesis: an OFFSET beyond 64 bits crashed the SQLite driver.
    resp = await client.get("/v1/users?page=6377317885971139584", headers=org.headers)
    err = _assert_v1(resp, 422, "validation_error")
    assert err["details"][0]["field"] == "page"
