"""Concurrent API-key requests share the pool with nothing else: each request holds one
connection (its unit of work), and `last_used_at` is written in batches afterwards."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from pytake.auth.key_usage import FLUSH_EVERY_SECONDS
from pytake.models import ApiKey
from tests.conftest import Org, create_api_key


async def test_32_concurrent_api_key_requests_all_succeed(
    client: httpx.AsyncClient, org: Org, app: FastAPI
) -> None:
    keys = [await create_api_key(client, org, ["contacts:read"]) for _ in range(2)]

    async def one(i: int) -> int:
        headers = {"Authorization": f"Bearer {keys[i % 2]}"}
        resp = await client.get("/v1/contacts", headers=headers)
        return resp.status_code

    statuses = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(32))), 20)
    assert statuses == [200] * 32

    listed = (await client.get("/v1/api-keys", headers=org.headers)).json()["data"]
    assert all(k["last_used_at"] is not None for k in listed)  # this process's pending uses
    for _ in range(100):
        async with app.state.session_factory() as session:
            stored = (
                await session.scalars(
                    select(ApiKey.last_used_at).where(ApiKey.organization_id == uuid.UUID(org.id))
                )
            ).all()
        if all(stored):
            break
        await asyncio.sleep(FLUSH_EVERY_SECONDS / 10)
    assert len(stored) == 2 and all(stored)  # written, in one batch, by the flusher
