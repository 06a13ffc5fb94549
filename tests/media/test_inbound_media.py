"""Inbound media through the simulator: fetched by the background job, stored, served."""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from pytake.media.fetch import MediaFetchLoop
from pytake.models import Media, OutboxEvent
from tests.conftest import register_org
from tests.media.support import customer_sends_media, downloads, message_for, settled_media
from tests.message.sending.support import Shop, eventually, new_customer


async def test_an_inbound_image_is_stored_and_served_byte_identical(
    http: httpx.AsyncClient, shop: Shop, fetcher: MediaFetchLoop
) -> None:
    data = os.urandom(150_000)
    wamid = await customer_sends_media(
        shop, new_customer(), "image", data, "image/jpeg", caption="my receipt"
    )
    message = await message_for(http, shop, wamid)
    media = message["media"]
    assert media["caption"] == "my receipt"
    assert media["url"] == f"/v1/media/{media['id']}"
    info = await settled_media(http, shop, media["id"])
    assert info["status"] == "stored", info
    assert (info["size"], info["mime_type"]) == (len(data), "image/jpeg")

    served = await http.get(media["url"], headers=shop.headers)
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["content-length"] == str(len(data))
    assert served.headers["cache-control"].startswith("private")
    assert served.headers["content-disposition"].startswith("inline; filename=")

    # The message now shows the stored media, in both views.
    single = await http.get(f"/v1/messages/{message['id']}", headers=shop.headers)
    assert single.json()["media"]["status"] == "stored"
    assert single.json()["media"]["size"] == len(data)


async def test_a_document_keeps_its_file_name_sanitised(
    http: httpx.AsyncClient, shop: Shop, fetcher: MediaFetchLoop
) -> None:
    data = b"%PDF-1.4 " + os.urandom(2000)
    wamid = await customer_sends_media(
        shop, new_customer(), "document", data, "application/pdf", filename='../evil"\r\nX: y.pdf'
    )
    media = (await message_for(http, shop, wamid))["media"]
    assert (await settled_media(http, shop, media["id"]))["status"] == "stored"
    served = await http.get(media["url"], headers=shop.headers)
    disposition = served.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    assert "\r" not in disposition and "\n" not in disposition and "/" not in disposition
    assert served.content == data


async def test_another_organisation_gets_404(
    http: httpx.AsyncClient, shop: Shop, fetcher: MediaFetchLoop
) -> None:
    wamid = await customer_sends_media(
        shop, new_customer(), "image", b"\xff\xd8secret", "image/jpeg"
    )
    media = (await message_for(http, shop, wamid))["media"]
    await settled_media(http, shop, media["id"])
    other = await register_org(http, "Other")
    for path in (media["url"], f"{media['url']}/info", f"{media['url']}/url"):
        answer = await http.get(path, headers=other.headers)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["error"]["code"] == "resource_not_found"


async def test_a_tampered_download_is_failed(
    http: httpx.AsyncClient, shop: Shop, fetcher: MediaFetchLoop
) -> None:
    shop.sim.set_faults(tamper_media=True)
    try:
        wamid = await customer_sends_media(
            shop, new_customer(), "image", os.urandom(5000), "image/png"
        )
        media = (await message_for(http, shop, wamid))["media"]
        info = await settled_media(http, shop, media["id"])
    finally:
        shop.sim.set_faults(tamper_media=False)
    assert info["status"] == "failed"
    assert "sha256" in info["error"]
    served = await http.get(media["url"], headers=shop.headers)
    assert served.status_code == 409
    assert served.json()["error"]["code"] == "media_not_available"


async def test_an_expired_download_url_is_fetched_again(
    http: httpx.AsyncClient, shop: Shop, fetcher: MediaFetchLoop
) -> None:
    data = os.urandom(3000)
    shop.sim.set_faults(expire_media_urls=1)
    wamid = await customer_sends_media(shop, new_customer(), "video", data, "video/mp4")
    media = (await message_for(http, shop, wamid))["media"]
    info = await settled_media(http, shop, media["id"])
    assert info["status"] == "stored", info
    assert (await http.get(media["url"], headers=shop.headers)).content == data
    assert shop.sim.state.faults.expire_media_urls == 0


async def test_a_duplicate_webhook_downloads_once(
    http: httpx.AsyncClient, shop: Shop, fetcher: MediaFetchLoop
) -> None:
    shop.sim.set_faults(duplicate_webhooks=True)
    try:
        wamid = await customer_sends_media(
            shop, new_customer(), "image", os.urandom(4000), "image/jpeg"
        )
        await shop.sim.idle()
    finally:
        shop.sim.set_faults(duplicate_webhooks=False)
    media = (await message_for(http, shop, wamid))["media"]
    assert (await settled_media(http, shop, media["id"]))["status"] == "stored"
    assert downloads(shop.sim, wamid) == 1


