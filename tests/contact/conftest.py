"""Helpers for the contact tests: create contacts through the public API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Org


async def make_contact(
    client: httpx.AsyncClient, org: Org, number: str, **fields: Any
) -> dict[str, Any]:
    resp = await client.post(
        "/v1/contacts", json={"whatsapp_id": number, **fields}, headers=org.headers
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())
