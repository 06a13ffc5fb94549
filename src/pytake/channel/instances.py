"""Evolution instances: create (with PyTake's webhook and secret), connection state, QR codes."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.principal import Principal
from pytake.channel.providers import (
    evolution_client_for,
    evolution_webhook_headers,
    evolution_webhook_url,
)
from pytake.channel.schemas import (
    InstanceCreatedOut,
    InstanceCreateIn,
    InstanceOut,
    InstanceStatusOut,
    QrCodeOut,
)
from pytake.config import Settings
from pytake.errors import BadRequest, Conflict, NotFound, PyTakeError, ValidationFailed
from pytake.kit.crypto import secret_box
from pytake.kit.ssrf import UnsafeUrl
from pytake.models import Channel
from pytake.models.base import utcnow
from pytake.tenancy import get_scoped, scoped
from pytake.whatsapp.evolution import BAILEYS, QrCode, WebhookConfig
from pytake.whatsapp.provider import ProviderError

# Evolution refreshes a pending QR code about every 40 s; treat one as stale after a minute.
QR_LIFETIME = timedelta(seconds=60)
_STATUS_WORDS = {"open": "connected", "close": "disconnected", "connecting": "connecting"}


class ProviderFailed(PyTakeError):
    """The Evolution server refused or could not be reached (502 with its reason)."""

    status = 502
    code = "whatsapp_api_error"
    default_message = "The WhatsApp provider failed"


def _provider_failed(exc: ProviderError | UnsafeUrl) -> PyTakeError:
    if isinstance(exc, UnsafeUrl):
        return BadRequest(f"Refusing to call the Evolution URL: {exc}")
    if exc.http_status == 404:
        return NotFound(f"Evolution does not know this instance: {exc.message}")
    if exc.http_status == 403 and "already in use" in exc.message:
        return Conflict(exc.message)
    return ProviderFailed(
        f"Evolution API error: {exc.plain_explanation}",
        extra={"provider_code": exc.code, "provider_status": exc.http_status},
    )


async def _by_instance(session: AsyncSession, principal: Principal, name: str) -> Channel | None:
    stmt = scoped(select(Channel), Channel, principal).where(
        Channel.provider == "evolution", Channel.instance_name == name
    )
    return await session.scalar(stmt.limit(1))


async def _server_channel(
    session: AsyncSession, principal: Principal, data: InstanceCreateIn
) -> Channel:
    if data.config_id is not None:
        channel = await get_scoped(
            session, Channel, data.config_id, principal, what="Configuration"
        )
        if channel.provider != "evolution":
            raise ValidationFailed.on("config_id", "is not an Evolution configuration")
        return channel
    named = await _by_instance(session, principal, data.instance_name)
    if named is not None:
        return named
    stmt = scoped(select(Channel), Channel, principal).where(Channel.provider == "evolution")
    server = await session.scalar(
        stmt.order_by(Channel.is_default.desc(), Channel.created_at.desc()).limit(1)
    )
    if server is None:
        raise ValidationFailed.on(
            "config_id", "No Evolution configuration: create one with the server URL and API key"
        )
    return server


def _instance_channel(server: Channel, name: str, settings: Settings) -> Channel:
    """The channel the new instance's webhooks belong to: the server's own if it has no
    instance yet (or is this one), else a new channel on the same server."""
    if server.instance_name in (None, "", name):
        server.instance_name = name
        return server
    return Channel(
        id=uuid.uuid4(),
        organization_id=server.organization_id,
        name=name,
        provider="evolution",
        evolution_url=server.evolution_url,
        evolution_api_key_encrypted=server.evolution_api_key_encrypted,
        instance_name=name,
        webhook_verify_token=secrets.token_urlsafe(24),
        evolution_webhook_secret_encrypted=secret_box(settings).encrypt(secrets.token_urlsafe(32)),
        is_active=True,
        is_default=False,
        health_status="unknown",
        created_by=server.created_by,
        created_at=utcnow(),
        updated_at=utcnow(),
    )


def _keep_qr(channel: Channel, qr: QrCode | None) -> None:
    if qr is not None and qr.base64:
        channel.qr_code = qr.base64
        channel.qr_code_expires_at = utcnow() + QR_LIFETIME


async def create_instance(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    http: aiohttp.ClientSession,
    data: InstanceCreateIn,
    base_url: str,
) -> InstanceCreatedOut:
    """Create an instance on the Evolution server, wired to post its webhooks to PyTake."""
    server = await _server_channel(session, principal, data)
    channel = _instance_channel(server, data.instance_name, settings)
    webhook = WebhookConfig(
        url=evolution_webhook_url(base_url, channel),
        headers=evolution_webhook_headers(channel, settings),
    )
    try:
        client = await evolution_client_for(server, settings, http)
        created = await client.create_instance(
            data.instance_name, token=data.token, qrcode=data.qrcode, webhook=webhook
        )
    except (ProviderError, UnsafeUrl) as exc:
        raise _provider_failed(exc) from exc
    channel.evolution_integration = created.integration or BAILEYS
    channel.connection_state = created.status or "close"
    _keep_qr(channel, created.qrcode)
    channel.updated_at = utcnow()
    if channel is not server:
        session.add(channel)
    await session.flush()
    return InstanceCreatedOut(
        instance=InstanceOut(
            instance_name=created.name,
            status="created",
            qr_code=channel.qr_code if created.qrcode else None,
            config_id=channel.id,
            connection_state=channel.connection_state,
        )
    )


async def instance_name_of(
    session: AsyncSession, principal: Principal, channel_id: uuid.UUID
) -> str:
    """The Evolution instance of a configuration (409 for a Cloud API number or none set)."""
    channel = await get_scoped(session, Channel, channel_id, principal, what="Configuration")
    if channel.provider != "evolution" or not channel.instance_name:
        raise Conflict("Only an Evolution number with an instance name has a QR code to scan")
    return channel.instance_name


async def _named_channel(session: AsyncSession, principal: Principal, name: str) -> Channel:
    channel = await _by_instance(session, principal, name)
    if channel is None:
        raise NotFound(f"No Evolution instance named {name!r} is configured")
    return channel


async def instance_status(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    http: aiohttp.ClientSession,
    name: str,
) -> InstanceStatusOut:
    """The instance's live connection state (also kept on its configuration)."""
    channel = await _named_channel(session, principal, name)
    try:
        client = await evolution_client_for(channel, settings, http)
        state = await client.connection_state(name)
        owner = None
        if state == "open":
            rows = await client.fetch_instances(name)
            row = next((r for r in rows if r.get("name") == name), {})
            owner = str(row.get("ownerJid") or "").split("@")[0].split(":")[0] or None
    except (ProviderError, UnsafeUrl) as exc:
        raise _provider_failed(exc) from exc
    _record_state(channel, state)
    if owner:
        channel.display_phone_number = "+" + owner
    await session.flush()
    return InstanceStatusOut(
        instance_name=name,
        status=_STATUS_WORDS.get(state, "refused"),
        phone_number=channel.display_phone_number if state == "open" else None,
        connected_at=channel.connected_at if state == "open" else None,
    )


