"""Idempotency-Key: the same key and body return the first send's result, once per key.

The key is taken in the send's queueing transaction (a concurrent twin waits on it, then
conflicts and replays), and the answer is stored once known: a receipt, or the refusal as the
`/v1` envelope rendered it, which a replay raises again unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.auth.principal import Principal
from pytake.db import unit_of_work
from pytake.errors import FieldError, PyTakeError, ValidationFailed, render_v1
from pytake.message.sending.errors import IdempotencyConflict
from pytake.message.sending.receipt import SendReceipt, receipt_for
from pytake.models import IdempotencyKey, Message


@dataclass(frozen=True)
class Idempotency:
    """An Idempotency-Key and the hash of the request it came with."""

    key: str
    request_hash: str

    @classmethod
    def of(cls, key: str | None, scope: str, body: BaseModel) -> Idempotency | None:
        if key is None:
            return None
        if not key.strip() or len(key) > 255:
            raise ValidationFailed.on("Idempotency-Key", "Must be 1 to 255 characters")
        raw = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        return cls(key, hashlib.sha256(scope.encode() + b"\n" + raw).hexdigest())


class ReplayedRefusal(PyTakeError):
    """The refusal a key's first request got, raised again with its status and envelope."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        error = dict(body.get("error") or {})
        error.pop("request_id", None)  # the first request's, not this one's
        code = error.pop("code", PyTakeError.code)
        message = error.pop("message", None)
        details = [FieldError(d["field"], d["message"]) for d in error.pop("details", [])]
        super().__init__(message, details=details, extra=error)
        self.status = status  # type: ignore[misc]
        self.code = code  # type: ignore[misc]


async def take_key(
    session: AsyncSession, principal: Principal, idempotency: Idempotency | None
) -> IdempotencyKey | None:
    """Claim the key in the queueing transaction (None without a key)."""
    if idempotency is None:
        return None
    row = IdempotencyKey(
        organization_id=principal.organization_id,
        key=idempotency.key,
        request_hash=idempotency.request_hash,
    )
    session.add(row)
    await session.flush()  # takes the key now: a concurrent twin waits here, then conflicts
    return row


async def replay(
    factory: async_sessionmaker[AsyncSession], principal: Principal, idempotency: Idempotency
) -> SendReceipt | None:
    """The first request's result for this key (its refusal is raised), else None."""
    async with factory() as session:
        row = await session.scalar(
            select(IdempotencyKey).where(
                IdempotencyKey.organization_id == principal.organization_id,
                IdempotencyKey.key == idempotency.key,
            )
        )
        if row is None:
            return None
        if row.request_hash != idempotency.request_hash:
            raise IdempotencyConflict()
        if row.response_status is not None and row.response_body is not None:
            if row.response_status >= 400:
                raise ReplayedRefusal(row.response_status, row.response_body)
            return SendReceipt(row.response_body)
        message = await session.get(Message, row.message_id) if row.message_id else None
    return receipt_for(message) if message is not None else None


async def remember(
    factory: async_sessionmaker[AsyncSession],
    principal: Principal,
    idempotency: Idempotency | None,
    answer: SendReceipt | PyTakeError,
) -> None:
    """Store the key's answer, once: the receipt, or the refusal's `/v1` envelope."""
    if idempotency is None:
        return
    if isinstance(answer, PyTakeError):
        status, body = answer.status, render_v1(answer)
    else:
        # As the endpoints answer it; a replay reads `queued` from the view itself.
        status, body = (202 if answer.queued else 201), answer.view
    async with unit_of_work(factory) as session:
        await session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.organization_id == principal.organization_id,
                IdempotencyKey.key == idempotency.key,
                IdempotencyKey.response_status.is_(None),
            )
            .values(response_status=status, response_body=orjson.loads(orjson.dumps(body)))
        )
