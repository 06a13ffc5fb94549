"""WhatsApp configurations: CRUD with encrypted secrets, exactly one default per organisation,
and connectivity tests."""

from __future__ import annotations

import logging
import secrets
import uuid

import aiohttp
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.principal import Principal
from pytake.channel.health import (
    CheckResult,
    apply_result,
    check_connectivity,
    register_evolution_webhook,
)
from pytake.channel.schemas import ConfigCreateIn, ConfigOut, ConfigTestOut, ConfigUpdateIn
from pytake.config import Settings
from pytake.errors import Conflict, FieldError, NotFound, ValidationFailed
from pytake.kit.crypto import SecretBox, secret_box
from pytake.kit.pagination import PageParams
from pytake.kit.ssrf import UnsafeUrl, check_url_syntax
from pytake.models import Channel, Chatbot, User
from pytake.models.base import utcnow
from pytake.tenancy import get_scoped, scoped
from pytake.whatsapp.provider import ProviderError

log = logging.getLogger(__name__)

_REQUIRED = {
    "official": (
        ("phone_number_id", "phone_number_id"),
        ("access_token", "access_token_encrypted"),
        ("app_secret", "app_secret_encrypted"),
    ),
    "evolution": (
        ("evolution_url", "evolution_url"),
        ("evolution_api_key", "evolution_api_key_encrypted"),
        ("instance_name", "instance_name"),
    ),
}
_SECRETS = {
    "access_token": "access_token_encrypted",
    "app_secret": "app_secret_encrypted",
    "evolution_api_key": "evolution_api_key_encrypted",
}
_PLAIN = (
    "name",
    "phone_number_id",
    "business_account_id",
    "webhook_verify_token",
    "evolution_url",
    "instance_name",
    "throughput",
)


def to_out(channel: Channel) -> ConfigOut:
    """The API view of a configuration: secrets reduced to `has_*` flags."""
    return ConfigOut(
        id=channel.id,
        name=channel.name,
        provider=channel.provider,
        phone_number_id=channel.phone_number_id,
        business_account_id=channel.business_account_id,
        display_phone_number=channel.display_phone_number,
        verified_name=channel.verified_name,
        webhook_verify_token=channel.webhook_verify_token,
        evolution_url=channel.evolution_url,
        instance_name=channel.instance_name,
        connection_state=channel.connection_state,
        has_access_token=bool(channel.access_token_encrypted),
        has_app_secret=bool(channel.app_secret_encrypted),
        has_evolution_api_key=bool(channel.evolution_api_key_encrypted),
        is_active=channel.is_active,
        is_default=channel.is_default,
        health_status=channel.health_status,
        health_detail=channel.health_detail,
        last_health_check=channel.last_health_check,
        chatbot_id=channel.chatbot_id,
        throughput=channel.throughput,
        created_at=channel.created_at,
        updated_at=channel.updated_at,
        created_by=channel.created_by,
    )


def _check_complete(channel: Channel) -> None:
    missing = [
        FieldError(name, f"{name} is required for provider '{channel.provider}'")
        for name, attr in _REQUIRED[channel.provider]
        if not getattr(channel, attr)
    ]
    if missing:
        raise ValidationFailed(f"Missing required field: {missing[0].field}", details=missing)
    if channel.provider == "evolution":
        try:
            check_url_syntax(channel.evolution_url or "")
        except UnsafeUrl as exc:
            raise ValidationFailed.on("evolution_url", str(exc)) from exc


def _assign(channel: Channel, box: SecretBox, data: dict[str, object]) -> None:
    for name in _PLAIN:
        if name in data:
            value = data[name]
            setattr(channel, name, value.strip() if isinstance(value, str) else value)
    for name, attr in _SECRETS.items():
        if name in data:
            value = data[name]
            setattr(channel, attr, box.encrypt(value) if isinstance(value, str) and value else None)


