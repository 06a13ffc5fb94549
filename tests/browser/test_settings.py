"""Settings: an API key created and shown once; a webhook created, its test ping in the log."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.browser.conftest import Console


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"received": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    """A webhook receiver on a loopback port that answers 200."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/pytake"
    server.shutdown()


async def test_an_api_key_is_created_and_shown_once(console: Console) -> None:
    page = console.page
    await console.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.goto(console.url("/settings/api-keys"))
    await console.sign_in(open_console=False)
    await page.get_by_role("button", name="Create API key").click()
    dialog = page.get_by_role("dialog", name="Create API key")
    await dialog.get_by_label("Name").fill("CRM sync")
    await dialog.get_by_role("checkbox", name="contacts:read").check()
    await dialog.get_by_role("checkbox", name="messages:send").check()
    await dialog.get_by_role("button", name="Create API key").click()
    shown = page.get_by_role("status").filter(has_text="New API key")
    await shown.wait_for()
    key = (await shown.locator("pre").inner_text()).strip()
    assert key.startswith("pytake_live_")
    await shown.get_by_role("button", name="Copy key").click()
    await shown.get_by_role("button", name="Copied").wait_for()
    assert await page.evaluate("navigator.clipboard.readText()") == key
    table = page.get_by_role("table", name="API keys")
    row = table.get_by_role("row", name=re.compile("CRM sync"))
    await row.wait_for()
    assert "contacts:read, messages:send" in await row.inner_text()
    await console.screenshot("settings-api-keys")
    await shown.get_by_role("button", name="Done").click()
    await page.reload()
    await table.wait_for()
    assert key not in await page.content()  # shown once: never again
    # The key works against the API.
    listed = await console.server.api("GET", "/v1/contacts", token=key)
    assert listed.status_code == 200, listed.text


async def test_a_webhook_is_created_and_its_test_ping_is_in_the_deliveries_log(
    console: Console, receiver: str
) -> None:
    page = console.page
    await page.goto(console.url("/settings/webhooks"))
    await console.sign_in(open_console=False)
    await page.get_by_role("button", name="Create webhook").click()
    dialog = page.get_by_role("dialog", name="Create webhook")
    await dialog.get_by_label("URL").fill(receiver)
    await dialog.get_by_label("Description").fill("Browser test receiver")
    await dialog.get_by_role("checkbox", name="conversation.created").check()
    await dialog.get_by_role("button", name="Create webhook").click()
    await page.get_by_role("status").filter(has_text="signing secret").wait_for()
    await page.get_by_role("link", name=f"Show deliveries of {receiver}").click()
    await page.get_by_role("heading", name=f"Deliveries of {receiver}").wait_for()
    await page.get_by_role("button", name="Send test ping").click()
    log = page.get_by_role("table", name="Deliveries")
    delivered = log.locator("tr[data-delivery-status=delivered]")
    await delivered.first.wait_for(timeout=20_000)
    text = await delivered.first.inner_text()
    assert "200" in text and "received" in text, text
    await console.screenshot("settings-webhook-deliveries")


async def test_numbers_and_team(console: Console) -> None:
    page = console.page
    await page.goto(console.url("/settings"))
    await console.sign_in(open_console=False)
    await page.wait_for_url("**/app/settings/numbers")
    await page.get_by_role("button", name="Test the connection of Simulated number").click()
    await page.get_by_role("status").filter(has_text="Connection works").wait_for()
    await console.screenshot("settings-numbers")
    await page.get_by_role("tab", name="Team").click()
    await page.get_by_role("table", name="Team").get_by_text("demo@example.com").wait_for()
    await console.screenshot("settings-team")


async def test_an_evolution_number_shows_its_qr_code_until_connected(console: Console) -> None:
    page = console.page
    instance = f"shop-{uuid.uuid4().hex[:8]}"
    await page.goto(console.url("/settings/numbers"))
    await console.sign_in(open_console=False)
    await page.get_by_role("button", name="Add number").click()
    dialog = page.get_by_role("dialog", name="Add number")
    await dialog.get_by_text("Evolution API", exact=True).click()
    await dialog.get_by_label("Name", exact=True).fill("Evolution shop")
    await dialog.get_by_label("Evolution API URL").fill(console.server.sim_url)
    await dialog.get_by_label("Evolution API key", exact=True).fill("sim-evolution-key")
    await dialog.get_by_label("Instance name").fill(instance)
    await dialog.get_by_role("button", name="Add number").click()
    await page.get_by_role("button", name="Show the QR code of Evolution shop").click()
    qr = page.get_by_role("img", name="QR code to connect Evolution shop")
    await qr.wait_for()
    assert (await qr.get_attribute("src") or "").startswith("data:image/png;base64,")
    await console.screenshot("settings-evolution-qr")
    await console.server.sim(
        "POST",
        f"/evolution/instances/{instance}/scan",
        json={"number": "5511900001111", "profile_name": "Evolution shop"},
    )
    await page.get_by_role("dialog").get_by_text("Connected").wait_for(timeout=15_000)
