"""/v1/tags, consent (opt-in / opt-out) and blocking, bulk tagging, reachable contacts."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.contact.service import find_by_phone, reachable_contacts
from tests.conftest import Org, register_org
from tests.contact.conftest import make_contact


async def test_tag_crud_with_counts(client: httpx.AsyncClient) -> None:
    org = await register_org(client)
    a = await make_contact(client, org, "+5511955550001", tags=["lead"])
    await make_contact(client, org, "+5511955550002", tags=["lead", "vip"])
    created = await client.post(
        "/v1/tags", json={"name": "empty", "color": "#fff"}, headers=org.headers
    )
    assert created.status_code == 201
    assert created.json()["contact_count"] == 0
    dup = await client.post("/v1/tags", json={"name": "lead"}, headers=org.headers)
    assert dup.status_code == 409
    tags = (await client.get("/v1/tags", headers=org.headers)).json()
    assert [(t["name"], t["contact_count"]) for t in tags] == [
        ("empty", 0),
        ("lead", 2),
        ("vip", 1),
    ]
    lead_id = next(t["id"] for t in tags if t["name"] == "lead")
    # A deleted contact no longer counts.
    await client.delete(f"/v1/contacts/{a['id']}", headers=org.headers)
    renamed = await client.patch(
        f"/v1/tags/{lead_id}", json={"name": "prospect"}, headers=org.headers
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "prospect"
    assert renamed.json()["contact_count"] == 1
    clash = await client.patch(f"/v1/tags/{lead_id}", json={"name": "vip"}, headers=org.headers)
    assert clash.status_code == 409
    listed = await client.get("/v1/contacts", params={"tags": "prospect"}, headers=org.headers)
    assert len(listed.json()["data"]) == 1
    vip_id = next(t["id"] for t in tags if t["name"] == "vip")
    assert (await client.delete(f"/v1/tags/{vip_id}", headers=org.headers)).status_code == 204
    after = await client.get("/v1/contacts", headers=org.headers)
    assert [c["tags"] for c in after.json()["data"]] == [["prospect"]]
    assert (await client.get(f"/v1/tags/{vip_id}", headers=org.headers)).status_code == 404


async def test_opt_out_and_in_record_time_and_source(client: httpx.AsyncClient, org: Org) -> None:
    c = await make_contact(client, org, "+5511966660001")
    out = await client.post(
        f"/v1/contacts/{c['id']}/opt-out", json={"source": "support_call"}, headers=org.headers
    )
    assert out.status_code == 200
    body = out.json()
    assert body["opt_in"] is False
    assert body["opt_in_source"] == "support_call"
    assert body["opt_in_changed_at"] is not None
    back = await client.post(f"/v1/contacts/{c['id']}/opt-in", headers=org.headers)
    assert back.json()["opt_in"] is True
    assert back.json()["opt_in_source"] == "api"
    assert back.json()["opt_in_changed_at"] >= body["opt_in_changed_at"]


async def test_block_and_unblock(client: httpx.AsyncClient, org: Org) -> None:
    c = await make_contact(client, org, "+5511966660002")
    blocked = await client.post(f"/v1/contacts/{c['id']}/block", headers=org.headers)
    assert blocked.json()["is_blocked"] is True
    assert blocked.json()["blocked_at"] is not None
    unblocked = await client.post(f"/v1/contacts/{c['id']}/unblock", headers=org.headers)
    assert unblocked.json()["is_blocked"] is False
    assert unblocked.json()["blocked_at"] is None
    via_patch = await client.patch(
        f"/v1/contacts/{c['id']}", json={"is_blocked": True}, headers=org.headers
    )
    assert via_patch.json()["is_blocked"] is True


async def test_bulk_add_and_remove_tag_by_filter(client: httpx.AsyncClient) -> None:
    org = await register_org(client)
    sp = [await make_contact(client, org, f"+55119777700{i}", name=f"Paulo {i}") for i in range(3)]
    other = await make_contact(client, org, "+5511977770099", name="Rita")
    add = await client.post(
        "/v1/contacts/bulk/tags",
        json={"action": "add", "tag": "campaign-a", "filter": {"search": "paulo"}},
        headers=org.headers,
    )
    assert add.status_code == 200, add.text
    assert add.json()["affected"] == 3
    again = await client.post(
        "/v1/contacts/bulk/tags",
        json={"action": "add", "tag": "campaign-a", "filter": {}},
        headers=org.headers,
    )
    assert again.json()["affected"] == 1  # only Rita lacked it
    remove = await client.post(
        "/v1/contacts/bulk/tags",
        json={
            "action": "remove",
            "tag": "campaign-a",
            "filter": {"ids": [sp[0]["id"], other["id"]]},
        },
        headers=org.headers,
    )
    assert remove.json()["affected"] == 2
    tagged = await client.get("/v1/contacts", params={"tags": "campaign-a"}, headers=org.headers)
    assert {c["id"] for c in tagged.json()["data"]} == {sp[1]["id"], sp[2]["id"]}
    bad = await client.post(
        "/v1/contacts/bulk/tags",
        json={"action": "flip", "tag": "x", "filter": {}},
        headers=org.headers,
    )
    assert bad.status_code == 422


async def test_reachable_contacts_skip_opted_out_blocked_and_deleted(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    org = await register_org(client)
    ok = await make_contact(client, org, "+5511988880001", tags=["x"])
    out = await make_contact(client, org, "+5511988880002", opt_in=False)
    blocked = await make_contact(client, org, "+5511988880003")
    gone = await make_contact(client, org, "+5511988880004")
    await client.post(f"/v1/contacts/{blocked['id']}/block", headers=org.headers)
    await client.delete(f"/v1/contacts/{gone['id']}", headers=org.headers)
    other = await register_org(client)
    await make_contact(client, other, "+5511988880005")
    factory: async_sessionmaker[AsyncSession] = app.state.session_factory
    async with factory() as session:
        ids = set(await session.scalars(reachable_contacts(uuid.UUID(org.id))))
        found = await find_by_phone(session, uuid.UUID(org.id), "551188880001")
    assert ids == {uuid.UUID(ok["id"])}
    assert out["id"] not in {str(i) for i in ids}
    assert found is not None and str(found.id) == ok["id"]
