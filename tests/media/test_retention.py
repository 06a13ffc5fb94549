"""Retention: an organisation's old media are deleted, the messages stay, media `expired`."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from pytake.db import unit_of_work
from pytake.media.fetch import MediaFetchLoop
from pytake.media.retention import MediaRetentionLoop
from pytake.models import Media
from pytake.models.base import utcnow
from tests.media.support import customer_sends_media, message_for, settled_media
from tests.message.sending.support import Shop, new_customer


async def test_retention_marks_old_media_expired(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI, fetcher: MediaFetchLoop
) -> None:
    old, recent = os.urandom(3000), os.urandom(3000)
    wamid = await customer_sends_media(shop, new_customer(), "image", old, "image/jpeg")
    message = await message_for(http, shop, wamid)
    media_id = message["media"]["id"]
    assert (await settled_media(http, shop, media_id))["status"] == "stored"
    fresh = await http.post(
        "/v1/media", files={"file": ("new.jpg", recent, "image/jpeg")}, headers=shop.headers
    )
    assert fresh.status_code == 201

    assert (await http.get("/v1/media/settings/retention", headers=shop.headers)).json() == {
        "retention_days": None
    }
    put = await http.put(
        "/v1/media/settings/retention", json={"retention_days": 30}, headers=shop.headers
    )
    assert put.status_code == 200, put.text
    factory = send_app.state.session_factory
    async with unit_of_work(factory) as session:
        await session.execute(
            update(Media)
            .where(Media.id == uuid.UUID(media_id))
            .values(created_at=utcnow() - timedelta(days=31))
        )
        key = await session.scalar(select(Media.storage_key).where(Media.id == uuid.UUID(media_id)))
    storage = send_app.state.runtime.media_storage
    assert key and await storage.exists(key)

    loop = MediaRetentionLoop(factory, send_app.state.settings, storage)
    await loop.run_once()

    info = (await http.get(f"/v1/media/{media_id}/info", headers=shop.headers)).json()
    assert info["status"] == "expired"
    assert not await storage.exists(key)
    assert (await http.get(f"/v1/media/{media_id}", headers=shop.headers)).status_code == 409
    kept = await http.get(f"/v1/messages/{message['id']}", headers=shop.headers)
    assert kept.status_code == 200 and kept.json()["media"]["status"] == "expired"
    # The recent upload is untouched.
    served = await http.get(fresh.json()["url"], headers=shop.headers)
    assert served.status_code == 200 and served.content == recent
