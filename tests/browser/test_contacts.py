"""Contacts: the API's error under the field, create and edit, search, opt-out, CSV import."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

from tests.browser.conftest import Console


async def test_a_bad_number_shows_the_apis_error_under_the_field(console: Console) -> None:
    page = console.page
    console.problems.expect(422, "/v1/contacts")
    refused = await console.server.api("POST", "/v1/contacts", json={"whatsapp_id": "12"})
    [detail] = [d for d in refused.json()["error"]["details"] if d["field"] == "whatsapp_id"]

    await page.goto(console.url("/contacts/new"))
    await console.sign_in(open_console=False)
    number = page.get_by_label("WhatsApp number")
    await number.fill("12")
    await page.get_by_label("Name").fill("Bad Number")
    await page.get_by_role("button", name="Create contact").click()
    await page.get_by_text(detail["message"]).wait_for()
    # Under the field, and tied to it for screen readers.
    assert await number.get_attribute("aria-invalid") == "true"
    described = await number.get_attribute("aria-describedby") or ""
    texts = [await page.locator(f"#{i}").inner_text() for i in described.split() if i]
    assert detail["message"] in texts, texts
    await console.screenshot("contact-bad-number")

    good = "+55119" + str(uuid.uuid4().int)[:8]
    await number.fill(good)
    await page.get_by_role("button", name="Create contact").click()
    await page.get_by_role("heading", name="Edit contact").wait_for()
    await page.get_by_role("button", name="Opt out").click()
    await page.get_by_role("button", name="Opt in").wait_for()

    await page.get_by_role("link", name="Back to contacts").click()
    await page.get_by_label("Search").fill("Bad Number")
    table = page.get_by_role("table", name="Contacts")
    await table.get_by_role("row", name=re.compile(re.escape(good))).wait_for()
    assert (
        "Opted out" in await table.get_by_role("row", name=re.compile(re.escape(good))).inner_text()
    )
    await console.screenshot("contacts")


async def test_a_csv_import_shows_its_progress_and_failed_rows(
    console: Console, tmp_path: Path
) -> None:
    page = console.page
    tag = f"csv-{uuid.uuid4().hex[:6]}"
    rows = [f"+55119{str(uuid.uuid4().int)[:8]},Imported {n},,{tag}" for n in range(3)]
    csv = tmp_path / "contacts.csv"
    csv.write_text(
        "whatsapp_id,name,email,tags\n" + "\n".join([*rows, "not-a-number,Broken,,"]) + "\n"
    )
    await page.goto(console.url("/contacts"))
    await console.sign_in(open_console=False)
    async with page.expect_file_chooser() as chooser:
        await page.get_by_role("button", name="Import CSV").click()
    await (await chooser.value).set_files(str(csv))
    status = page.get_by_role("status").filter(has_text="Importing contacts.csv")
    await status.get_by_text("Import finished: 3 created, 0 updated, 1 failed").wait_for(
        timeout=20_000
    )
    assert await status.get_by_role("progressbar", name="Import progress").count() == 1
    failed = page.get_by_role("table", name="Rows that failed")
    assert "not-a-number" in await failed.inner_text()
    await page.get_by_role("combobox", name="Tag").fill(tag)
    await page.get_by_role("option", name=tag).click()
    await page.get_by_text("3 contacts").wait_for()
    async with page.expect_download() as download:
        await page.get_by_role("button", name="Export CSV").click()
    saved = Path(await (await download.value).path())
    exported = await asyncio.to_thread(saved.read_text)
    assert exported.count("Imported") == 3, exported
