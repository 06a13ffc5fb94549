"""CSV imports with malformed line endings or NUL characters: a 422 for an unreadable header, a
row failure for an unreadable line, and the rest of the file still imported (found by the API
fuzzer as 500s, and on PostgreSQL as a failed job)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import Org
from tests.contact.test_import_export import _import


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"whatsapp_id,name\r+5511922220001,Ana\r+5511922220002,Bia\r", "CR alone"),
        (b"whatsapp_id,na\x00me\n+5511922220003,Ana\n", "NUL"),
    ],
)
async def test_an_unreadable_header_is_a_422(
    client: httpx.AsyncClient, org: Org, content: bytes, message: str
) -> None:
    resp = await client.post(
        "/v1/contacts/import", files={"file": ("c.csv", content, "text/csv")}, headers=org.headers
    )
    assert resp.status_code == 422, resp.text
    detail = resp.json()["error"]["details"][0]
    assert detail["field"] == "file"
    assert message in detail["message"]


async def test_unreadable_lines_fail_alone(client: httpx.AsyncClient, org: Org) -> None:
    content = (
        b"whatsapp_id,name\r\n"
        b"+5511922220011,Ana\r\n"
        b"+5511922220012,Bi\ra\r\n"  # a CR inside an unquoted field
        b"+5511922220013,Ca\x00io\r\n"  # a NUL (PostgreSQL cannot store it)
        b"+5511922220014,Davi\r\n"
    )
    job = await _import(client, org, content)
    assert job["status"] == "completed", job
    assert (job["created"], job["failed"]) == (2, 2), job
    errors = {e["row"]: e for e in job["errors"]}
    assert "Malformed CSV line" in errors[2]["reason"]
    assert errors[3]["field"] == "name" and "NUL" in errors[3]["reason"]
    names = (await client.get("/v1/contacts", headers=org.headers)).json()["data"]
    assert sorted(c["name"] for c in names) == ["Ana", "Davi"]


async def test_a_nul_in_the_file_name_is_dropped(client: httpx.AsyncClient, org: Org) -> None:
    body = (
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="file"; filename="li\x00st.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n"
        b"whatsapp_id\n+5511922220021\n\r\n"
        b"--b0undary--\r\n"
    )
    resp = await client.post(
        "/v1/contacts/import",
        content=body,
        headers={**org.headers, "content-type": "multipart/form-data; boundary=b0undary"},
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["filename"] == "list.csv"
    # Let the job end here: a job still running would share other tests' patched importer.
    await _finished(client, org, resp.json()["id"])


async def _finished(client: httpx.AsyncClient, org: Org, job_id: str) -> None:
    for _ in range(500):
        job = (await client.get(f"/v1/contacts/import/{job_id}", headers=org.headers)).json()
        if job["status"] in ("completed", "failed"):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"import did not finish: {job}")
