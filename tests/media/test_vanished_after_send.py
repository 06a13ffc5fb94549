"""A media id Meta loses after it accepted the send: the send's 200, then a status webhook
`failed` with 131053 (media upload error). A message sent by a stored file is uploaded again
and re-sent once, through the send queue; a second 131053 fails it; a send by link is failed
as before. Duplicate webhooks of the failure re-send nothing more."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from pytake.models import MediaUpload
from pytake.whatsapp.simulator import Simulator
from tests.media.test_sending_media import upload
from tests.message.sending.support import Shop, eventually, new_customer


@pytest.fixture
async def faults_cleared(sim: Simulator) -> AsyncIterator[Simulator]:
    yield sim
    sim.set_faults(vanish_sent_media=0, duplicate_webhooks=False)


async def _send_image(
    http: httpx.AsyncClient, shop: Shop, customer: str, image: dict[str, Any]
) -> str:
    sent = await http.post(
        "/v1/messages",
        json={"to": f"+{customer}", "type": "image", "image": image},
        headers=shop.headers,
    )
    assert sent.status_code == 201, sent.text
    return str(sent.json()["id"])


def _images_to(shop: Shop, customer: str) -> list[Any]:
    return [m for m in shop.sim.state.sent if m.to == customer and m.type == "image"]


async def _settled(http: httpx.AsyncClient, shop: Shop, message_id: str) -> dict[str, Any]:
    """The message once the simulator has posted every status and none is being applied."""

    async def final() -> dict[str, Any] | None:
        await shop.sim.idle()
        body = (await http.get(f"/v1/messages/{message_id}", headers=shop.headers)).json()
        return body if body["status"] in ("delivered", "read", "failed") else None

    return dict(await eventually(final))


async def _stored_file(http: httpx.AsyncClient, shop: Shop) -> tuple[str, bytes]:
    data = os.urandom(25_000)
    stored = await upload(http, shop, data, "image/png", name="receipt.png")
    assert stored.status_code == 201, stored.text
    return str(stored.json()["id"]), data


async def test_a_media_id_meta_loses_after_accepting_is_uploaded_again_and_re_sent_once(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI, faults_cleared: Simulator
) -> None:
    media_id, data = await _stored_file(http, shop)
    customer = new_customer()
    await shop.customer_writes(customer)
    # Every status webhook twice: the failure's copy must not re-send a second time.
    faults_cleared.set_faults(vanish_sent_media=1, duplicate_webhooks=True)
    message_id = await _send_image(http, shop, customer, {"media_id": media_id, "caption": "a"})

    message = await _settled(http, shop, message_id)
    first, second = _images_to(shop, customer)
    assert first.statuses == ["failed"] and first.error_code == 131053
    assert second.body["image"]["id"] != first.body["image"]["id"]
    assert shop.sim.state.media[second.body["image"]["id"]][0] == data  # uploaded again
    assert second.body["image"]["caption"] == "a"
    assert message["status"] in ("delivered", "read"), message
    assert message["whatsapp_message_id"] == second.id
    assert message["error"] is None
    assert len(_images_to(shop, customer)) == 2
    async with send_app.state.session_factory() as session:
        on_record = await session.scalar(
            select(MediaUpload.provider_media_id).where(MediaUpload.media_id == uuid.UUID(media_id))
        )
    assert on_record == second.body["image"]["id"]

    # A late copy of the old send's failure, after the re-send went through: nothing moves.
    await shop.sim.graph.report_status(first.id, "failed")
    await shop.sim.idle()
    again = (await http.get(f"/v1/messages/{message_id}", headers=shop.headers)).json()
    assert again["status"] == message["status"] and len(_images_to(shop, customer)) == 2


async def test_a_second_131053_fails_the_message_for_good(
    http: httpx.AsyncClient, shop: Shop, faults_cleared: Simulator
) -> None:
    media_id, _ = await _stored_file(http, shop)
    customer = new_customer()
    await shop.customer_writes(customer)
    faults_cleared.set_faults(vanish_sent_media=2)
    message_id = await _send_image(http, shop, customer, {"media_id": media_id})

    message = await _settled(http, shop, message_id)
    assert message["status"] == "failed", message
    assert message["error"]["code"] == 131053
    assert [m.statuses for m in _images_to(shop, customer)] == [["failed"], ["failed"]]


async def test_a_131053_of_a_send_by_link_is_failed_without_a_re_send(
    http: httpx.AsyncClient, shop: Shop, faults_cleared: Simulator
) -> None:
    customer = new_customer()
    await shop.customer_writes(customer)
    faults_cleared.set_faults(async_error={"code": 131053, "message": "Media upload error"})
    message_id = await _send_image(
        http, shop, customer, {"link": "https://example.com/receipt.png"}
    )

    message = await _settled(http, shop, message_id)
    assert message["status"] == "failed" and message["error"]["code"] == 131053
    assert len(_images_to(shop, customer)) == 1