async def _set_chatbot(
    session: AsyncSession, channel: Channel, chatbot_id: uuid.UUID | None
) -> None:
    """Name the chatbot answering on the number (one of the organisation's, or none)."""
    if chatbot_id is not None:
        owner = await session.scalar(
            select(Chatbot.organization_id).where(Chatbot.id == chatbot_id)
        )
        if owner != channel.organization_id:
            raise ValidationFailed.on("chatbot_id", "No such chatbot in your organisation")
    channel.chatbot_id = chatbot_id


async def _check_unique(session: AsyncSession, channel: Channel) -> None:
    org = Channel.organization_id == channel.organization_id
    other = Channel.id != channel.id
    if channel.provider == "official" and channel.phone_number_id:
        clash = await session.scalar(
            select(Channel.id).where(org, other, Channel.phone_number_id == channel.phone_number_id)
        )
        if clash:
            raise Conflict(
                "A configuration with this phone_number_id already exists",
                details=[FieldError("phone_number_id", "already configured")],
            )
    if channel.provider == "evolution" and channel.instance_name:
        clash = await session.scalar(
            select(Channel.id).where(
                org,
                other,
                Channel.provider == "evolution",
                Channel.instance_name == channel.instance_name,
            )
        )
        if clash:
            raise Conflict(
                "A configuration for this instance already exists",
                details=[FieldError("instance_name", "already configured")],
            )


