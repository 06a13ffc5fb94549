"""Provider webhooks: authenticate the body, find its WhatsApp number(s), hand events to ingest."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from pytake.channel.providers import EVOLUTION_SECRET_HEADER
from pytake.config import Settings
from pytake.errors import AuthenticationFailed, BadRequest, FieldError, NotFound, PayloadTooLarge
from pytake.kit.crypto import SecretUnreadable, secret_box
from pytake.message.ingest import Channel, IngestResult, ingest_events
from pytake.message.writer import IngestWriter, MetaDelivery
from pytake.models import WhatsAppConfig
from pytake.whatsapp.cloud import parse_webhook, verify_challenge
from pytake.whatsapp.events import Event, MalformedWebhook, by_channel
from pytake.whatsapp.evolution import check_headers, parse_evolution_webhook

log = logging.getLogger("pytake.message.webhooks")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything above `limit` bytes without reading it all."""
    return await read_limited(request.stream(), request.headers.get("content-length", ""), limit)


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


def _malformed(reason: str) -> BadRequest:
    return BadRequest(f"Malformed webhook: {reason}", details=[FieldError("body", reason)])


def _json(raw: bytes) -> Any:
    if not raw.strip():
        raise _malformed("empty body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _malformed(f"invalid JSON ({exc})") from exc


def _channel(config: WhatsAppConfig) -> Channel:
    return Channel(config.id, config.organization_id, config.provider)


async def meta_challenge(session: AsyncSession, params: Mapping[str, str]) -> str | None:
    """The challenge to echo when `hub.verify_token` is some config's token, else None."""
    token = params.get("hub.verify_token")
    if not token:
        return None
    configs = await session.scalars(
        select(WhatsAppConfig.webhook_verify_token).where(
            WhatsAppConfig.webhook_verify_token == token
        )
    )
    for verify_token in configs:
        answer = verify_challenge(params, verify_token or "")
        if answer is not None:
            return answer
    return None


def parse_meta(raw: bytes) -> dict[str, list[Event]]:
    """A Meta webhook body's events by the number (phone_number_id / WABA id) they concern."""
    try:
        events = parse_webhook(_json(raw))
    except MalformedWebhook as exc:
        raise _malformed(exc.reason) from exc
    return by_channel(events)


async def receive_meta(writer: IngestWriter, raw: bytes, signature: str | None) -> IngestResult:
    """A Meta webhook: events are parsed here, then the writer checks that every number they
    concern is configured and the body signed with its app secret (401 otherwise, nothing
    stored), and stores them; returns once they are committed."""
    grouped = parse_meta(raw)
    if not grouped:
        if not signature:
            raise AuthenticationFailed("Missing X-Hub-Signature-256")
        return IngestResult()
    return await writer.submit(MetaDelivery(raw, signature, grouped))


async def receive_evolution(
    session: AsyncSession,
    settings: Settings,
    config_id: uuid.UUID,
    raw: bytes,
    headers: Mapping[str, str],
) -> IngestResult:
    """An Evolution webhook for one config, authenticated by the secret header we set."""
    config = await session.scalar(
        select(WhatsAppConfig).where(
            WhatsAppConfig.id == config_id, WhatsAppConfig.provider == "evolution"
        )
    )
    if config is None:
        raise NotFound("No Evolution configuration with this id")
    try:
        secret = secret_box(settings).decrypt(config.evolution_webhook_secret_encrypted or "")
    except SecretUnreadable as exc:
        raise AuthenticationFailed(
            "Webhook secret unavailable; run the configuration test"
        ) from exc
    if not secret or not check_headers(headers, {EVOLUTION_SECRET_HEADER: secret}):
        raise AuthenticationFailed(f"Invalid or missing {EVOLUTION_SECRET_HEADER}")
    try:
        events = parse_evolution_webhook(_json(raw))
    except MalformedWebhook as exc:
        raise _malformed(exc.reason) from exc
    return await ingest_events(session, settings, _channel(config), events)
