"""/v1/teams: CRUD, members, scopes, tenant isolation; conversations routed to a team."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import Org, add_user, create_api_key, register_org
from tests.message.sending.support import Shop, new_customer


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _team(client: httpx.AsyncClient, org: Org, name: str, **body: object) -> dict:  # type: ignore[type-arg]
    resp = await client.post("/v1/teams", json={"name": name, **body}, headers=org.headers)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def test_create_list_get_rename_and_delete(client: httpx.AsyncClient, org: Org) -> None:
    agent_id, _ = await add_user(client, org, "agent")
    tech = await _team(client, org, "  Tech   Support ", description="Level 1",
                       member_ids=[agent_id, agent_id])  # fmt: skip
    assert tech["name"] == "Tech Support" and tech["description"] == "Level 1"
    assert [m["id"] for m in tech["members"]] == [agent_id] and tech["member_count"] == 1
    assert tech["members"][0]["role"] == "agent"
    await _team(client, org, "billing")
    page = (await client.get("/v1/teams", headers=org.headers)).json()
    assert [t["name"] for t in page["data"]] == ["billing", "Tech Support"]  # by name
    assert page["meta"]["total"] == 2
    got = await client.get(f"/v1/teams/{tech['id']}", headers=org.headers)
    assert got.status_code == 200 and got.json()["members"][0]["id"] == agent_id
    renamed = await client.patch(
        f"/v1/teams/{tech['id']}", json={"name": "Técnico", "description": None},
        headers=org.headers,
    )  # fmt: skip
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Técnico" and renamed.json()["description"] is None
    assert (await client.delete(f"/v1/teams/{tech['id']}", headers=org.headers)).status_code == 204
    gone = await client.get(f"/v1/teams/{tech['id']}", headers=org.headers)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "resource_not_found"


async def test_names_are_unique_case_accent_and_separator_insensitively(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    first = await _team(client, org, "Suporte Técnico")
    for clash in ("suporte_tecnico", "SUPORTE-TÉCNICO", "suporte  tecnico"):
        resp = await client.post("/v1/teams", json={"name": clash}, headers=org.headers)
        assert resp.status_code == 409, clash
        assert resp.json()["error"]["code"] == "duplicate_resource"
    other = await _team(client, org, "Sales")
    clash = await client.patch(
        f"/v1/teams/{other['id']}", json={"name": "suporte tecnico"}, headers=org.headers
    )
    assert clash.status_code == 409
    # Renaming a team to another spelling of its own name is fine.
    same = await client.patch(
        f"/v1/teams/{first['id']}", json={"name": "Suporte técnico"}, headers=org.headers
    )
    assert same.status_code == 200
    await _team(client, other_org, "Suporte Técnico")  # another organisation's namespace
    for bad in ("", "   ", "---", "x" * 101):
        resp = await client.post("/v1/teams", json={"name": bad}, headers=org.headers)
        assert resp.status_code == 422, bad
        assert resp.json()["error"]["details"][0]["field"] == "name"


async def test_members_are_added_once_and_removed(client: httpx.AsyncClient, org: Org) -> None:
    team = await _team(client, org, "Sales")
    agent_id, _ = await add_user(client, org, "agent")
    url = f"/v1/teams/{team['id']}/members"
    for _ in range(2):
        resp = await client.post(url, json={"user_id": agent_id}, headers=org.headers)
        assert resp.status_code == 201, resp.text
        assert [m["id"] for m in resp.json()["members"]] == [agent_id]
    assert (await client.delete(f"{url}/{agent_id}", headers=org.headers)).status_code == 204
    again = await client.delete(f"{url}/{agent_id}", headers=org.headers)
    assert again.status_code == 404
    nobody = await client.post(url, json={"user_id": str(uuid.uuid4())}, headers=org.headers)
    assert nobody.status_code == 422
    assert nobody.json()["error"]["details"][0]["field"] == "user_id"


async def test_scopes_agents_read_admins_write(client: httpx.AsyncClient, org: Org) -> None:
    team = await _team(client, org, "Sales")
    _, agent = await add_user(client, org, "agent")
    reader = await create_api_key(client, org, ["teams:read"])
    writer = await create_api_key(client, org, ["teams:write"])
    for token in (agent, reader):
        assert (await client.get("/v1/teams", headers=_bearer(token))).status_code == 200
        for method, path, body in (
            ("POST", "/v1/teams", {"name": "New"}),
            ("PATCH", f"/v1/teams/{team['id']}", {"name": "Renamed"}),
            ("DELETE", f"/v1/teams/{team['id']}", None),
            ("POST", f"/v1/teams/{team['id']}/members", {"user_id": org.admin_id}),
        ):
            resp = await client.request(method, path, json=body, headers=_bearer(token))
            assert resp.status_code == 403, (method, path)
            assert resp.json()["error"]["code"] == "insufficient_permissions"
    made = await client.post("/v1/teams", json={"name": "Keyed"}, headers=_bearer(writer))
    assert made.status_code == 201
    assert (await client.get("/v1/teams", headers=_bearer(writer))).status_code == 403


async def test_another_organisations_team_is_not_found(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    theirs = await _team(client, other_org, "Theirs")
    base = f"/v1/teams/{theirs['id']}"
    for method, path, body in (
        ("GET", base, None),
        ("PATCH", base, {"name": "Mine now"}),
        ("DELETE", base, None),
        ("POST", f"{base}/members", {"user_id": org.admin_id}),
        ("DELETE", f"{base}/members/{other_org.admin_id}", None),
    ):
        resp = await client.request(method, path, json=body, headers=org.headers)
        assert resp.status_code == 404, (method, path)
    listed = (await client.get("/v1/teams", headers=org.headers)).json()
    assert listed["data"] == []
    # Nor can a team take a user of another organisation.
    mine = await _team(client, org, "Mine")
    resp = await client.post(
        f"/v1/teams/{mine['id']}/members", json={"user_id": other_org.admin_id},
        headers=org.headers,
    )  # fmt: skip
    assert resp.status_code == 422
    still = await client.get(base, headers=other_org.headers)
    assert still.json()["name"] == "Theirs"


async def test_a_conversation_is_routed_to_a_team_and_filtered_by_it(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    wa_id, other = new_customer(), new_customer()
    await shop.customer_writes(wa_id, "hello")
    await shop.customer_writes(other, "hi")
    listed = await http.get("/v1/conversations", params={"search": wa_id}, headers=shop.headers)
    conv = listed.json()["data"][0]
    assert conv["team"] is None
    team = await _team(http, shop.org, "Tech")
    url = f"/v1/conversations/{conv['id']}"
    patched = await http.patch(url, json={"team_id": team["id"]}, headers=shop.headers)
    assert patched.status_code == 200, patched.text
    assert patched.json()["team"] == {"id": team["id"], "name": "Tech"}
    detail = await http.get(url, headers=shop.headers)
    assert detail.json()["team"]["name"] == "Tech"
    only = await http.get("/v1/conversations", params={"team_id": team["id"]},
                          headers=shop.headers)  # fmt: skip
    assert [c["id"] for c in only.json()["data"]] == [conv["id"]]
    stranger = await register_org(http, "Stranger")
    theirs = await _team(http, stranger, "Tech")
    refused = await http.patch(url, json={"team_id": theirs["id"]}, headers=shop.headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "team_id"
    # Deleting the team leaves the conversation where it was, without a team.
    assert (await http.delete(f"/v1/teams/{team['id']}", headers=shop.headers)).status_code == 204
    after = (await http.get(url, headers=shop.headers)).json()
    assert after["team"] is None and after["status"] == conv["status"]
    cleared = await http.patch(url, json={"team_id": None}, headers=shop.headers)
    assert cleared.status_code == 200 and cleared.json()["team"] is None
