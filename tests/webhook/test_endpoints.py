"""/v1/webhooks: create (secret shown once), read, update, delete, validation, isolation."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from pytake.config import Settings
from tests.conftest import client_for, create_api_key, register_org
from tests.events.helpers import running_app


async def test_crud_and_secret_shown_only_on_creation(wh_client: httpx.AsyncClient) -> None:
    org = await register_org(wh_client)
    resp = await wh_client.post(
        "/v1/webhooks",
        json={"url": "https://example.com/hook", "events": ["message.received"]},
        headers=org.headers,
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 30
    assert created["events"] == ["message.received"] and created["is_active"] is True
    hook = f"/v1/webhooks/{created['id']}"

    got = await wh_client.get(hook, headers=org.headers)
    assert got.status_code == 200 and "secret" not in got.json()
    listed = await wh_client.get("/v1/webhooks", headers=org.headers)
    assert [w["id"] for w in listed.json()["data"]] == [created["id"]]
    assert "secret" not in listed.json()["data"][0]

    patched = await wh_client.patch(
        hook,
        json={"events": ["contact.created", "contact.updated"], "description": "CRM sync"},
        headers=org.headers,
    )
    assert patched.status_code == 200
    assert patched.json()["events"] == ["contact.created", "contact.updated"]
    assert patched.json()["description"] == "CRM sync" and "secret" not in patched.json()

    assert (await wh_client.delete(hook, headers=org.headers)).status_code == 204
    assert (await wh_client.get(hook, headers=org.headers)).status_code == 404


async def test_given_secret_is_kept(wh_client: httpx.AsyncClient) -> None:
    org = await register_org(wh_client)
    resp = await wh_client.post(
        "/v1/webhooks",
        json={"url": "https://example.com/h", "events": ["contact.created"], "secret": "s" * 20},
        headers=org.headers,
    )
    assert resp.json()["secret"] == "s" * 20


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "https://example.com/h", "events": ["message.exploded"]}, "events.0"),
        ({"url": "https://example.com/h", "events": []}, "events"),
        ({"url": "ftp://example.com/h", "events": ["contact.created"]}, "url"),
        ({"url": "https://example.com/h", "events": ["contact.created"], "secret": "x"}, "secret"),
    ],
)
async def test_invalid_input_names_the_field(
    wh_client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    org = await register_org(wh_client)
    resp = await wh_client.post("/v1/webhooks", json=body, headers=org.headers)
    assert resp.status_code == 422, resp.text
    assert field in [d["field"] for d in resp.json()["error"]["details"]]


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://localhost/hook",
        "https://169.254.169.254/latest",
        "http://example.com/hook",
    ],
)
async def test_private_or_plain_http_urls_refused_without_the_development_setting(
    make_settings: Callable[..., Settings], url: str
) -> None:
    settings = make_settings(allow_private_urls=False, run_background_loops=False)
    async with running_app(settings) as strict, client_for(strict) as client:
        org = await register_org(client)
        resp = await client.post(
            "/v1/webhooks", json={"url": url, "events": ["contact.created"]}, headers=org.headers
        )
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["details"][0]["field"] == "url"
        # The same applies when changing the URL of an existing endpoint.
        ok = await client.post(
            "/v1/webhooks",
            json={"url": "https://93.184.215.14/hook", "events": ["contact.created"]},
            headers=org.headers,
        )
        assert ok.status_code == 201, ok.text
        patched = await client.patch(
            f"/v1/webhooks/{ok.json()['id']}", json={"url": url}, headers=org.headers
        )
        assert patched.status_code == 422


async def test_another_organisations_webhook_is_not_found(wh_client: httpx.AsyncClient) -> None:
    org, other = await register_org(wh_client), await register_org(wh_client)
    hook = (
        await wh_client.post(
            "/v1/webhooks",
            json={"url": "https://example.com/h", "events": ["contact.created"]},
            headers=org.headers,
        )
    ).json()["id"]
    for method, path in [
        ("GET", f"/v1/webhooks/{hook}"),
        ("PATCH", f"/v1/webhooks/{hook}"),
        ("DELETE", f"/v1/webhooks/{hook}"),
        ("GET", f"/v1/webhooks/{hook}/deliveries"),
        ("POST", f"/v1/webhooks/{hook}/test"),
    ]:
        resp = await wh_client.request(method, path, json={}, headers=other.headers)
        assert resp.status_code == 404, (method, path, resp.text)
    listed = await wh_client.get("/v1/webhooks", headers=other.headers)
    assert listed.json()["data"] == []


async def test_scopes(wh_client: httpx.AsyncClient) -> None:
    org = await register_org(wh_client)
    reader = {"Authorization": f"Bearer {await create_api_key(wh_client, org, ['webhooks:read'])}"}
    assert (await wh_client.get("/v1/webhooks", headers=reader)).status_code == 200
    resp = await wh_client.post(
        "/v1/webhooks",
        json={"url": "https://example.com/h", "events": ["contact.created"]},
        headers=reader,
    )
    assert resp.status_code == 403
    nothing = {"Authorization": f"Bearer {await create_api_key(wh_client, org, ['contacts:read'])}"}
    assert (await wh_client.get("/v1/webhooks", headers=nothing)).status_code == 403
