"""Uploading files and sending them by media id, through the simulator."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from pytake.db import unit_of_work
from pytake.models import MediaUpload
from pytake.models.base import utcnow
from tests.conftest import register_org
from tests.message.sending.support import Shop, eventually, new_customer


async def upload(
    http: httpx.AsyncClient,
    shop: Shop,
    data: bytes,
    mime: str,
    name: str = "photo.jpg",
    **form: str,
) -> httpx.Response:
    return await http.post(
        "/v1/media", files={"file": (name, data, mime)}, data=form, headers=shop.headers
    )


async def sent_media(shop: Shop, kind: str, count: int = 1) -> list[dict]:  # type: ignore[type-arg]
    async def found() -> list[dict] | None:  # type: ignore[type-arg]
        bodies = [
            m.body
            for m in shop.sim.state.sent
            if m.channel == shop.number.pnid and m.body.get("type") == kind
        ]
        return bodies if len(bodies) >= count else None

    return list(await eventually(found))


async def test_upload_then_send_by_media_id_reaches_the_simulator_as_a_provider_id(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI
) -> None:
    data = os.urandom(40_000)
    stored = await upload(http, shop, data, "image/jpeg")
    assert stored.status_code == 201, stored.text
    media = stored.json()
    assert (media["status"], media["size"], media["file_name"]) == (
        "stored",
        len(data),
        "photo.jpg",
    )
    assert "image" in media["sendable_as"]
    served = await http.get(media["url"], headers=shop.headers)
    assert served.content == data

    customer = new_customer()
    await shop.customer_writes(customer)
    sent = await http.post(
        "/v1/messages",
        json={
            "to": f"+{customer}",
            "type": "image",
            "image": {"media_id": media["id"], "caption": "hi"},
        },
        headers=shop.headers,
    )
    assert sent.status_code == 201, sent.text
    [body] = await sent_media(shop, "image")
    provider_id = body["image"]["id"]
    assert provider_id.isdigit() and body["image"]["caption"] == "hi"
    assert shop.sim.state.media[provider_id][0] == data  # the upload reached the simulator

    message = await http.get(f"/v1/messages/{sent.json()['id']}", headers=shop.headers)
    assert message.json()["media"]["id"] == media["id"]

    # Meta's own body shape with PyTake's id: the same upload is reused (no second upload).
    again = await http.post(
        "/v1/messages",
        json={"to": f"+{customer}", "type": "image", "image": {"id": media["id"]}},
        headers=shop.headers,
    )
    assert again.status_code == 201, again.text
    bodies = await sent_media(shop, "image", 2)
    assert bodies[1]["image"]["id"] == provider_id

    # After Meta's 30 days the file is uploaded again.
    async with unit_of_work(send_app.state.session_factory) as session:
        await session.execute(
            update(MediaUpload)
            .where(MediaUpload.media_id == uuid.UUID(media["id"]))
            .values(uploaded_at=utcnow() - timedelta(days=31))
        )
    third = await http.post(
        "/v1/messages",
        json={"to": f"+{customer}", "type": "image", "image": {"media_id": media["id"]}},
        headers=shop.headers,
    )
    assert third.status_code == 201, third.text
    bodies = await sent_media(shop, "image", 3)
    assert bodies[2]["image"]["id"] != provider_id
    assert shop.sim.state.media[bodies[2]["image"]["id"]][0] == data


async def test_a_6_mb_png_as_image_is_a_422(http: httpx.AsyncClient, shop: Shop) -> None:
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(6 * 1024 * 1024)
    checked = await upload(http, shop, png, "image/png", "big.png", type="image")
    assert checked.status_code == 422, checked.text
    [detail] = checked.json()["error"]["details"]
    assert detail["field"] == "file" and "5.0 MB" in detail["message"]

    stored = await upload(http, shop, png, "image/png", "big.png")
    assert stored.status_code == 201, stored.text
    assert stored.json()["sendable_as"] == []
    customer = new_customer()
    await shop.customer_writes(customer)
    sent = await http.post(
        "/v1/messages",
        json={"to": f"+{customer}", "type": "image", "image": {"media_id": stored.json()["id"]}},
        headers=shop.headers,
    )
    assert sent.status_code == 422, sent.text
    [detail] = sent.json()["error"]["details"]
    assert detail["field"] == "image.media_id"
    assert "5.0 MB" in detail["message"]


async def test_a_wrong_type_and_an_unknown_id_are_422s(http: httpx.AsyncClient, shop: Shop) -> None:
    html = await upload(http, shop, b"<script>alert(1)</script>", "text/html", "x.html")
    assert html.status_code == 422
    assert html.json()["error"]["details"][0]["field"] == "file"
    pdf = await upload(http, shop, b"%PDF-1.4 hello", "application/pdf", "terms.pdf")
    assert pdf.status_code == 201
    customer = new_customer()
    await shop.customer_writes(customer)
    as_image = await http.post(
        "/v1/messages",
        json={"to": f"+{customer}", "type": "image", "image": {"media_id": pdf.json()["id"]}},
        headers=shop.headers,
    )
    assert as_image.status_code == 422
    assert "image/jpeg" in as_image.json()["error"]["details"][0]["message"]
    other = await register_org(http, "Other")
    foreign = await http.post(
        "/v1/messages",
        json={"to": f"+{customer}", "type": "document", "document": {"media_id": pdf.json()["id"]}},
        headers=other.headers,
    )
    assert foreign.status_code == 422
    assert (await http.get(pdf.json()["url"], headers=other.headers)).status_code == 404


async def test_odd_multipart_headers_never_give_a_500(http: httpx.AsyncClient, shop: Shop) -> None:
    for name, mime in (
        ('a"b\r\n.pdf', "application/pdf"),
        ("\u202e\u0000gpj.exe", "image/jpeg"),
        ("x.jpg", 'image/jpeg; charset="\u00ff"'),
        ("", ""),
    ):
        answer = await upload(http, shop, b"\xff\xd8\xff data", mime, name)
        assert answer.status_code < 500, (name, mime, answer.text)


async def test_an_upload_meta_forgot_is_uploaded_again_and_the_send_retried_once(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    data = os.urandom(30_000)
    stored = await upload(http, shop, data, "image/png", name="chart.png")
    assert stored.status_code == 201, stored.text
    media_id = stored.json()["id"]
    customer = new_customer()
    await shop.customer_writes(customer)

    async def send() -> httpx.Response:
        sent = await http.post(
            "/v1/messages",
            json={"to": f"+{customer}", "type": "image", "image": {"media_id": media_id}},
            headers=shop.headers,
        )
        assert sent.status_code == 201, sent.text
        return sent

    await send()
    [first] = await sent_media(shop, "image")
    forgotten = first["image"]["id"]

    # Meta deletes the upload well before its 30 days (the business deleted it, or Meta did):
    # the simulator forgets it through its own Graph API, and a send naming it is refused.
    async with httpx.AsyncClient() as graph:
        deleted = await graph.delete(
            f"{shop.sim.graph_url}/{forgotten}",
            headers={"Authorization": f"Bearer {shop.number.token}"},
        )
    assert deleted.status_code == 200, deleted.text
    assert forgotten not in shop.sim.state.media

    second = await send()
    bodies = await sent_media(shop, "image", 2)
    reuploaded = bodies[1]["image"]["id"]
    assert reuploaded != forgotten
    assert shop.sim.state.media[reuploaded][0] == data
    message = await http.get(f"/v1/messages/{second.json()['id']}", headers=shop.headers)
    assert message.json()["status"] in ("sent", "delivered", "read"), message.json()

    # The new upload is the one on record: the next send reuses it.
    await send()
    bodies = await sent_media(shop, "image", 3)
    assert bodies[2]["image"]["id"] == reuploaded
