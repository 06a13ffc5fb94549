"""CSV export neutralises cells a spreadsheet would run as formulas (OWASP's CSV injection
rule: a leading `=`, `+`, `-`, `@`, tab or CR gets a `'`), and the import reads them back."""

from __future__ import annotations

import csv
import io

import httpx

from tests.conftest import register_org
from tests.contact.conftest import make_contact
from tests.contact.test_import_export import _import


async def test_formula_cells_are_quoted_and_import_back(client: httpx.AsyncClient) -> None:
    source = await register_org(client)
    await make_contact(
        client, source, "+5511944440001", name='=HYPERLINK("http://evil.example","x")',
        tags=["@admins"],
        attributes={"a": "+1-555", "b": -3, "c": "\tcmd", "d": "\rline", "e": "safe=yes"},
    )  # fmt: skip
    resp = await client.get("/v1/contacts/export", headers=source.headers)
    assert resp.status_code == 200
    [row] = list(csv.DictReader(io.StringIO(resp.text, newline="")))
    assert row["name"] == '\'=HYPERLINK("http://evil.example","x")'
    assert row["tags"] == "'@admins"
    assert (row["a"], row["b"], row["c"], row["d"]) == ("'+1-555", "'-3", "'\tcmd", "'\rline")
    assert row["e"] == "safe=yes"  # only the first character matters
    assert row["whatsapp_id"] == "+5511944440001"  # validated E.164: a number, never a formula

    target = await register_org(client)
    job = await _import(client, target, resp.content)
    assert (job["status"], job["created"], job["failed"]) == ("completed", 1, 0), job
    [back] = (await client.get("/v1/contacts", headers=target.headers)).json()["data"]
    assert back["name"] == '=HYPERLINK("http://evil.example","x")'
    assert back["tags"] == ["@admins"]
    assert back["attributes"]["a"] == "+1-555" and back["attributes"]["c"] == "\tcmd"