async def _make_default(session: AsyncSession, channel: Channel) -> None:
    # Unset the old default before setting the new one: the partial unique index allows one.
    await session.execute(
        update(Channel)
        .where(
            Channel.organization_id == channel.organization_id,
            Channel.id != channel.id,
            Channel.is_default.is_(True),
        )
        .values(is_default=False, updated_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    channel.is_default = True


async def _has_default(session: AsyncSession, organization_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(Channel.id).where(
            Channel.organization_id == organization_id, Channel.is_default.is_(True)
        )
    )
    return found is not None


async def _creator(session: AsyncSession, principal: Principal) -> str | None:
    if principal.user_id is None:
        return None
    return await session.scalar(select(User.email).where(User.id == principal.user_id))


async def list_channels(
    session: AsyncSession,
    principal: Principal,
    active: bool | None = None,
    provider: str | None = None,
    params: PageParams | None = None,
) -> tuple[list[Channel], int]:
    """The organisation's numbers (default first, then newest), optionally filtered."""
    stmt = scoped(select(Channel), Channel, principal)
    if active is not None:
        stmt = stmt.where(Channel.is_active.is_(active))
    if provider is not None:
        stmt = stmt.where(Channel.provider == provider)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    stmt = stmt.order_by(Channel.is_default.desc(), Channel.created_at.desc(), Channel.id)
    if params is not None:
        stmt = stmt.offset(params.offset).limit(params.limit)
    return list(await session.scalars(stmt)), total


async def create_channel(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    data: ConfigCreateIn,
) -> Channel:
    """Add a number; the organisation's first number becomes its default."""
    box = secret_box(settings)
    channel = Channel(
        id=uuid.uuid4(),
        organization_id=principal.organization_id,
        provider=data.provider,
        is_active=data.is_active,
        is_default=False,
        health_status="unknown" if data.is_active else "inactive",
        created_by=await _creator(session, principal),
        created_by_id=principal.user_id,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    _assign(channel, box, data.model_dump(exclude={"provider", "is_active", "is_default"}))
    await _set_chatbot(session, channel, data.chatbot_id)
    _check_complete(channel)
    if not channel.webhook_verify_token:
        channel.webhook_verify_token = secrets.token_urlsafe(24)
    if channel.provider == "evolution":
        channel.evolution_webhook_secret_encrypted = box.encrypt(secrets.token_urlsafe(32))
    await _check_unique(session, channel)
    if data.is_default or not await _has_default(session, principal.organization_id):
        await _make_default(session, channel)
    session.add(channel)
    await session.flush()
    return channel


async def get_channel(
    session: AsyncSession, principal: Principal, channel_id: uuid.UUID
) -> Channel:
    return await get_scoped(session, Channel, channel_id, principal, what="Configuration")


async def update_channel(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    channel_id: uuid.UUID,
    data: ConfigUpdateIn,
) -> Channel:
    """Partial update; secrets sent are re-encrypted, omitted ones are kept."""
    channel = await get_channel(session, principal, channel_id)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("is_default") is False and channel.is_default:
        raise ValidationFailed.on(
            "is_default", "An organisation always has a default; set another one as default"
        )
    _assign(channel, secret_box(settings), changes)
    if "chatbot_id" in changes:
        await _set_chatbot(session, channel, data.chatbot_id)
    _check_complete(channel)
    await _check_unique(session, channel)
    if changes.get("is_active") is not None and changes["is_active"] != channel.is_active:
        channel.is_active = changes["is_active"]
        channel.health_status = "unknown" if channel.is_active else "inactive"
        channel.health_detail = None
    if changes.get("is_default") and not channel.is_default:
        await _make_default(session, channel)
    channel.updated_at = utcnow()
    await session.flush()
    return channel


async def delete_channel(
    session: AsyncSession, principal: Principal, channel_id: uuid.UUID
) -> None:
    """Delete a number (its conversations stay); a deleted default passes to the newest other."""
    channel = await get_channel(session, principal, channel_id)
    was_default = channel.is_default
    await session.delete(channel)
    await session.flush()
    if was_default:
        successor = await session.scalar(
            select(Channel)
            .where(Channel.organization_id == channel.organization_id)
            .order_by(Channel.is_active.desc(), Channel.created_at.desc())
            .limit(1)
        )
        if successor is not None:
            successor.is_default = True
            await session.flush()


async def default_channel(session: AsyncSession, organization_id: uuid.UUID) -> Channel:
    """The organisation's default number (404 when it has none); what sending uses by default."""
    channel = await session.scalar(
        select(Channel).where(
            Channel.organization_id == organization_id,
            Channel.is_default.is_(True),
        )
    )
    if channel is None:
        raise NotFound("No default WhatsApp configuration")
    return channel


async def get_default(session: AsyncSession, principal: Principal) -> Channel:
    return await default_channel(session, principal.organization_id)


async def set_default(
    session: AsyncSession, principal: Principal, channel_id: uuid.UUID
) -> Channel:
    """Make this number the organisation's default (the previous default is unset)."""
    channel = await get_channel(session, principal, channel_id)
    if not channel.is_default:
        await _make_default(session, channel)
        channel.updated_at = utcnow()
        await session.flush()
    return channel


async def test_channel(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    http: aiohttp.ClientSession,
    channel_id: uuid.UUID,
    base_url: str,
) -> ConfigTestOut:
    """Call the provider with the stored credentials and record the outcome as health.

    For Evolution this also (re)registers PyTake's webhook with its secret header.
    """
    channel = await get_channel(session, principal, channel_id)
    result = await check_connectivity(channel, settings, http)
    if result.ok and channel.provider == "evolution":
        result = await _register_webhook(channel, settings, http, base_url, result)
    apply_result(channel, result)
    channel.updated_at = utcnow()
    await session.flush()
    return ConfigTestOut(
        success=result.ok,
        message=result.message,
        error=None if result.ok else "Configuration test failed",
        config_id=channel.id,
        provider=channel.provider,
        details=result.details,
    )


async def _register_webhook(
    channel: Channel,
    settings: Settings,
    http: aiohttp.ClientSession,
    base_url: str,
    result: CheckResult,
) -> CheckResult:
    try:
        await register_evolution_webhook(channel, settings, http, base_url)
    except (ProviderError, UnsafeUrl) as exc:
        log.warning("webhook/set failed for channel %s: %s", channel.id, exc)
        return CheckResult(False, f"Could not register the webhook: {exc}", result.details)
    result.details["webhook"] = "registered"
    return result
