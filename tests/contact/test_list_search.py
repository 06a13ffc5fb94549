"""GET /v1/contacts: pagination, filters and search (accents, e-mail fragments, phone formats)."""

from __future__ import annotations

import httpx

from tests.conftest import Org, register_org
from tests.contact.conftest import make_contact


async def test_limit_above_100_and_bad_opt_in_are_422(client: httpx.AsyncClient, org: Org) -> None:
    resp = await client.get("/v1/contacts", params={"limit": 101}, headers=org.headers)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "limit"
    resp = await client.get("/v1/contacts", params={"opt_in": "maybe"}, headers=org.headers)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "opt_in"
    resp = await client.get("/v1/contacts", params={"page": 0}, headers=org.headers)
    assert resp.status_code == 422


async def test_pages_newest_first_with_meta(client: httpx.AsyncClient) -> None:
    org = await register_org(client)
    ids = [(await make_contact(client, org, f"+55119{7000_0000 + i}"))["id"] for i in range(5)]
    first = await client.get("/v1/contacts", params={"limit": 2}, headers=org.headers)
    assert first.status_code == 200
    body = first.json()
    assert body["meta"] == {
        "current_page": 1, "per_page": 2, "total": 5, "total_pages": 3, "total_is_estimate": False,
    }  # fmt: skip
    assert [c["id"] for c in body["data"]] == ids[::-1][:2]
    last = await client.get("/v1/contacts", params={"limit": 2, "page": 3}, headers=org.headers)
    assert [c["id"] for c in last.json()["data"]] == [ids[0]]
    beyond = await client.get("/v1/contacts", params={"limit": 2, "page": 9}, headers=org.headers)
    assert beyond.json()["data"] == []
    assert beyond.json()["meta"]["total"] == 5


async def test_tags_filter_needs_all_tags_and_accepts_both_spellings(
    client: httpx.AsyncClient,
) -> None:
    org = await register_org(client)
    both = await make_contact(client, org, "+5511911110001", tags=["lead", "vip"])
    await make_contact(client, org, "+5511911110002", tags=["lead"])
    await make_contact(client, org, "+5511911110003")
    for params in [{"tags": "lead,vip"}, [("tags", "lead"), ("tags", "vip")]]:
        resp = await client.get("/v1/contacts", params=params, headers=org.headers)
        assert [c["id"] for c in resp.json()["data"]] == [both["id"]], params
    lead = await client.get("/v1/contacts", params={"tags": "lead"}, headers=org.headers)
    assert len(lead.json()["data"]) == 2
    unknown = await client.get("/v1/contacts", params={"tags": "nope"}, headers=org.headers)
    assert unknown.status_code == 200
    assert unknown.json() == {
        "data": [],
        "meta": {"current_page": 1, "per_page": 50, "total": 0, "total_pages": 0,
                 "total_is_estimate": False},
    }  # fmt: skip
    partly = await client.get("/v1/contacts", params={"tags": "lead,nope"}, headers=org.headers)
    assert partly.json()["data"] == []


async def test_opt_in_filter(client: httpx.AsyncClient) -> None:
    org = await register_org(client)
    yes = await make_contact(client, org, "+5511922220001")
    no = await make_contact(client, org, "+5511922220002", opt_in=False)
    for value, expected in [("true", yes["id"]), ("false", no["id"])]:
        resp = await client.get("/v1/contacts", params={"opt_in": value}, headers=org.headers)
        assert [c["id"] for c in resp.json()["data"]] == [expected]


async def test_search_by_accented_name_and_partial_email(client: httpx.AsyncClient) -> None:
    org = await register_org(client)
    joao = await make_contact(client, org, "+5511933330001", name="João Conceição")
    maria = await make_contact(client, org, "+5511933330002", email="Maria.Souza@Empresa.com.br")
    await make_contact(client, org, "+5511933330003", name="Pedro")
    for query in ["joao", "JOÃO", "conceicao", "Conceição", "ão conc"]:
        resp = await client.get("/v1/contacts", params={"search": query}, headers=org.headers)
        assert [c["id"] for c in resp.json()["data"]] == [joao["id"]], query
    for query in ["souza@emp", "EMPRESA.COM", "maria.s"]:
        resp = await client.get("/v1/contacts", params={"search": query}, headers=org.headers)
        assert [c["id"] for c in resp.json()["data"]] == [maria["id"]], query
    none = await client.get("/v1/contacts", params={"search": "zzz%_"}, headers=org.headers)
    assert none.json()["data"] == []


async def test_search_by_phone_in_several_formats(client: httpx.AsyncClient) -> None:
    org = await register_org(client)
    target = await make_contact(client, org, "+5521987654321")
    await make_contact(client, org, "+5511912345678")
    for query in [
        "+55 21 98765-4321",
        "5521987654321",
        "(21) 98765-4321",
        "98765-4321",
        "552187654321",
    ]:
        resp = await client.get("/v1/contacts", params={"search": query}, headers=org.headers)
        assert [c["id"] for c in resp.json()["data"]] == [target["id"]], query


async def test_search_combines_with_filters(client: httpx.AsyncClient) -> None:
    org = await register_org(client)
    vip = await make_contact(client, org, "+5511944440001", name="Carla", tags=["vip"])
    await make_contact(client, org, "+5511944440002", name="Carla")
    resp = await client.get(
        "/v1/contacts", params={"search": "carla", "tags": "vip"}, headers=org.headers
    )
    assert [c["id"] for c in resp.json()["data"]] == [vip["id"]]
