"""The other ways a file arrives: the simulator's phone page (its control API, as the page
calls it) and an Evolution instance (the bytes through getBase64FromMediaMessage)."""

from __future__ import annotations

import base64
import os
import uuid

import aiohttp
import httpx

from pytake.media.fetch import MediaFetchLoop
from pytake.whatsapp.simulator import Simulator
from tests.channel.support import create_evolution
from tests.media.support import message_for, settled_media
from tests.message.sending.support import Shop, new_customer


async def test_the_phone_page_sends_a_file_that_pytake_stores(
    http: httpx.AsyncClient, shop: Shop, sim: Simulator, fetcher: MediaFetchLoop
) -> None:
    data = b"%PDF-1.7 " + os.urandom(20_000)
    async with aiohttp.ClientSession() as browser:
        async with browser.get(f"{sim.base_url}/") as page:
            html = await page.text()
        assert 'type="file"' in html and "data_base64" in html
        # What the page posts for a chosen file: its type, bytes, name and the caption.
        async with browser.post(
            f"{sim.base_url}/_sim/numbers/{shop.number.pnid}/inbound",
            json={
                "from": new_customer(),
                "profile_name": "Maria",
                "type": "document",
                "mime_type": "application/pdf",
                "data_base64": base64.b64encode(data).decode(),
                "filename": "contrato.pdf",
                "caption": "assinado",
            },
        ) as answer:
            assert answer.status < 300, await answer.text()
            wamid = (await answer.json())["id"]
    media = (await message_for(http, shop, wamid))["media"]
    assert (media["file_name"], media["caption"]) == ("contrato.pdf", "assinado")
    assert (await settled_media(http, shop, media["id"]))["status"] == "stored"
    served = await http.get(media["url"], headers=shop.headers)
    assert served.content == data
    assert 'filename="contrato.pdf"' in served.headers["content-disposition"]


async def test_evolution_media_is_fetched_through_its_base64_endpoint(
    http: httpx.AsyncClient, shop: Shop, sim: Simulator, fetcher: MediaFetchLoop
) -> None:
    name = "evo-" + uuid.uuid4().hex[:8]
    config = await create_evolution(http, shop.org, sim, instance=name)
    created = await http.post(
        "/api/v1/whatsapp/instance/create", json={"instance_name": name}, headers=shop.headers
    )
    assert created.status_code == 201, created.text
    sim.scan(name, "5511900001111", "Loja")
    await sim.idle()
    data, customer = os.urandom(8000), new_customer()
    sent = await sim.evolution_customer_sends(
        name,
        customer,
        type="image",
        mime_type="image/jpeg",
        data_base64=base64.b64encode(data).decode(),
        caption="foto",
    )
    assert sent.webhook_status == 200
    media = (await message_for(http, shop, sent.id))["media"]
    info = await settled_media(http, shop, media["id"])
    assert info["status"] == "stored", info
    assert (await http.get(media["url"], headers=shop.headers)).content == data

    # Sending a stored file by media id: Evolution has no upload step, the bytes go inline.
    upload = await http.post(
        "/v1/media", files={"file": ("a.png", b"\x89PNG" + data, "image/png")}, headers=shop.headers
    )
    assert upload.status_code == 201, upload.text
    reply = await http.post(
        "/v1/messages",
        json={
            "to": f"+{customer}",
            "type": "image",
            "image": {"media_id": upload.json()["id"], "caption": "de volta"},
            "channel_id": config["id"],
        },
        headers=shop.headers,
    )
    assert reply.status_code in (201, 202), reply.text
    [body] = [m.body for m in sim.state.sent if m.channel == name and m.body.get("mediatype")]
    assert base64.b64decode(body["media"]) == b"\x89PNG" + data
    assert body["caption"] == "de volta"


async def test_an_image_the_evolution_phone_itself_sent_is_stored(
    http: httpx.AsyncClient, shop: Shop, sim: Simulator, fetcher: MediaFetchLoop
) -> None:
    name = "evo-" + uuid.uuid4().hex[:8]
    await create_evolution(http, shop.org, sim, instance=name)
    created = await http.post(
        "/api/v1/whatsapp/instance/create", json={"instance_name": name}, headers=shop.headers
    )
    assert created.status_code == 201, created.text
    sim.scan(name, "5511900002222", "Loja")
    await sim.idle()
    customer = new_customer()
    asked = await sim.evolution_customer_sends(name, customer, type="text", text="tem foto?")
    data = os.urandom(9000)
    # Someone at the shop answers from the phone: Evolution echoes it with key.fromMe.
    echo = await sim.evolution_business_sends(
        name,
        customer,
        type="image",
        mime_type="image/jpeg",
        data_base64=base64.b64encode(data).decode(),
        caption="aqui",
    )
    assert echo.webhook_status == 200
    assert echo.item["key"]["fromMe"] is True
    message = await message_for(http, shop, echo.id)
    assert message["direction"] == "outbound", message
    # In the customer's thread, not a thread of the shop's own number.
    question = await message_for(http, shop, asked.id)
    assert message["conversation_id"] == question["conversation_id"]
    media = message["media"]
    assert media["caption"] == "aqui"
    info = await settled_media(http, shop, media["id"])
    assert (info["status"], info["size"], info["mime_type"]) == ("stored", len(data), "image/jpeg")
    served = await http.get(media["url"], headers=shop.headers)
    assert served.status_code == 200 and served.content == data
