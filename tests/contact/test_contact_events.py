"""The contacts API records contact.created / contact.updated in the change's transaction."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from pytake.models.event import OutboxEvent
from tests.conftest import Org


async def _events(app: FastAPI, org: Org) -> list[OutboxEvent]:
    async with app.state.session_factory() as session:
        rows = await session.scalars(
            select(OutboxEvent)
            .where(
                OutboxEvent.organization_id == uuid.UUID(org.id), OutboxEvent.type.like("contact.%")
            )
            .order_by(OutboxEvent.id)
        )
        return list(rows)


async def test_create_update_and_consent_record_events(
    client: httpx.AsyncClient, app: FastAPI, org: Org
) -> None:
    created = await client.post(
        "/v1/contacts",
        json={"whatsapp_id": "+5511955554444", "name": "Maria"},
        headers=org.headers,
    )
    assert created.status_code == 201, created.text
    contact_id = created.json()["id"]
    patched = await client.patch(
        f"/v1/contacts/{contact_id}", json={"name": "Maria S."}, headers=org.headers
    )
    assert patched.status_code == 200
    out = await client.post(
        f"/v1/contacts/{contact_id}/opt-out", json={"source": "support"}, headers=org.headers
    )
    assert out.status_code == 200, out.text
    # A refused change records nothing.
    bad = await client.patch(
        f"/v1/contacts/{contact_id}", json={"whatsapp_id": "12"}, headers=org.headers
    )
    assert bad.status_code == 422

    events = await _events(app, org)
    assert [e.type for e in events] == ["contact.created", "contact.updated", "contact.updated"]
    assert events[0].payload["contact"]["id"] == contact_id
    assert events[0].payload["contact"]["whatsapp_id"] == "+5511955554444"
    assert events[1].payload["changes"] == ["name"]
    assert events[1].payload["contact"]["name"] == "Maria S."
    assert events[2].payload["changes"] == ["opt_in"]
    assert events[2].payload["contact"]["opt_in"] is False
