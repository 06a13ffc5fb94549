"""Where the two API documents and PyTake used to differ (issue: the documents, point by point)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from pytake.auth.scopes import SCOPES
from pytake.errors import DOCUMENTED_CODES, error_catalogue
from pytake.openapi import api_doc
from tests.conftest import Org, client_for, register_org

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _has_rate_headers(resp: httpx.Response) -> bool:
    return all(resp.headers.get(h, "").isdigit() for h in RATE_HEADERS)


async def test_malformed_json_is_a_documented_validation_error(
    client: httpx.AsyncClient, org: Org
) -> None:
    resp = await client.post(
        "/v1/contacts",
        content=b'{"whatsapp_id": "+5511',
        headers={**org.headers, "Content-Type": "application/json"},
    )
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "validation_error" and error["code"] in DOCUMENTED_CODES
    assert error["details"] == [{"field": "body", "message": "invalid JSON"}]


async def test_unauthenticated_and_unrouted_responses_carry_rate_limit_headers(
    client: httpx.AsyncClient, org: Org
) -> None:
    for resp in (
        await client.get("/v1/contacts"),
        await client.get("/v1/contacts", headers={"Authorization": "Bearer nonsense"}),
        await client.get("/v1/contacts", headers={"Authorization": "Bearer pytake_live_nope"}),
    ):
        assert resp.status_code == 401, resp.text
        assert _has_rate_headers(resp), resp.headers
    for path, headers in (
        ("/v1/no-such-route", {}),
        ("/v1/no-such-route", org.headers),
        ("/api/v1/no-such-route", {}),
    ):
        resp = await client.get(path, headers=headers)
        assert resp.status_code == 404, resp.text
        assert _has_rate_headers(resp), (path, resp.headers)
    resp = await client.put("/v1/auth/login", json={})
    assert resp.status_code == 405 and _has_rate_headers(resp)


async def test_bodies_refused_before_the_route_carry_the_headers_and_count(
    client: httpx.AsyncClient, org: Org
) -> None:
    """FastAPI parses a body before any dependency, and the request guard refuses some before
    the router: neither ever reached the route's limit, yet each is a response of the surface."""
    as_json = {**org.headers, "Content-Type": "application/json"}
    refusals: list[tuple[str, str, dict[str, Any], int]] = [
        ("POST", "/v1/contacts", {"content": b'{"whatsapp_id": "+5511'}, 400),
        ("POST", "/v1/contacts", {"content": b'{"name": "a\\u0000b"}'}, 422),
        ("GET", "/v1/contacts?search=a%00b", {}, 422),
        ("POST", "/v1/contacts", {"content": b'{"name": "' + b"x" * (1 << 20) + b'"}'}, 413),
    ]
    before = await client.get("/v1/contacts", headers=org.headers)
    remaining = int(before.headers["X-RateLimit-Remaining"])
    for method, path, kw, status in refusals:
        resp = await client.request(method, path, headers=as_json, **kw)
        assert resp.status_code == status, (path, resp.text)
        assert _has_rate_headers(resp), (path, status, resp.headers)
        # Counted against the organisation like any request of its credential.
        remaining -= 1
        assert int(resp.headers["X-RateLimit-Remaining"]) == remaining, (path, status)
    for path, headers in (
        ("/v1/auth/login", {"Content-Type": "application/json"}),
        ("/api/v1/auth/login", {"Content-Type": "application/json"}),
        ("/api/v1/whatsapp/send", as_json),
    ):
        resp = await client.post(path, content=b"{not json", headers=headers)
        assert resp.status_code == 400, (path, resp.text)
        assert _has_rate_headers(resp), (path, resp.headers)
    # Provider webhooks are never limited, malformed or not.
    resp = await client.post(
        "/api/v1/whatsapp/webhook/evolution/not-a-uuid",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 422 and "X-RateLimit-Limit" not in resp.headers


async def test_a_flood_of_refused_bodies_is_throttled(start_app, make_settings) -> None:  # type: ignore[no-untyped-def]
    app = await start_app(make_settings(rate_limit_v1_per_org="3/minute;100/second"))
    async with client_for(app) as client:
        org = await register_org(client)  # /api/v1: not the /v1 budget
        headers = {**org.headers, "Content-Type": "application/json"}
        for content in (b"{", b'{"name": "\\u0000"}', b"["):
            refused = await client.post("/v1/contacts", content=content, headers=headers)
            assert refused.status_code in (400, 422), refused.text
        for content in (b"{", b'{"name": "\\u0000"}'):
            limited = await client.post("/v1/contacts", content=content, headers=headers)
            assert limited.status_code == 429, limited.text
            assert limited.json()["error"]["code"] == "rate_limit_exceeded"
            assert limited.headers["X-RateLimit-Remaining"] == "0"
            assert int(limited.headers["Retry-After"]) >= 1


async def test_an_unknown_route_counts_against_the_organisation(
    client: httpx.AsyncClient, org: Org
) -> None:
    first = await client.get("/v1/no-such-route", headers=org.headers)
    second = await client.get("/v1/contacts", headers=org.headers)
    # One bucket per organisation: the 404 spent one of the requests the contacts call sees.
    remaining = int(second.headers["X-RateLimit-Remaining"])
    assert remaining == int(first.headers["X-RateLimit-Remaining"]) - 1


async def test_query_validation_lists_each_field_once(client: httpx.AsyncClient, org: Org) -> None:
    for path in ("/v1/users?limit=101", "/v1/contacts?limit=101", "/v1/conversations?limit=0"):
        resp = await client.get(path, headers=org.headers)
        assert resp.status_code == 422, resp.text
        fields = [d["field"] for d in resp.json()["error"]["details"]]
        assert fields == ["limit"], (path, fields)


async def test_any_unknown_refresh_token_is_a_401(client: httpx.AsyncClient) -> None:
    for token in ("x" * 201, "y" * 5000, "", "not a token\u00e9"):
        resp = await client.post("/v1/auth/refresh", json={"refresh_token": token})
        assert resp.status_code == 401, (len(token), resp.text)
        assert resp.json()["error"]["code"] == "authentication_failed"


async def test_the_202_queued_answer_is_documented_on_both_send_operations(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path in ("/v1/messages", "/api/v1/whatsapp/send"):
        accepted = schema["paths"][path]["post"]["responses"]["202"]
        assert "not a failure" in accepted["description"], path
        body = accepted["content"]["application/json"]
        assert body["schema"]["$ref"], path
        assert body["example"]["status"] == "queued", path


async def test_every_scope_is_listed_with_its_operations(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    create_key = schema["paths"]["/v1/api-keys"]["post"]["description"]
    for scope in SCOPES:
        assert f"| `{scope}` |" in create_key, scope
        assert f"| `{scope}` |" in schema["info"]["description"], scope
    row = next(line for line in create_key.splitlines() if line.startswith("| `contacts:read`"))
    assert "`GET /v1/contacts`" in row
    row = next(line for line in create_key.splitlines() if line.startswith("| `whatsapp:write`"))
    assert "`POST /v1/whatsapp-configs`" in row


async def test_an_unknown_scope_is_refused_with_the_valid_ones(
    client: httpx.AsyncClient, org: Org
) -> None:
    resp = await client.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["contacts:rule"]}, headers=org.headers
    )
    assert resp.status_code == 422, resp.text
    detail = resp.json()["error"]["details"][0]
    assert detail["field"] == "scopes"
    assert "contacts:rule" in detail["message"]
    assert all(scope in detail["message"] for scope in SCOPES)


async def test_every_error_code_is_documented_with_what_to_treat_it_as(
    client: httpx.AsyncClient,
) -> None:
    description = (await client.get("/openapi.json")).json()["info"]["description"]
    for entry in error_catalogue():
        assert entry.documented_as in DOCUMENTED_CODES, entry
        pattern = rf"\| `{re.escape(entry.code)}` \|[^\n]*\| `{entry.documented_as}` \|"
        assert re.search(pattern, description), entry.code


def test_docs_api_md_is_current(app: FastAPI) -> None:
    assert API_DOC.read_text(encoding="utf-8") == api_doc(app), (
        "docs/api.md is stale: run `.venv/bin/python -m pytake.openapi docs/api.md`"
    )
