"""Connectivity checks of WhatsApp numbers: on demand (`POST /{id}/test`) and periodically."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.channel.providers import (
    evolution_client_for,
    evolution_webhook_headers,
    evolution_webhook_url,
    provider_for,
)
from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.kit.crypto import SecretUnreadable
from pytake.kit.sql import is_postgresql
from pytake.kit.ssrf import UnsafeUrl
from pytake.models import Channel
from pytake.models.base import utcnow
from pytake.whatsapp.provider import ProviderError

log = logging.getLogger(__name__)

CHECK_INTERVAL = timedelta(minutes=5)
LOOP_TICK_SECONDS = 30.0
_CONCURRENCY = 10
_BATCH = 200
_STATE_WORDS = {"open": "connected", "close": "disconnected"}


@dataclass
class CheckResult:
    """The outcome of one connectivity check (never carries a secret)."""

    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    healthy: bool = False


def _failure(message: str, **details: Any) -> CheckResult:
    return CheckResult(False, message, {k: v for k, v in details.items() if v is not None})


def _provider_failure(exc: ProviderError) -> CheckResult:
    if exc.kind == "transport":
        return _failure(
            "Could not reach the provider: " + exc.message, reason="unreachable", retryable=True
        )
    status = f"{exc.http_status} " if exc.http_status else ""
    return _failure(
        f"API returned status: {status}{exc.plain_explanation}".strip(),
        code=exc.code,
        http_status=exc.http_status,
        reason=exc.plain_explanation,
    )


async def check_connectivity(
    channel: Channel, settings: Settings, http: aiohttp.ClientSession
) -> CheckResult:
    """Ask the provider about the number; a success proves credentials and ids are valid."""
    try:
        provider = await provider_for(channel, settings, http)
        info = await provider.phone_number_info()
    except UnsafeUrl as exc:
        return _failure(f"Refusing to call the Evolution URL: {exc}", reason="unsafe_url")
    except SecretUnreadable:
        return _failure("Stored credentials cannot be decrypted; enter them again")
    except ProviderError as exc:
        return _provider_failure(exc)
    details: dict[str, Any] = {"provider": channel.provider}
    if channel.provider == "official":
        details.update(phone_number_id=channel.phone_number_id, status="connected")
        healthy = True
    else:
        details.update(
            instance_name=channel.instance_name,
            status=_STATE_WORDS.get(info.status or "", info.status),
        )
        healthy = info.status == "open"
    details.update(
        verified_name=info.verified_name,
        display_phone_number=info.display_phone_number,
        quality_rating=info.quality_rating,
    )
    result = CheckResult(True, "Configuration test successful", details, healthy)
    _remember(channel, info.verified_name, info.display_phone_number, info.status)
    return result


def _remember(
    channel: Channel, verified: str | None, display: str | None, state: str | None
) -> None:
    if verified:
        channel.verified_name = verified
    if display:
        channel.display_phone_number = display
    if channel.provider == "evolution" and state:
        if state == "open" and channel.connection_state != "open":
            channel.connected_at = utcnow()
        channel.connection_state = state


async def register_evolution_webhook(
    channel: Channel, settings: Settings, http: aiohttp.ClientSession, base_url: str
) -> None:
    """`webhook/set` on the channel's instance: our URL and its secret header."""
    client = await evolution_client_for(channel, settings, http)
    await client.set_webhook(
        channel.instance_name or "",
        evolution_webhook_url(base_url, channel),
        evolution_webhook_headers(channel, settings),
    )


def apply_result(channel: Channel, result: CheckResult) -> None:
    """Record a check on the channel: health_status, detail and time."""
    channel.last_health_check = utcnow()
    if not channel.is_active:
        channel.health_status = "inactive"
    else:
        channel.health_status = "healthy" if result.ok and result.healthy else "unhealthy"
    if result.ok and not result.healthy:
        channel.health_detail = f"not connected (state {channel.connection_state})"
    else:
        channel.health_detail = None if result.ok else result.message[:500]


_RECORDED = (
    "health_status",
    "health_detail",
    "last_health_check",
    "verified_name",
    "display_phone_number",
    "connection_state",
    "connected_at",
)


async def check_due_channels(
    factory: async_sessionmaker[AsyncSession], settings: Settings, http: aiohttp.ClientSession
) -> list[uuid.UUID]:
    """Check every number whose last check is older than CHECK_INTERVAL; returns their ids.

    The due numbers are claimed first (their `last_health_check` moved to now in a short
    transaction, skipping rows another worker holds), so two workers never check one number
    at once; no transaction stays open while providers answer: claim, check, then write.
    """
    cutoff = utcnow() - CHECK_INTERVAL
    is_due = or_(Channel.last_health_check.is_(None), Channel.last_health_check < cutoff)
    async with unit_of_work(factory) as session:
        due = (
            select(Channel)
            .where(is_due)
            .order_by(Channel.last_health_check.nulls_first())
            .limit(_BATCH)
        )
        if is_postgresql(session):
            due = due.with_for_update(skip_locked=True)
        candidates = {c.id: c for c in await session.scalars(due)}
        # Still due when claimed: on SQLite a second worker may have read the same rows.
        claimed = (
            set(
                await session.scalars(
                    update(Channel)
                    .where(Channel.id.in_(list(candidates)), is_due)
                    .values(last_health_check=utcnow())
                    .returning(Channel.id)
                )
            )
            if candidates
            else set()
        )
        channels = [c for cid, c in candidates.items() if cid in claimed]
        session.expunge_all()
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def check(channel: Channel) -> None:
        if not channel.is_active:
            apply_result(channel, CheckResult(True, "inactive"))
            return
        async with gate:
            apply_result(channel, await check_connectivity(channel, settings, http))

    await asyncio.gather(*(check(c) for c in channels))
    async with unit_of_work(factory) as session:
        for channel in channels:
            values = {name: getattr(channel, name) for name in _RECORDED}
            await session.execute(update(Channel).where(Channel.id == channel.id).values(**values))
    return [channel.id for channel in channels]


class ChannelHealthLoop:
    """The periodic connectivity check of every number, on the worker runner like every other
    background loop (so `pytake worker` checks health, not only `serve`)."""

    name = "channel-health"

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        http: aiohttp.ClientSession,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.http = http
        # The first check waits a tick: a starting process serves requests before it calls
        # providers.
        self._next_at = time.monotonic() + LOOP_TICK_SECONDS

    async def run_once(self) -> float | None:
        wait = self._next_at - time.monotonic()
        if wait > 0:
            return wait
        checked = await check_due_channels(self.factory, self.settings, self.http)
        if len(checked) == _BATCH:
            return 0
        self._next_at = time.monotonic() + LOOP_TICK_SECONDS
        return LOOP_TICK_SECONDS
