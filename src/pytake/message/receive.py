"""Provider webhooks at the edge: one handler per provider, for every way a body arrives.

Each handler runs the same named steps: read the body (413 past the limit), authenticate it
(pytake.message.signatures), parse it into normalised events (400 when it is no webhook of
that provider), and store them (pytake.message.ingest); it returns once they are committed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.config import Settings
from pytake.errors import AuthenticationFailed, BadRequest, FieldError, NotFound, PayloadTooLarge
from pytake.message.ingest import ChannelRef, IngestResult, ingest_events
from pytake.message.signatures import check_evolution_secret
from pytake.message.writer import IngestWriter, MetaDelivery
from pytake.models import Channel
from pytake.whatsapp.cloud import parse_webhook, verify_challenge
from pytake.whatsapp.events import MalformedWebhook, ProviderEvent, by_channel
from pytake.whatsapp.evolution import parse_evolution_webhook


async def read_limited(chunks: AsyncIterator[bytes], declared: str, limit: int) -> bytes:
    """Join a body's chunks, refusing (413) a declared or actual size above `limit` early."""
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Webhook bodies are limited to {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Webhook bodies are limited to {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def handle_meta_webhook(
    writer: IngestWriter,
    settings: Settings,
    chunks: AsyncIterator[bytes],
    declared_length: str,
    signature: str | None,
) -> IngestResult:
    """A Meta notification, from the route or the fast path alike.

    The body's events name the numbers they concern; the writer then loads those numbers,
    authenticates the body with their app secret (401 otherwise, nothing stored), and stores
    the events in its next group commit."""
    raw = await read_limited(chunks, declared_length, settings.max_webhook_body_bytes)
    grouped = parse_meta(raw)
    if not grouped:
        if not signature:
            raise AuthenticationFailed("Missing X-Hub-Signature-256")
        return IngestResult()
    return await writer.submit(MetaDelivery(raw, signature, grouped))


async def handle_evolution_webhook(
    session: AsyncSession,
    settings: Settings,
    channel_id: uuid.UUID,
    chunks: AsyncIterator[bytes],
    headers: Mapping[str, str],
) -> IngestResult:
    """An Evolution event for one configuration, stored in the caller's transaction."""
    raw = await read_limited(
        chunks, headers.get("content-length", ""), settings.max_webhook_body_bytes
    )
    channel = await session.scalar(
        select(Channel).where(Channel.id == channel_id, Channel.provider == "evolution")
    )
    if channel is None:
        raise NotFound("No Evolution configuration with this id")
    check_evolution_secret(settings, channel.evolution_webhook_secret_encrypted, headers)
    try:
        events = parse_evolution_webhook(_json(raw))
    except MalformedWebhook as exc:
        raise _malformed(exc.reason) from exc
    ref = ChannelRef(channel.id, channel.organization_id, channel.provider)
    return await ingest_events(session, settings, ref, events)


def parse_meta(raw: bytes) -> dict[str, list[ProviderEvent]]:
    """A Meta webhook body's events by the number (phone_number_id / WABA id) they concern."""
    try:
        events = parse_webhook(_json(raw))
    except MalformedWebhook as exc:
        raise _malformed(exc.reason) from exc
    return by_channel(events)


async def meta_challenge(session: AsyncSession, params: Mapping[str, str]) -> str | None:
    """The challenge to echo when `hub.verify_token` is some config's token, else None."""
    token = params.get("hub.verify_token")
    if not token:
        return None
    tokens = await session.scalars(
        select(Channel.webhook_verify_token).where(Channel.webhook_verify_token == token)
    )
    for verify_token in tokens:
        answer = verify_challenge(params, verify_token or "")
        if answer is not None:
            return answer
    return None


def _malformed(reason: str) -> BadRequest:
    return BadRequest(f"Malformed webhook: {reason}", details=[FieldError("body", reason)])


def _json(raw: bytes) -> Any:
    if not raw.strip():
        raise _malformed("empty body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _malformed(f"invalid JSON ({exc})") from exc