def _record_state(channel: Channel, state: str) -> None:
    if state == "open" and channel.connection_state != "open":
        channel.connected_at = utcnow()
    if state == "open":
        channel.qr_code, channel.qr_code_expires_at = None, None
    channel.connection_state = state
    channel.updated_at = utcnow()


async def instance_qrcode(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    http: aiohttp.ClientSession,
    name: str,
) -> QrCodeOut:
    """A QR code to scan: the one a webhook delivered if still fresh, else a new one."""
    channel = await _named_channel(session, principal, name)
    if channel.qr_code and _fresh(channel.qr_code_expires_at):
        return QrCodeOut(qr_code=channel.qr_code, expires_at=channel.qr_code_expires_at)
    try:
        client = await evolution_client_for(channel, settings, http)
        result = await client.connect(name)
    except (ProviderError, UnsafeUrl) as exc:
        raise _provider_failed(exc) from exc
    if result.qrcode is None:
        if result.state:
            _record_state(channel, result.state)
            await session.flush()
        raise Conflict("The instance is already connected; no QR code to scan", keep_changes=True)
    _keep_qr(channel, result.qrcode)
    channel.connection_state = result.state or "connecting"
    await session.flush()
    return QrCodeOut(
        qr_code=channel.qr_code,
        pairing_code=result.qrcode.pairing_code,
        expires_at=channel.qr_code_expires_at,
    )


def _fresh(expires_at: datetime | None) -> bool:
    return expires_at is not None and expires_at > utcnow()
