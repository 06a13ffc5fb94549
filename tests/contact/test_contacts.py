"""/v1/contacts: the documented endpoints, validation, duplicates and soft delete."""

from __future__ import annotations

import httpx

from tests.conftest import Org, register_org
from tests.contact.conftest import make_contact


async def test_create_returns_documented_shape(client: httpx.AsyncClient, org: Org) -> None:
    resp = await client.post(
        "/v1/contacts",
        json={
            "whatsapp_id": "+55 11 99999-9999",
            "name": "Maria Santos",
            "email": "maria@example.com",
            "tags": ["customer"],
            "attributes": {"city": "Rio de Janeiro", "plan": "premium"},
        },
        headers=org.headers,
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["whatsapp_id"] == "+5511999999999"
    assert body["name"] == "Maria Santos"
    assert body["email"] == "maria@example.com"
    assert body["tags"] == ["customer"]
    assert body["attributes"] == {"city": "Rio de Janeiro", "plan": "premium"}
    assert body["opt_in"] is True
    assert {"id", "created_at"} <= body.keys()


async def test_bad_e164_is_a_422_naming_the_field(client: httpx.AsyncClient, org: Org) -> None:
    for bad in ["12345", "not a number", "+999 1234", ""]:
        resp = await client.post("/v1/contacts", json={"whatsapp_id": bad}, headers=org.headers)
        assert resp.status_code == 422, (bad, resp.text)
        error = resp.json()["error"]
        assert error["code"] == "validation_error"
        assert {"field": "whatsapp_id", "message": "Phone number must be in E.164 format"} in error[
            "details"
        ]


async def test_missing_number_and_bad_email_are_422(client: httpx.AsyncClient, org: Org) -> None:
    resp = await client.post("/v1/contacts", json={"name": "x"}, headers=org.headers)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "whatsapp_id"
    resp = await client.post(
        "/v1/contacts", json={"whatsapp_id": "+5511988887777", "email": "nope"}, headers=org.headers
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "email"


async def test_duplicate_in_one_org_is_409_but_fine_across_orgs(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    await make_contact(client, org, "+5511977776666")
    again = await client.post(
        "/v1/contacts", json={"whatsapp_id": "5511977776666"}, headers=org.headers
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "duplicate_resource"
    elsewhere = await client.post(
        "/v1/contacts", json={"whatsapp_id": "+5511977776666"}, headers=other_org.headers
    )
    assert elsewhere.status_code == 201


async def test_brazilian_eight_and_nine_digit_spellings_are_one_contact(
    client: httpx.AsyncClient,
) -> None:
    org = await register_org(client)
    nine = await make_contact(client, org, "+5561999999999")
    dup = await client.post(
        "/v1/contacts", json={"whatsapp_id": "556199999999"}, headers=org.headers
    )
    assert dup.status_code == 409
    # The reverse: stored from the 8-digit spelling (normalised with the ninth digit).
    eight = await make_contact(client, org, "556188887777")
    assert eight["whatsapp_id"] == "+5561988887777"
    dup = await client.post(
        "/v1/contacts", json={"whatsapp_id": "+5561988887777"}, headers=org.headers
    )
    assert dup.status_code == 409
    for query, expected in [("556199999999", nine["id"]), ("5561988887777", eight["id"])]:
        found = await client.get("/v1/contacts", params={"search": query}, headers=org.headers)
        assert [c["id"] for c in found.json()["data"]] == [expected], query


async def test_get_has_every_documented_field(client: httpx.AsyncClient, org: Org) -> None:
    created = await make_contact(
        client, org, "+5511966665555", name="João Silva", tags=["lead", "vip"]
    )
    resp = await client.get(f"/v1/contacts/{created['id']}", headers=org.headers)
    assert resp.status_code == 200
    body = resp.json()
    documented = {
        "id", "whatsapp_id", "name", "email", "phone", "whatsapp_profile_pic_url", "tags",
        "attributes", "opt_in", "is_blocked", "total_conversations", "total_messages",
        "last_message_at", "created_at", "updated_at",
    }  # fmt: skip
    assert documented <= body.keys()
    assert body["phone"] == "+5511966665555"
    assert body["tags"] == ["lead", "vip"]
    assert body["is_blocked"] is False
    assert body["total_conversations"] == 0
    assert body["total_messages"] == 0
    assert body["last_message_at"] is None


async def test_patch_merges_attributes_and_replaces_tags(
    client: httpx.AsyncClient, org: Org
) -> None:
    created = await make_contact(
        client, org, "+5511955554444", name="Ana",
        attributes={"city": "Recife", "plan": "basic", "age": 30}, tags=["lead", "cold"],
    )  # fmt: skip
    resp = await client.patch(
        f"/v1/contacts/{created['id']}",
        json={"name": "Ana Paula", "attributes": {"plan": "enterprise", "age": None, "vip": True},
              "tags": ["customer", "vip"]},
        headers=org.headers,
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["name"] == "Ana Paula"
    assert body["attributes"] == {"city": "Recife", "plan": "enterprise", "vip": True}
    assert body["tags"] == ["customer", "vip"]
    # Fields not given are left alone.
    again = await client.patch(
        f"/v1/contacts/{created['id']}", json={"email": "ana@example.com"}, headers=org.headers
    )
    assert again.json()["name"] == "Ana Paula"
    assert again.json()["tags"] == ["customer", "vip"]
    assert again.json()["attributes"]["city"] == "Recife"


async def test_patch_number_to_another_contacts_number_is_409(
    client: httpx.AsyncClient, org: Org
) -> None:
    first = await make_contact(client, org, "+5511944443333")
    second = await make_contact(client, org, "+5511944442222")
    resp = await client.patch(
        f"/v1/contacts/{second['id']}",
        json={"whatsapp_id": "+55 11 94444-3333"},
        headers=org.headers,
    )
    assert resp.status_code == 409
    bad = await client.patch(
        f"/v1/contacts/{second['id']}", json={"whatsapp_id": "123"}, headers=org.headers
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "whatsapp_id"
    # Its own number (another spelling) is not a conflict.
    same = await client.patch(
        f"/v1/contacts/{first['id']}", json={"whatsapp_id": "5511944443333"}, headers=org.headers
    )
    assert same.status_code == 200


async def test_soft_delete_then_recreate(client: httpx.AsyncClient, org: Org) -> None:
    created = await make_contact(client, org, "+5511933332222", name="Gone Soon")
    resp = await client.delete(f"/v1/contacts/{created['id']}", headers=org.headers)
    assert resp.status_code == 204
    assert (
        await client.get(f"/v1/contacts/{created['id']}", headers=org.headers)
    ).status_code == 404
    assert (
        await client.patch(f"/v1/contacts/{created['id']}", json={"name": "x"}, headers=org.headers)
    ).status_code == 404
    assert (
        await client.delete(f"/v1/contacts/{created['id']}", headers=org.headers)
    ).status_code == 404
    listed = await client.get("/v1/contacts", params={"search": "gone soon"}, headers=org.headers)
    assert listed.json()["data"] == []
    again = await make_contact(client, org, "+5511933332222", name="Back Again")
    assert again["id"] != created["id"]


async def test_unknown_contact_and_malformed_id(client: httpx.AsyncClient, org: Org) -> None:
    missing = await client.get(
        "/v1/contacts/00000000-0000-0000-0000-000000000000", headers=org.headers
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_not_found"
    assert (await client.get("/v1/contacts/nope", headers=org.headers)).status_code == 422
