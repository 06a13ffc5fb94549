"""The inbox, live: a customer writes on the simulator's phone page, the message appears
without a reload, the agent's reply reaches the phone; with the window closed, templates."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

from tests.browser.conftest import Console


def _customer() -> str:
    return "55119" + str(uuid.uuid4().int)[:8]


async def _phone_writes(console: Console, number: str, name: str, text: str) -> Any:
    """The customer types on the simulator's phone page (a page of its own, not watched)."""
    phone = await console.page.context.new_page()
    await phone.goto(console.server.sim_url + "/")
    await phone.locator("#customer").fill(number)
    await phone.locator("#name").fill(name)
    await phone.locator("#text").fill(text)
    await phone.locator("#compose button").click()
    await phone.locator("#thread .msg.in", has_text=text).wait_for()
    return phone


async def test_a_customer_message_appears_live_and_the_reply_reaches_the_phone(
    console: Console,
) -> None:
    page = console.page
    await console.sign_in()
    await page.wait_for_url("**/app/inbox")
    conversations = page.get_by_role("navigation", name="Conversations")
    await conversations.wait_for()

    first, second = _customer(), _customer()
    phone = await _phone_writes(console, first, "Ana Live", "Hello from Ana")
    ana = conversations.get_by_role("link", name=re.compile("Ana Live"))
    await ana.wait_for()  # arrived over /ws: no reload
    assert await ana.get_by_label("1 unread message").count() == 1
    await _phone_writes(console, second, "Bruno Live", "Bruno here")
    bruno = conversations.get_by_role("link", name=re.compile("Bruno Live"))
    await bruno.wait_for()
    # The newest conversation is on top.
    names = await conversations.get_by_role("link").all_inner_texts()
    assert names[0].startswith("Bruno Live"), names

    await ana.click()
    log = page.get_by_role("log", name="Messages")
    await log.get_by_text("Hello from Ana").wait_for()
    box = page.get_by_label("Message", exact=True)
    await box.fill("first line")
    await box.press("Shift+Enter")
    await box.press_sequentially("second line")
    assert await box.input_value() == "first line\nsecond line"
    await box.press("Enter")  # Enter sends
    await log.get_by_text("first line").wait_for()
    assert await box.input_value() == ""
    await phone.locator("#thread .msg.out", has_text="second line").wait_for()
    # ✓ sent, then ✓✓ delivered (the simulator's status webhooks, pushed over /ws).
    await log.locator("[data-ticks=delivered], [data-ticks=read]").first.wait_for()
    await page.get_by_role("button", name="Send").wait_for()
    await console.screenshot("inbox-conversation")

    # ↑/↓ move between conversations (the reply moved Ana's to the top).
    await page.get_by_role("link", name=re.compile("Ana Live")).focus()
    names = await conversations.get_by_role("link").all_inner_texts()
    ana_first = names.index(next(n for n in names if n.startswith("Ana Live"))) < names.index(
        next(n for n in names if n.startswith("Bruno Live"))
    )
    towards_bruno, towards_ana = ("ArrowDown", "ArrowUp") if ana_first else ("ArrowUp", "ArrowDown")
    await page.keyboard.press(towards_bruno)
    await page.wait_for_url(re.compile(r"/app/inbox/[0-9a-f-]{36}$"))
    await log.get_by_text("Bruno here").wait_for()
    await page.keyboard.press(towards_ana)
    await log.get_by_text("Hello from Ana").wait_for()

    # Resolve, then reopen.
    await page.get_by_role("button", name="Resolve").click()
    await page.get_by_role("button", name="Reopen").wait_for()
    await page.get_by_role("button", name="Reopen").click()
    await page.get_by_role("button", name="Resolve").wait_for()
    await phone.close()


async def _approved_template(console: Console) -> dict[str, Any]:
    name = f"order_update_{uuid.uuid4().hex[:6]}"
    created = await console.server.api(
        "POST",
        "/v1/templates",
        json={
            "name": name,
            "language": "en_US",
            "category": "UTILITY",
            "components": [
                {
                    "type": "BODY",
                    "text": "Hi {{1}}, your order {{2}} has shipped.",
                    "example": {"body_text": [["Maria", "A-1"]]},
                }
            ],
        },
    )
    assert created.status_code == 201, created.text
    template: dict[str, Any] = created.json()
    deadline = time.monotonic() + 15
    while template["status"] != "APPROVED":  # the simulator reviews it in a few seconds
        assert time.monotonic() < deadline, template
        await asyncio.sleep(0.5)
        template = (await console.server.api("GET", f"/v1/templates/{template['id']}")).json()
    return template


async def test_with_the_window_closed_the_reply_box_offers_templates(console: Console) -> None:
    page = console.page
    template = await _approved_template(console)
    number = "+" + _customer()
    # A business-initiated conversation: the customer never wrote, so the window is closed.
    sent = await console.server.api(
        "POST",
        "/v1/messages",
        json={
            "to": number,
            "type": "template",
            "template": {
                "name": template["name"],
                "language": {"code": "en_US"},
                "components": [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "Carla"},
                            {"type": "text", "text": "B-2"},
                        ],
                    }
                ],
            },
        },
    )
    assert sent.status_code in (201, 202), sent.text
    conversation_id = sent.json()["conversation_id"]

    await page.goto(console.url(f"/inbox/{conversation_id}"))  # signing in leads back here
    await console.sign_in(open_console=False)
    await page.get_by_text("window is closed", exact=False).first.wait_for()
    assert await page.get_by_label("Message", exact=True).count() == 0
    await page.get_by_role("combobox", name="Template").click()
    await page.get_by_role("option", name=re.compile(template["name"])).click()
    await page.get_by_label("Variable 1").fill("Carla")
    await page.get_by_label("Variable 2").fill("C-3")
    preview = page.get_by_role("region", name="Preview")
    await preview.get_by_text("Hi Carla, your order C-3 has shipped.").wait_for()
    await console.screenshot("inbox-window-closed")
    send = page.get_by_role("button", name="Send template")
    await send.click()
    log = page.get_by_role("log", name="Messages")
    await log.locator("[data-direction=outbound]").nth(1).wait_for()


def _png(width: int = 8, height: int = 6) -> bytes:
    """A real (tiny, red) PNG, so the browser decodes what PyTake serves."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def test_a_customers_photo_shows_in_the_conversation(console: Console) -> None:
    page = console.page
    await console.sign_in()
    await page.wait_for_url("**/app/inbox")
    phone = await page.context.new_page()
    await phone.goto(console.server.sim_url + "/")
    await phone.locator("#customer").fill(_customer())
    await phone.locator("#name").fill("Carla Photo")
    await phone.locator("#text").fill("my receipt")  # the caption
    await phone.locator("#file").set_input_files(
        files=[{"name": "receipt.png", "mimeType": "image/png", "buffer": _png()}]
    )
    await phone.locator("#thread .msg.in", has_text="my receipt").wait_for()

    conversations = page.get_by_role("navigation", name="Conversations")
    await conversations.get_by_role("link", name=re.compile("Carla Photo")).click()
    log = page.get_by_role("log", name="Messages")
    # Fetched from the provider by the media job, then shown through a signed URL.
    image = log.get_by_role("img", name="my receipt")
    await image.wait_for()
    deadline = time.monotonic() + 20
    while await image.evaluate("img => img.naturalWidth") == 0:
        assert time.monotonic() < deadline, "the image never loaded"
        await asyncio.sleep(0.2)
    assert await image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [8, 6]
    await console.screenshot("inbox-photo")