async def test_a_range_request_on_audio(
    http: httpx.AsyncClient, shop: Shop, fetcher: MediaFetchLoop
) -> None:
    data = os.urandom(10_000)
    wamid = await customer_sends_media(
        shop, new_customer(), "audio", data, "audio/ogg; codecs=opus", voice=True
    )
    media = (await message_for(http, shop, wamid))["media"]
    assert (await settled_media(http, shop, media["id"]))["status"] == "stored"
    part = await http.get(media["url"], headers={**shop.headers, "Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.content == data[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    assert part.headers["content-length"] == "1000"
    assert part.headers["content-type"].startswith("audio/ogg")
    tail = await http.get(media["url"], headers={**shop.headers, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    outside = await http.get(media["url"], headers={**shop.headers, "Range": "bytes=20000-"})
    assert outside.status_code == 416
    assert outside.headers["content-range"] == f"bytes */{len(data)}"


async def test_a_signed_url_serves_without_a_bearer_header(
    http: httpx.AsyncClient, shop: Shop, fetcher: MediaFetchLoop
) -> None:
    data = os.urandom(2048)
    wamid = await customer_sends_media(shop, new_customer(), "sticker", data, "image/webp")
    media = (await message_for(http, shop, wamid))["media"]
    assert (await settled_media(http, shop, media["id"]))["status"] == "stored"
    signed = await http.get(f"{media['url']}/url", headers=shop.headers)
    assert signed.status_code == 200, signed.text
    url = signed.json()["url"]
    async with httpx.AsyncClient() as anonymous:
        answer = await anonymous.get(url)
        assert answer.status_code == 200 and answer.content == data
        forged = await anonymous.get(url.replace("signature=", "signature=x"))
        assert forged.status_code == 404


async def test_a_file_missing_from_storage_is_a_409_not_a_broken_response(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI
) -> None:
    uploaded = await http.post(
        "/v1/media", files={"file": ("x.jpg", os.urandom(1000), "image/jpeg")}, headers=shop.headers
    )
    assert uploaded.status_code == 201, uploaded.text
    media = uploaded.json()
    storage = send_app.state.runtime.media_storage
    await storage.delete(f"{shop.org.id}/{media['sha256']}")
    answer = await http.get(media["url"], headers=shop.headers)
    assert answer.status_code == 409
    assert "missing" in answer.json()["error"]["message"]


async def test_events_carry_the_media_object_pending_then_stored(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI, fetcher: MediaFetchLoop
) -> None:
    wamid = await customer_sends_media(
        shop, new_customer(), "image", os.urandom(1500), "image/png", caption="olha"
    )
    media = (await message_for(http, shop, wamid))["media"]
    await settled_media(http, shop, media["id"])

    async def events() -> dict[str, Any] | None:
        async with send_app.state.session_factory() as session:
            rows = await session.execute(
                select(OutboxEvent.type, OutboxEvent.payload).where(
                    OutboxEvent.organization_id == uuid.UUID(shop.org.id)
                )
            )
            found = {t: p for t, p in rows if p.get("media", p.get("message", {}).get("media"))}
        return found if "message.media_updated" in found else None

    found = await eventually(events)
    received = found["message.received"]["message"]["media"]
    assert received["id"] == media["id"] and received["status"] == "pending"
    assert received["caption"] == "olha"
    updated = found["message.media_updated"]
    assert updated["media"]["status"] == "stored" and updated["media"]["size"] == 1500
    assert updated["message"]["whatsapp_message_id"] == wamid


async def test_the_same_file_is_stored_once_per_organisation(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI
) -> None:
    data = os.urandom(3000)
    first, second = [
        (
            await http.post(
                "/v1/media", files={"file": (name, data, "image/jpeg")}, headers=shop.headers
            )
        ).json()
        for name in ("a.jpg", "b.jpg")
    ]
    assert first["id"] != second["id"] and first["sha256"] == second["sha256"]
    root = Path(send_app.state.settings.data_dir) / "media" / shop.org.id
    assert [p.name for p in root.iterdir()].count(first["sha256"]) == 1
    for media in (first, second):
        assert (await http.get(media["url"], headers=shop.headers)).content == data


async def test_a_file_sent_from_the_business_phone_is_fetched_and_stored(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI, fetcher: MediaFetchLoop
) -> None:
    customer = new_customer()
    await shop.customer_writes(customer)
    data = os.urandom(7000)
    echo = await shop.sim.business_app_sends(
        shop.number.pnid,
        customer,
        type="image",
        mime_type="image/jpeg",
        data_base64=base64.b64encode(data).decode(),
        caption="our catalogue",
    )
    assert echo.webhook_status == 200
    message = await message_for(http, shop, echo.id)
    assert message["direction"] == "outbound", message
    media = message["media"]
    assert media["caption"] == "our catalogue"
    info = await settled_media(http, shop, media["id"])
    assert (info["status"], info["size"], info["mime_type"]) == ("stored", len(data), "image/jpeg")
    served = await http.get(media["url"], headers=shop.headers)
    assert served.status_code == 200 and served.content == data
    shown = await http.get(f"/v1/messages/{message['id']}", headers=shop.headers)
    assert shown.json()["media"]["status"] == "stored"

    # A text from the phone asks for no fetch.
    text = await shop.sim.business_app_sends(shop.number.pnid, customer, type="text", text="ok")
    assert (await message_for(http, shop, text.id)).get("media") is None
    async with send_app.state.session_factory() as session:
        rows = await session.scalars(select(Media).where(Media.message_id.is_not(None)))
        fetched_for = {row.message_id for row in rows}
    assert uuid.UUID(message["id"]) in fetched_for
