"""GET /v1/contacts: pagination, filters and search (accents, e-mail fragments, phone formats)."""

from __future__ import annotations

import httpx
import pytest

from pytake.contact import listing
from tests.conftest import TEST_DATABASE_URL, Org, register_org
from tests.contact.conftest import make_contact

POSTGRES = bool(TEST_DATABASE_URL)


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
        "next_cursor": body["meta"]["next_cursor"],
    }  # fmt: skip
    assert isinstance(body["meta"]["next_cursor"], str)
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
                 "total_is_estimate": False, "next_cursor": None},
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


async def _walk(
    client: httpx.AsyncClient, org: Org, params: dict[str, str | int]
) -> tuple[list[str], list[dict[str, object]]]:
    """Every contact id of a list, following `meta.next_cursor`; and each page's meta."""
    ids: list[str] = []
    metas: list[dict[str, object]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        resp = await client.get("/v1/contacts", params=query, headers=org.headers)
        assert resp.status_code == 200, resp.text
        ids += [c["id"] for c in resp.json()["data"]]
        metas.append(resp.json()["meta"])
        cursor = resp.json()["meta"]["next_cursor"]
        if cursor is None:
            return ids, metas


async def test_cursor_pages_match_page_numbers(client: httpx.AsyncClient) -> None:
    org = await register_org(client)
    made = [
        await make_contact(client, org, f"+55119{7100_0000 + i}", tags=["odd"] if i % 2 else [])
        for i in range(7)
    ]
    newest_first = [c["id"] for c in made][::-1]
    ids, metas = await _walk(client, org, {"limit": 2})
    assert ids == newest_first
    assert [m["current_page"] for m in metas] == [1, 2, 3, 4]
    assert all(m["total"] == 7 and m["total_pages"] == 4 for m in metas)
    by_page = []
    for page in range(1, 5):
        resp = await client.get(
            "/v1/contacts", params={"limit": 2, "page": page}, headers=org.headers
        )
        by_page += [c["id"] for c in resp.json()["data"]]
    assert by_page == newest_first
    odd, _ = await _walk(client, org, {"limit": 2, "tags": "odd"})
    assert odd == [c["id"] for i, c in enumerate(made) if i % 2][::-1]
    digits, _ = await _walk(client, org, {"limit": 2, "search": "1197100"})
    assert digits == newest_first


async def test_tag_filter_skips_deleted_contacts_and_keeps_order(
    client: httpx.AsyncClient,
) -> None:
    org = await register_org(client)
    made = [await make_contact(client, org, f"+55119{7200_0000 + i}", tags=["t"]) for i in range(4)]
    gone = await client.delete(f"/v1/contacts/{made[2]['id']}", headers=org.headers)
    assert gone.status_code == 204
    # Tagged later than created: the list still follows the contacts' creation order.
    late = await client.patch(
        f"/v1/contacts/{made[0]['id']}", json={"tags": ["t", "u"]}, headers=org.headers
    )
    assert late.status_code == 200
    bulk = await client.post(
        "/v1/contacts/bulk/tags",
        json={"action": "add", "tag": "u", "filter": {"ids": [made[3]["id"]]}},
        headers=org.headers,
    )
    assert bulk.json()["affected"] == 1
    ids, metas = await _walk(client, org, {"limit": 1, "tags": "t"})
    assert ids == [made[3]["id"], made[1]["id"], made[0]["id"]]
    assert metas[0]["total"] == 3
    tags = (await client.get("/v1/tags", headers=org.headers)).json()
    assert {t["name"]: t["contact_count"] for t in tags} == {"t": 3, "u": 2}
    both, both_metas = await _walk(client, org, {"limit": 1, "tags": "u,t"})
    assert both == [made[3]["id"], made[0]["id"]]
    assert both_metas[0]["total"] == 2  # counted from the links of both tags


async def test_bad_cursor_and_cursor_with_page_are_422(client: httpx.AsyncClient, org: Org) -> None:
    for params in [{"cursor": "not-a-cursor"}, {"cursor": "W10"}, {"cursor": "e30", "page": 1}]:
        resp = await client.get("/v1/contacts", params=params, headers=org.headers)
        assert resp.status_code == 422, params
        assert resp.json()["error"]["details"][0]["field"] == "cursor"
    await make_contact(client, org, "+5511973000001")
    await make_contact(client, org, "+5511973000002")
    first = await client.get("/v1/contacts", params={"limit": 1}, headers=org.headers)
    cursor = first.json()["meta"]["next_cursor"]
    both = await client.get(
        "/v1/contacts", params={"limit": 1, "page": 2, "cursor": cursor}, headers=org.headers
    )
    assert both.status_code == 422
    assert both.json()["error"]["details"][0]["field"] == "cursor"


async def test_filtered_total_is_exact_up_to_the_cap(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await register_org(client)
    for i in range(5):
        await make_contact(client, org, f"+55119{7400_0000 + i}", name="Capped", tags=["c"])
    monkeypatch.setattr(listing, "FILTERED_COUNT_CAP", 2)
    # A single tag is counted from its links alone, so it keeps the higher cap.
    one_tag = await client.get(
        "/v1/contacts", params={"tags": "c", "limit": 1}, headers=org.headers
    )
    assert one_tag.json()["meta"]["total"] == 5
    assert one_tag.json()["meta"]["total_is_estimate"] is False
    for params in [{"tags": "c", "opt_in": "true"}, {"search": "capped"}]:
        first = await client.get("/v1/contacts", params={**params, "limit": 1}, headers=org.headers)
        meta = first.json()["meta"]
        if POSTGRES:  # beyond the cap: the planner's estimate, never below what was paged
            assert meta["total_is_estimate"] is True and meta["total"] >= 3, meta
        else:
            assert meta["total_is_estimate"] is False and meta["total"] == 5, meta
        last = await client.get(
            "/v1/contacts", params={**params, "limit": 2, "page": 3}, headers=org.headers
        )
        assert last.json()["meta"]["total"] == 5  # the last page knows the total exactly
        assert last.json()["meta"]["total_is_estimate"] is False


async def test_filtered_total_from_the_planner_when_it_expects_many(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await register_org(client)
    for i in range(3):
        await make_contact(client, org, f"+55119{7700_0000 + i}", name="Planned")
    monkeypatch.setattr(listing, "SKIP_COUNT_ABOVE", 0)  # "expects many" for any estimate
    first = await client.get(
        "/v1/contacts", params={"search": "planned", "limit": 1}, headers=org.headers
    )
    meta = first.json()["meta"]
    assert meta["total_is_estimate"] is POSTGRES, meta  # SQLite always counts
    assert meta["total"] >= 1 if POSTGRES else meta["total"] == 3
    last = await client.get(
        "/v1/contacts", params={"search": "planned", "limit": 2, "page": 2}, headers=org.headers
    )
    assert (last.json()["meta"]["total"], last.json()["meta"]["total_is_estimate"]) == (3, False)
