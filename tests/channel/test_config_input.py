"""WhatsApp configuration input the API fuzzer found as 500s: a null for a required field in a
partial update, and credentials an HTTP header cannot carry (now refused on input; one stored
before that is reported as unusable, not raised)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from pytake.kit.crypto import secret_box
from pytake.models import Channel
from tests.conftest import Org


async def _official(client: httpx.AsyncClient, org: Org) -> dict[str, str]:
    resp = await client.post(
        "/v1/whatsapp-configs",
        json={
            "name": "Main",
            "provider": "official",
            "phone_number_id": str(uuid.uuid4().int)[:15],
            "access_token": "EAAG-token",
            "app_secret": "secret",
        },
        headers=org.headers,
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def test_null_name_in_an_update_is_a_422(client: httpx.AsyncClient, org: Org) -> None:
    config = await _official(client, org)
    resp = await client.patch(
        f"/v1/whatsapp-configs/{config['id']}", json={"name": None}, headers=org.headers
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["field"] == "name"
    legacy = await client.put(
        f"/api/v1/whatsapp-configs/{config['id']}", json={"name": None}, headers=org.headers
    )
    assert legacy.status_code == 422, legacy.text
    assert legacy.json()["details"]["field"] == "name"
    kept = await client.get(f"/v1/whatsapp-configs/{config['id']}", headers=org.headers)
    assert kept.json()["name"] == "Main"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("access_token", "tøken"),
        ("access_token", "tok\r\nX-Injected: 1"),
        ("evolution_api_key", "ké"),
    ],
)
async def test_credentials_must_fit_in_a_header(
    client: httpx.AsyncClient, org: Org, field: str, value: str
) -> None:
    config = await _official(client, org)
    resp = await client.patch(
        f"/v1/whatsapp-configs/{config['id']}", json={field: value}, headers=org.headers
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["field"] == field


async def test_a_stored_unsendable_token_fails_the_test_not_the_server(
    client: httpx.AsyncClient, org: Org, app: FastAPI
) -> None:
    config = await _official(client, org)
    async with app.state.session_factory() as session:
        await session.execute(
            update(Channel)
            .where(Channel.id == uuid.UUID(config["id"]))
            .values(access_token_encrypted=secret_box(app.state.settings).encrypt("tøken"))
        )
        await session.commit()
    resp = await client.post(f"/v1/whatsapp-configs/{config['id']}/test", headers=org.headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["success"] is False
    assert "enter them again" in resp.json()["message"]
