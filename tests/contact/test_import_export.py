"""CSV import (a background job with progress and row errors) and CSV export."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import httpx

from tests.conftest import Org, register_org
from tests.contact.conftest import make_contact


async def _import(client: httpx.AsyncClient, org: Org, content: bytes) -> dict[str, Any]:
    resp = await client.post(
        "/v1/contacts/import", files={"file": ("c.csv", content, "text/csv")}, headers=org.headers
    )
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    for _ in range(500):  # the job runs as a task on this event loop; wait for it to finish
        job = (await client.get(f"/v1/contacts/import/{job_id}", headers=org.headers)).json()
        if job["status"] in ("completed", "failed"):
            return dict(job)
        await asyncio.sleep(0.02)
    raise AssertionError(f"import did not finish: {job}")


async def test_import_good_and_bad_rows(client: httpx.AsyncClient) -> None:
    org = await register_org(client)
    existing = await make_contact(
        client, org, "+5561999990000", name="Old Name", attributes={"city": "Brasília"}, tags=["a"]
    )
    content = (
        "\ufeffwhatsapp_id,name,email,tags,city,plan\n"
        '+55 11 91111-0001,Ana,ana@example.com,"lead,vip",São Paulo,gold\n'
        "5511911110002,Bruno,,lead,,\n"
        "not-a-phone,Carla,,,,\n"
        "+5511911110003,Davi,bad-email,,,\n"
        "556199990000,New Name,,b,,silver\n"  # the 8-digit spelling of the existing contact
        "\n"
        "+5511911110004,Too,Many,Columns,x,y,z\n"
        "+5511911110002,Bruno Again,,,Rio,\n"  # repeated number: updates the contact just made
    ).encode()
    job = await _import(client, org, content)
    assert job["status"] == "completed", job
    assert job["created"] == 2
    assert job["updated"] == 2
    assert job["failed"] == 3
    assert job["progress"] == 1.0
    assert job["columns"] == ["whatsapp_id", "name", "email", "tags", "city", "plan"]
    errors = {e["row"]: e for e in job["errors"]}
    assert errors[3]["field"] == "whatsapp_id"
    assert errors[3]["reason"] == "Phone number must be in E.164 format"
    assert errors[3]["whatsapp_id"] == "not-a-phone"
    assert errors[4]["field"] == "email"
    assert "columns" in errors[7]["reason"]

    ana = (await client.get("/v1/contacts", params={"search": "ana@"}, headers=org.headers)).json()
    assert ana["data"][0]["whatsapp_id"] == "+5511911110001"
    assert ana["data"][0]["tags"] == ["lead", "vip"]
    assert ana["data"][0]["attributes"] == {"city": "São Paulo", "plan": "gold"}
    bruno = (
        await client.get("/v1/contacts", params={"search": "11911110002"}, headers=org.headers)
    ).json()
    assert bruno["meta"]["total"] == 1
    assert bruno["data"][0]["name"] == "Bruno Again"
    assert bruno["data"][0]["attributes"] == {"city": "Rio"}
    old = (await client.get(f"/v1/contacts/{existing['id']}", headers=org.headers)).json()
    assert old["name"] == "New Name"
    assert old["attributes"] == {"city": "Brasília", "plan": "silver"}
    assert old["tags"] == ["a", "b"]


async def test_import_without_whatsapp_id_column_is_422(
    client: httpx.AsyncClient, org: Org
) -> None:
    resp = await client.post(
        "/v1/contacts/import",
        files={"file": ("c.csv", b"phone,name\n+5511911110001,A\n", "text/csv")},
        headers=org.headers,
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "file"
    missing = await client.post("/v1/contacts/import", headers=org.headers)
    assert missing.status_code == 422


async def test_import_in_several_batches(client: httpx.AsyncClient, monkeypatch: Any) -> None:
    from pytake.contact import importer

    monkeypatch.setattr(importer, "BATCH_ROWS", 7)
    org = await register_org(client)
    lines = ["whatsapp_id,name"] + [f"+55119222{i:05d},Person {i}" for i in range(50)]
    job = await _import(client, org, ("\n".join(lines) + "\n").encode())
    assert (job["status"], job["created"], job["rows_processed"]) == ("completed", 50, 50)
    listed = await client.get("/v1/contacts", params={"limit": 1}, headers=org.headers)
    assert listed.json()["meta"]["total"] == 50


async def test_export_round_trip(client: httpx.AsyncClient) -> None:
    source = await register_org(client)
    await make_contact(
        client, source, "+5511933330001", name="Zé, \"o\" Primeiro", email="ze@example.com",
        tags=["lead", "vip"], attributes={"city": "São Paulo", "age": 30},
    )  # fmt: skip
    await make_contact(client, source, "+5521933330002", name="Sem Tags", opt_in=False)
    await make_contact(client, source, "+5531933330003", name="Filtered Out", tags=["cold"])
    resp = await client.get("/v1/contacts/export", params={"tags": "lead"}, headers=source.headers)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert len(rows) == 1
    assert rows[0]["name"] == 'Zé, "o" Primeiro'
    assert rows[0]["tags"] == "lead,vip"
    assert rows[0]["city"] == "São Paulo"
    assert rows[0]["age"] == "30"

    everything = await client.get("/v1/contacts/export", headers=source.headers)
    target = await register_org(client)
    job = await _import(client, target, everything.content)
    assert (job["status"], job["created"], job["failed"]) == ("completed", 3, 0)

    def view(body: dict[str, Any]) -> list[tuple[Any, ...]]:
        return sorted(
            (c["whatsapp_id"], c["name"], c["email"], tuple(c["tags"]), c["opt_in"],
             {k: str(v) for k, v in c["attributes"].items()})
            for c in body["data"]
        )  # fmt: skip

    before = (await client.get("/v1/contacts", headers=source.headers)).json()
    after = (await client.get("/v1/contacts", headers=target.headers)).json()
    assert view(after) == view(before)


async def test_export_of_unknown_tag_is_just_a_header(client: httpx.AsyncClient, org: Org) -> None:
    resp = await client.get("/v1/contacts/export", params={"tags": "nope"}, headers=org.headers)
    assert resp.status_code == 200
    assert resp.text.strip().split(",")[:2] == ["id", "whatsapp_id"]
    assert len(resp.text.strip().splitlines()) == 1


async def test_attributes_named_like_columns_survive_export_and_import(
    client: httpx.AsyncClient,
) -> None:
    source = await register_org(client)
    attributes = {"name": "Apelido", "email": "outro@example.com", "id": "ERP-7",
                  "tags": "x;y", "attr.kind": "nested", "plan": "gold"}  # fmt: skip
    await make_contact(
        client, source, "+5511976000001", name="Real Name", email="real@example.com",
        tags=["t"], attributes=attributes,
    )  # fmt: skip
    resp = await client.get("/v1/contacts/export", headers=source.headers)
    header = next(csv.reader(io.StringIO(resp.text)))
    # Sorted by attribute name; prefixed where the import would read something else.
    assert header[8:] == ["attr.attr.kind", "attr.email", "attr.id", "attr.name", "plan",
                          "attr.tags"]  # fmt: skip
    row = next(csv.DictReader(io.StringIO(resp.text)))
    assert (row["name"], row["email"], row["tags"]) == ("Real Name", "real@example.com", "t")
    assert row["attr.name"] == "Apelido"

    target = await register_org(client)
    job = await _import(client, target, resp.content)
    assert (job["status"], job["created"], job["failed"]) == ("completed", 1, 0), job
    imported = (await client.get("/v1/contacts", headers=target.headers)).json()["data"][0]
    assert imported["name"] == "Real Name"
    assert imported["email"] == "real@example.com"
    assert imported["tags"] == ["t"]
    assert imported["attributes"] == attributes
