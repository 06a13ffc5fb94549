"""Helpers of the media tests: a customer sends a file, and waiting for its fetch."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from pytake.whatsapp.simulator import Simulator
from tests.message.sending.support import Shop, eventually


async def customer_sends_media(
    shop: Shop, wa_id: str, kind: str, data: bytes, mime_type: str, **extra: Any
) -> str:
    """The customer sends a file; returns the inbound wamid."""
    record = await shop.sim.customer_sends(
        shop.number.pnid,
        sender=wa_id,
        type=kind,
        mime_type=mime_type,
        data_base64=base64.b64encode(data).decode(),
        profile_name="Maria",
        **extra,
    )
    assert record.webhook_status == 200, record
    return record.id


async def message_for(http: httpx.AsyncClient, shop: Shop, wamid: str) -> dict[str, Any]:
    """The stored message of an inbound wamid, as `GET /v1/conversations/{id}` shows it."""

    async def find() -> dict[str, Any] | None:
        listing = await http.get("/v1/conversations", headers=shop.headers)
        assert listing.status_code == 200, listing.text
        for conversation in listing.json()["data"]:
            thread = await http.get(f"/v1/conversations/{conversation['id']}", headers=shop.headers)
            for message in thread.json()["messages"]:
                if message["whatsapp_message_id"] == wamid:
                    return dict(message)
        return None

    return dict(await eventually(find))


async def settled_media(http: httpx.AsyncClient, shop: Shop, media_id: str) -> dict[str, Any]:
    """Wait until a media item is stored or failed; returns its info."""

    async def settled() -> dict[str, Any] | None:
        info = await http.get(f"/v1/media/{media_id}/info", headers=shop.headers)
        assert info.status_code == 200, info.text
        body = info.json()
        return dict(body) if body["status"] in ("stored", "failed") else None

    return dict(await eventually(settled))


def downloads(sim: Simulator, wamid: str) -> int:
    """How many times the simulator served the media of an inbound message."""
    record = next(r for r in sim.state.received if r.id == wamid)
    media_id = record.item[record.type]["id"]
    return sim.state.media_downloads.get(media_id, 0)
