"""Bad input is a 4xx naming the field, on both engines and in both envelopes, never a 500 and
never stored: NUL characters, oversized bodies, JSON that cannot be written back out, numbers
out of range. Each case here is one the API fuzzer (test_api_fuzz.py) found as a 500."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from pytake.config import Settings
from tests.conftest import Org, client_for


def _v1_field(resp: httpx.Response) -> str:
    return str(resp.json()["error"]["details"][0]["field"])


async def _contact_count(client: httpx.AsyncClient, org: Org) -> int:
    resp = await client.get("/v1/contacts", headers=org.headers)
    return int(resp.json()["meta"]["total"])


# --- NUL characters (PostgreSQL cannot store them in text) -----------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"whatsapp_id": "+5511987654321", "name": "Ana\u0000"}, "name"),
        ({"whatsapp_id": "+5511987654321", "tags": ["ok", "b\u0000d"]}, "tags.1"),
        ({"whatsapp_id": "+5511987654321", "attributes": {"pla\u0000n": "x"}}, "attributes.plan"),
        (
            {"whatsapp_id": "+5511987654321", "attributes": {"a": [{"b": "\u0000"}]}},
            "attributes.a.0.b",
        ),
    ],
)
async def test_nul_in_a_json_body_is_a_422_naming_the_field(
    client: httpx.AsyncClient, org: Org, body: dict[str, object], field: str
) -> None:
    resp = await client.post("/v1/contacts", json=body, headers=org.headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "validation_error"
    assert _v1_field(resp) == field
    assert "NUL" in resp.json()["error"]["details"][0]["message"]
    assert await _contact_count(client, org) == 0


async def test_nul_on_the_legacy_surface_is_its_envelope(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/api/v1/auth/register",
        json={"email": "nul@example.com", "password": "correct-horse-battery", "name": "A\u0000"},
    )
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["code"] == 422 and body["error"] == "validation_error"
    assert body["details"]["field"] == "name"


async def test_nul_in_the_query_or_path_is_a_422(client: httpx.AsyncClient, org: Org) -> None:
    resp = await client.get("/v1/contacts", params={"search": "a\x00b"}, headers=org.headers)
    assert resp.status_code == 422, resp.text
    assert _v1_field(resp) == "search"
    resp = await client.get("/v1/contacts/export?tag=%00", headers=org.headers)
    assert resp.status_code == 422 and _v1_field(resp) == "tag"
    resp = await client.get("/api/v1/whatsapp/instance/a%00b/status", headers=org.headers)
    assert resp.status_code == 422 and resp.json()["details"]["field"] == "path"


async def test_an_escaped_backslash_before_u0000_is_not_a_nul(
    client: httpx.AsyncClient, org: Org
) -> None:
    resp = await client.post(
        "/v1/contacts",
        content=b'{"whatsapp_id": "+5511987654322", "name": "C:\\\\u0000"}',
        headers={**org.headers, "content-type": "application/json"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["name"] == "C:\\u0000"


# --- JSON that orjson (the JSON columns' serializer) cannot write ----------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"n": 1180591620717411303424}', "64 bits"),
        (b'{"n": -9223372036854775809}', "64 bits"),
        (b'{"n": ' + b"[" * 40 + b"]" * 40 + b"}", "nested"),
    ],
)
async def test_contact_attributes_must_be_storable_json(
    client: httpx.AsyncClient, org: Org, raw: bytes, message: str
) -> None:
    body = b'{"whatsapp_id": "+5511987654323", "attributes": ' + raw + b"}"
    resp = await client.post(
        "/v1/contacts", content=body, headers={**org.headers, "content-type": "application/json"}
    )
    assert resp.status_code == 422, resp.text
    assert _v1_field(resp) == "attributes"
    assert message in resp.json()["error"]["details"][0]["message"]
    assert await _contact_count(client, org) == 0


async def test_attributes_at_the_bounds_are_stored(client: httpx.AsyncClient, org: Org) -> None:
    attributes = {"big": 2**64 - 1, "small": -(2**63), "deep": [[[[["x"]]]]]}
    resp = await client.post(
        "/v1/contacts",
        json={"whatsapp_id": "+5511987654324", "attributes": attributes},
        headers=org.headers,
    )
    assert resp.status_code == 201, resp.text
    got = await client.get(f"/v1/contacts/{resp.json()['id']}", headers=org.headers)
    assert got.json()["attributes"] == attributes


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'"variables": {"n": 99999999999999999999999}', "variables"),
        (
            b'"contacts": [{"name": {"formatted_name": "A"}, "x": 99999999999999999999999}]',
            "contacts.0",
        ),
    ],
)
async def test_message_json_must_be_storable(
    client: httpx.AsyncClient, org: Org, raw: bytes, field: str
) -> None:
    body = b'{"to": "+5511987654325", "type": "text", "text": {"body": "hi"}, ' + raw + b"}"
    resp = await client.post(
        "/v1/messages", content=body, headers={**org.headers, "content-type": "application/json"}
    )
    assert resp.status_code == 422, resp.text
    assert _v1_field(resp) == field


# --- out-of-range integers in the query -------------------------------------------------------


async def test_a_raw_offset_beyond_64_bits_is_a_422(client: httpx.AsyncClient, org: Org) -> None:
    resp = await client.get(
        "/api/v1/conversations/agent", params={"offset": 10**20}, headers=org.headers
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["details"]["field"] == "offset"


# --- request size -----------------------------------------------------------------------------


async def test_a_10_mb_contact_is_a_413_and_not_stored(client: httpx.AsyncClient, org: Org) -> None:
    body = {"whatsapp_id": "+5511987654326", "name": "x", "attributes": {"blob": "y" * 10_000_000}}
    resp = await client.post("/v1/contacts", json=body, headers=org.headers)
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"]["code"] == "payload_too_large"
    assert await _contact_count(client, org) == 0


async def test_a_streamed_body_is_cut_off_at_the_limit(client: httpx.AsyncClient, org: Org) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"whatsapp_id": "+5511987654327", "name": "'
        for _ in range(20):
            yield b"z" * 100_000
        yield b'"}'

    resp = await client.post(
        "/v1/contacts",
        content=chunks(),
        headers={**org.headers, "content-type": "application/json"},
    )
    assert resp.status_code == 413, resp.text
    assert await _contact_count(client, org) == 0


async def test_the_limit_is_a_setting_and_the_legacy_envelope_applies(
    start_app: object, make_settings: object
) -> None:
    app: FastAPI = await start_app(make_settings(max_request_body_bytes=2_000))  # type: ignore[operator]
    async with client_for(app) as client:
        resp = await client.post(
            "/api/v1/auth/register",
            json={"email": "big@example.com", "password": "p" * 3_000, "name": "Big"},
        )
        assert resp.status_code == 413, resp.text
        assert resp.json()["code"] == 413 and resp.json()["error"] == "payload_too_large"
        small = await client.post(
            "/api/v1/auth/register",
            json={"email": "small@example.com", "password": "correct-horse-battery", "name": "S"},
        )
        assert small.status_code == 201, small.text
        # Multipart is counted as it streams: a 3 kB CSV to a route with the default limit...
        token = small.json()["token"]
        resp = await client.post(
            "/v1/users",
            files={"file": ("c.csv", b"x" * 3_000, "text/csv")},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 413, resp.text
        # ...while contact imports keep their own, larger limit.
        csv = b"whatsapp_id,name\n" + b"+5511987654328,Ana\n" * 200
        resp = await client.post(
            "/v1/contacts/import",
            files={"file": ("c.csv", csv, "text/csv")},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 202, resp.text
        job_url = f"/v1/contacts/import/{resp.json()['id']}"
        for _ in range(500):  # the job ends within this test (see test_import_resume.py)
            job = (await client.get(job_url, headers={"Authorization": f"Bearer {token}"})).json()
            if job["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.02)
        assert job["status"] == "completed", job


# --- the schema states what the server does ---------------------------------------------------


async def test_schema_public_register_and_prometheus_metrics(app: FastAPI) -> None:
    schema = app.openapi()
    for path in ("/api/v1/auth/register", "/api/v1/auth/login"):
        assert not schema["paths"][path]["post"].get("security"), path
    assert schema["paths"]["/api/v1/auth/me"]["get"]["security"]
    content = schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]


def test_settings_default_limits() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.max_request_body_bytes == 1024 * 1024
    assert settings.max_import_body_bytes > settings.max_request_body_bytes
