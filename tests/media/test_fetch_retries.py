"""Provider failures during a media download: a 5xx is retried with backoff and the file then
stored; a permanent 4xx is `failed` at once; nothing is retried for ever."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from pytake.db import unit_of_work
from pytake.media.fetch import FetchTuning, MediaFetchLoop
from pytake.models import Media
from pytake.models.base import utcnow
from tests.media.conftest import FAST_FETCH
from tests.media.support import customer_sends_media, message_for, settled_media
from tests.message.sending.support import Shop, new_customer

# Long enough that a retry is visibly scheduled later; the test moves the clock, not a sleep.
SLOW_BACKOFF = FetchTuning(concurrency=4, max_attempts=5, backoff_seconds=60.0, poll_seconds=0.05)


@asynccontextmanager
async def session_fetcher_paused(fetcher: MediaFetchLoop) -> AsyncIterator[None]:
    """The session's fetch loop claims nothing meanwhile (this test runs its own)."""
    fetcher.stop_claiming()
    try:
        yield
    finally:
        fetcher.claiming = True


async def media_row(app: FastAPI, media_id: str) -> Media:
    async with app.state.session_factory() as session:
        row = await session.get(Media, uuid.UUID(media_id))
        assert row is not None
        return row


async def make_due(app: FastAPI, media_id: str) -> None:
    """Move the backoff's due time into the past (the passing of time, without waiting)."""
    async with unit_of_work(app.state.session_factory) as session:
        await session.execute(
            update(Media)
            .where(Media.id == uuid.UUID(media_id))
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


async def test_a_5xx_download_is_retried_with_backoff_then_stored(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI, fetcher: MediaFetchLoop
) -> None:
    state = send_app.state
    own = MediaFetchLoop(
        state.session_factory, state.settings, state.http, state.runtime.media_storage, SLOW_BACKOFF
    )
    data = os.urandom(6000)
    async with session_fetcher_paused(fetcher):
        shop.sim.set_faults(fail_media_downloads={"count": 2, "status": 503})
        try:
            wamid = await customer_sends_media(shop, new_customer(), "image", data, "image/jpeg")
            media_id = (await message_for(http, shop, wamid))["media"]["id"]
            due_after = []
            for attempt in (1, 2):
                before = utcnow()
                await own.run_once()
                row = await media_row(send_app, media_id)
                assert (row.status, row.attempts) == ("pending", attempt), row.error
                assert row.error and "server error" in row.error
                assert row.next_attempt_at is not None and row.claimed_until is None
                due_after.append(row.next_attempt_at - before)
                # Not due again at once: the loop leaves it alone until its backoff is over.
                await own.run_once()
                assert (await media_row(send_app, media_id)).attempts == attempt
                await make_due(send_app, media_id)
            # 60 s, then doubled.
            assert timedelta(seconds=55) < due_after[0] <= timedelta(seconds=61), due_after
            assert timedelta(seconds=115) < due_after[1] <= timedelta(seconds=121), due_after
            await own.run_once()
        finally:
            shop.sim.clear_faults()
    row = await media_row(send_app, media_id)
    assert (row.status, row.attempts, row.error) == ("stored", 3, None)
    served = await http.get(f"/v1/media/{media_id}", headers=shop.headers)
    assert served.status_code == 200 and served.content == data


async def test_a_permanent_4xx_is_failed_at_once(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI, fetcher: MediaFetchLoop
) -> None:
    # 403 on the download URL: a fresh URL is asked for once, refused again, and that is final.
    shop.sim.set_faults(fail_media_downloads={"count": 10, "status": 403})
    try:
        wamid = await customer_sends_media(
            shop, new_customer(), "document", b"%PDF-1.4 ...", "application/pdf"
        )
        media_id = (await message_for(http, shop, wamid))["media"]["id"]
        info = await settled_media(http, shop, media_id)
        left = shop.sim.state.faults.failing_media_downloads
    finally:
        shop.sim.clear_faults()
    assert info["status"] == "failed" and "refused" in info["error"], info
    row = await media_row(send_app, media_id)
    assert (row.attempts, row.next_attempt_at) == (1, None)
    assert left == 10 - 2  # the URL, then one fresh URL: no retry after that


async def test_media_meta_no_longer_has_is_failed_not_retried(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI, fetcher: MediaFetchLoop
) -> None:
    # Meta answers `GET /{media_id}` with an error 100 once its 7 days are over.
    async with session_fetcher_paused(fetcher):
        wamid = await customer_sends_media(
            shop, new_customer(), "image", os.urandom(900), "image/png"
        )
        record = next(r for r in shop.sim.state.received if r.id == wamid)
        del shop.sim.state.media[record.item["image"]["id"]]
        media_id = (await message_for(http, shop, wamid))["media"]["id"]
    info = await settled_media(http, shop, media_id)
    assert info["status"] == "failed" and "id does not exist" in info["error"], info
    assert (await media_row(send_app, media_id)).attempts == 1


async def test_a_5xx_that_never_ends_is_failed_after_the_last_attempt(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI, fetcher: MediaFetchLoop
) -> None:
    shop.sim.set_faults(fail_media_downloads={"count": 100, "status": 502})
    try:
        wamid = await customer_sends_media(
            shop, new_customer(), "image", os.urandom(700), "image/png"
        )
        media_id = (await message_for(http, shop, wamid))["media"]["id"]
        info = await settled_media(http, shop, media_id)
    finally:
        shop.sim.clear_faults()
    assert info["status"] == "failed" and "server error" in info["error"], info
    row = await media_row(send_app, media_id)
    assert (row.attempts, row.next_attempt_at) == (FAST_FETCH.max_attempts, None)
