"""Expired Idempotency-Keys are deleted in batches; the keys still within their time stay."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from pytake.db import unit_of_work
from pytake.message.sending.pruning import IdempotencyPruner
from pytake.models import IdempotencyKey
from pytake.models.base import utcnow
from tests.message.sending.support import Shop, new_customer

DAY = 24 * 3600.0


async def _send(
    http: httpx.AsyncClient, shop: Shop, wa_id: str, text: str, key: str
) -> httpx.Response:
    return await http.post(
        "/v1/messages",
        json={"to": wa_id, "type": "text", "text": {"body": text}},
        headers={**shop.headers, "Idempotency-Key": key},
    )


async def _age(app: FastAPI, shop: Shop, keys: list[str], seconds: float) -> None:
    """Make keys look as if they had been written `seconds` ago."""
    async with unit_of_work(app.state.session_factory) as session:
        await session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.organization_id == uuid.UUID(shop.org.id),
                IdempotencyKey.key.in_(keys),
            )
            .values(created_at=utcnow() - timedelta(seconds=seconds))
        )


async def test_expired_keys_are_pruned_in_batches_and_can_be_used_again(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    expired = [f"old-{uuid.uuid4().hex}" for _ in range(3)]
    kept = f"new-{uuid.uuid4().hex}"
    for key in [*expired, kept]:
        assert (await _send(http, shop, wa_id, "first", key)).status_code == 201
    await _age(send_app, shop, expired, 2 * DAY)
    await _age(send_app, shop, [kept], DAY - 60)

    pruner = IdempotencyPruner(
        send_app.state.session_factory, ttl_seconds=DAY, every_seconds=DAY, batch_size=2
    )
    assert await pruner.run_once() == 0  # a full batch: there may be more, go on at once
    assert await pruner.run_once() == DAY  # the rest: done until the next sweep
    assert pruner.pruned == 3
    assert await pruner.run_once() > 0  # not due yet: nothing is looked at
    assert pruner.pruned == 3

    # A forgotten key starts a new send; a remembered one still refuses another body.
    again = await _send(http, shop, wa_id, "second", expired[0])
    assert again.status_code == 201, again.text
    conflict = await _send(http, shop, wa_id, "second", kept)
    assert conflict.status_code == 409, conflict.text
    bodies = [m.body["text"]["body"] for m in shop.sim.state.sent_messages(to=wa_id)]
    assert bodies == ["first"] * 4 + ["second"]
