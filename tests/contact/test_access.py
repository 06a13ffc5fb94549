"""Scopes and tenant isolation on every contact and tag endpoint."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Org, add_user, create_api_key, register_org
from tests.contact.conftest import make_contact

CSV = b"whatsapp_id,name\n+5511900000001,A\n"


async def test_read_scope_reads_but_cannot_write(client: httpx.AsyncClient, org: Org) -> None:
    c = await make_contact(client, org, "+5511912340001")
    key = await create_api_key(client, org, ["contacts:read"])
    h = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/v1/contacts", headers=h)).status_code == 200
    assert (await client.get(f"/v1/contacts/{c['id']}", headers=h)).status_code == 200
    assert (await client.get("/v1/tags", headers=h)).status_code == 200
    assert (await client.get("/v1/contacts/export", headers=h)).status_code == 200
    for method, path, kwargs in [
        ("POST", "/v1/contacts", {"json": {"whatsapp_id": "+5511912340002"}}),
        ("PATCH", f"/v1/contacts/{c['id']}", {"json": {"name": "x"}}),
        ("DELETE", f"/v1/contacts/{c['id']}", {}),
        ("POST", f"/v1/contacts/{c['id']}/opt-out", {}),
        ("POST", f"/v1/contacts/{c['id']}/block", {}),
        ("POST", "/v1/tags", {"json": {"name": "t"}}),
        ("POST", "/v1/contacts/bulk/tags", {"json": {"action": "add", "tag": "t", "filter": {}}}),
        ("POST", "/v1/contacts/import", {"files": {"file": ("c.csv", CSV, "text/csv")}}),
    ]:
        resp = await client.request(method, path, headers=h, **kwargs)
        assert resp.status_code == 403, (method, path, resp.text)
        assert resp.json()["error"]["code"] == "insufficient_permissions"


async def test_write_scope_writes_and_no_scope_reads_nothing(
    client: httpx.AsyncClient, org: Org
) -> None:
    writer = {"Authorization": f"Bearer {await create_api_key(client, org, ['contacts:write'])}"}
    resp = await client.post("/v1/contacts", json={"whatsapp_id": "+5511912340003"}, headers=writer)
    assert resp.status_code == 201
    # Writing does not imply reading.
    assert (await client.get("/v1/contacts", headers=writer)).status_code == 403
    other = {"Authorization": f"Bearer {await create_api_key(client, org, ['messages:send'])}"}
    assert (await client.get("/v1/contacts", headers=other)).status_code == 403
    assert (await client.get("/v1/tags", headers=other)).status_code == 403
    assert (await client.get("/v1/contacts")).status_code == 401


async def test_viewer_reads_and_agent_writes(client: httpx.AsyncClient, org: Org) -> None:
    _, viewer = await add_user(client, org, "viewer")
    _, agent = await add_user(client, org, "agent")
    vh, ah = {"Authorization": f"Bearer {viewer}"}, {"Authorization": f"Bearer {agent}"}
    assert (await client.get("/v1/contacts", headers=vh)).status_code == 200
    denied = await client.post("/v1/contacts", json={"whatsapp_id": "+5511912340004"}, headers=vh)
    assert denied.status_code == 403
    ok = await client.post("/v1/contacts", json={"whatsapp_id": "+5511912340004"}, headers=ah)
    assert ok.status_code == 201


@pytest.fixture
async def foreign(client: httpx.AsyncClient) -> tuple[Org, dict[str, str], str]:
    """Another organisation's contact and tag ids."""
    owner = await register_org(client)
    c = await make_contact(client, owner, "+5511912349999", name="Secret Person", tags=["hidden"])
    tag = (await client.get("/v1/tags", headers=owner.headers)).json()[0]
    return owner, c, tag["id"]


async def test_another_orgs_contact_is_404_everywhere(
    client: httpx.AsyncClient, org: Org, foreign: tuple[Org, dict[str, str], str]
) -> None:
    owner, c, tag_id = foreign
    cid = c["id"]
    for method, path, kwargs in [
        ("GET", f"/v1/contacts/{cid}", {}),
        ("PATCH", f"/v1/contacts/{cid}", {"json": {"name": "x"}}),
        ("DELETE", f"/v1/contacts/{cid}", {}),
        ("POST", f"/v1/contacts/{cid}/opt-in", {}),
        ("POST", f"/v1/contacts/{cid}/opt-out", {}),
        ("POST", f"/v1/contacts/{cid}/block", {}),
        ("POST", f"/v1/contacts/{cid}/unblock", {}),
        ("GET", f"/v1/tags/{tag_id}", {}),
        ("PATCH", f"/v1/tags/{tag_id}", {"json": {"name": "mine"}}),
        ("DELETE", f"/v1/tags/{tag_id}", {}),
    ]:
        resp = await client.request(method, path, headers=org.headers, **kwargs)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json()["error"]["code"] == "resource_not_found"
    # Lists, searches, tags, exports and bulk operations never reach into the other org.
    listed = await client.get("/v1/contacts", params={"search": "secret"}, headers=org.headers)
    assert listed.json()["data"] == []
    assert (
        await client.get("/v1/contacts", params={"tags": "hidden"}, headers=org.headers)
    ).json()["data"] == []
    assert all(
        t["id"] != tag_id for t in (await client.get("/v1/tags", headers=org.headers)).json()
    )
    export = await client.get("/v1/contacts/export", headers=org.headers)
    assert "5511912349999" not in export.text
    bulk = await client.post(
        "/v1/contacts/bulk/tags",
        json={"action": "add", "tag": "grab", "filter": {"ids": [cid]}},
        headers=org.headers,
    )
    assert bulk.json()["affected"] == 0
    # The owner still sees it intact.
    mine = await client.get(f"/v1/contacts/{cid}", headers=owner.headers)
    assert mine.json()["name"] == "Secret Person"
    assert mine.json()["tags"] == ["hidden"]


async def test_another_orgs_import_job_is_404(
    client: httpx.AsyncClient, org: Org, foreign: tuple[Org, dict[str, str], str]
) -> None:
    owner = foreign[0]
    resp = await client.post(
        "/v1/contacts/import", files={"file": ("c.csv", CSV, "text/csv")}, headers=owner.headers
    )
    assert resp.status_code == 202
    job_id = resp.json()["id"]
    assert (
        await client.get(f"/v1/contacts/import/{job_id}", headers=org.headers)
    ).status_code == 404
    assert (
        await client.get(f"/v1/contacts/import/{job_id}", headers=owner.headers)
    ).status_code == 200
