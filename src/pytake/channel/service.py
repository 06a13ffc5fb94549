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
from pytake.models import Chatbot, User, WhatsAppConfig
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


def to_out(config: WhatsAppConfig) -> ConfigOut:
    """The API view of a configuration: secrets reduced to `has_*` flags."""
    return ConfigOut(
        id=config.id,
        name=config.name,
        provider=config.provider,
        phone_number_id=config.phone_number_id,
        business_account_id=config.business_account_id,
        display_phone_number=config.display_phone_number,
        verified_name=config.verified_name,
        webhook_verify_token=config.webhook_verify_token,
        evolution_url=config.evolution_url,
        instance_name=config.instance_name,
        connection_state=config.connection_state,
        has_access_token=bool(config.access_token_encrypted),
        has_app_secret=bool(config.app_secret_encrypted),
        has_evolution_api_key=bool(config.evolution_api_key_encrypted),
        is_active=config.is_active,
        is_default=config.is_default,
        health_status=config.health_status,
        health_detail=config.health_detail,
        last_health_check=config.last_health_check,
        chatbot_id=config.chatbot_id,
        throughput=config.throughput,
        created_at=config.created_at,
        updated_at=config.updated_at,
        created_by=config.created_by,
    )


def _check_complete(config: WhatsAppConfig) -> None:
    missing = [
        FieldError(name, f"{name} is required for provider '{config.provider}'")
        for name, attr in _REQUIRED[config.provider]
        if not getattr(config, attr)
    ]
    if missing:
        raise ValidationFailed(f"Missing required field: {missing[0].field}", details=missing)
    if config.provider == "evolution":
        try:
            check_url_syntax(config.evolution_url or "")
        except UnsafeUrl as exc:
            raise ValidationFailed.on("evolution_url", str(exc)) from exc


def _assign(config: WhatsAppConfig, box: SecretBox, data: dict[str, object]) -> None:
    for name in _PLAIN:
        if name in data:
            value = data[name]
            setattr(config, name, value.strip() if isinstance(value, str) else value)
    for name, attr in _SECRETS.items():
        if name in data:
            value = data[name]
            setattr(config, attr, box.encrypt(value) if isinstance(value, str) and value else None)


async def _set_chatbot(
    session: AsyncSession, config: WhatsAppConfig, chatbot_id: uuid.UUID | None
) -> None:
    """Name the chatbot answering on the number (one of the organisation's, or none)."""
    if chatbot_id is not None:
        owner = await session.scalar(
            select(Chatbot.organization_id).where(Chatbot.id == chatbot_id)
        )
        if owner != config.organization_id:
            raise ValidationFailed.on("chatbot_id", "No such chatbot in your organisation")
    config.chatbot_id = chatbot_id


async def _check_unique(session: AsyncSession, config: WhatsAppConfig) -> None:
    org = WhatsAppConfig.organization_id == config.organization_id
    other = WhatsAppConfig.id != config.id
    if config.provider == "official" and config.phone_number_id:
        clash = await session.scalar(
            select(WhatsAppConfig.id).where(
                org, other, WhatsAppConfig.phone_number_id == config.phone_number_id
            )
        )
        if clash:
            raise Conflict(
                "A configuration with this phone_number_id already exists",
                details=[FieldError("phone_number_id", "already configured")],
            )
    if config.provider == "evolution" and config.instance_name:
        clash = await session.scalar(
            select(WhatsAppConfig.id).where(
                org,
                other,
                WhatsAppConfig.provider == "evolution",
                WhatsAppConfig.instance_name == config.instance_name,
            )
        )
        if clash:
            raise Conflict(
                "A configuration for this instance already exists",
                details=[FieldError("instance_name", "already configured")],
            )


async def _make_default(session: AsyncSession, config: WhatsAppConfig) -> None:
    # Unset the old default before setting the new one: the partial unique index allows one.
    await session.execute(
        update(WhatsAppConfig)
        .where(
            WhatsAppConfig.organization_id == config.organization_id,
            WhatsAppConfig.id != config.id,
            WhatsAppConfig.is_default.is_(True),
        )
        .values(is_default=False, updated_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    config.is_default = True


async def _has_default(session: AsyncSession, organization_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(WhatsAppConfig.id).where(
            WhatsAppConfig.organization_id == organization_id, WhatsAppConfig.is_default.is_(True)
        )
    )
    return found is not None


async def _creator(session: AsyncSession, principal: Principal) -> str | None:
    if principal.user_id is None:
        return None
    return await session.scalar(select(User.email).where(User.id == principal.user_id))


async def list_configs(
    session: AsyncSession,
    principal: Principal,
    active: bool | None = None,
    provider: str | None = None,
    params: PageParams | None = None,
) -> tuple[list[WhatsAppConfig], int]:
    """The organisation's numbers (default first, then newest), optionally filtered."""
    stmt = scoped(select(WhatsAppConfig), WhatsAppConfig, principal)
    if active is not None:
        stmt = stmt.where(WhatsAppConfig.is_active.is_(active))
    if provider is not None:
        stmt = stmt.where(WhatsAppConfig.provider == provider)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    stmt = stmt.order_by(
        WhatsAppConfig.is_default.desc(), WhatsAppConfig.created_at.desc(), WhatsAppConfig.id
    )
    if params is not None:
        stmt = stmt.offset(params.offset).limit(params.limit)
    return list(await session.scalars(stmt)), total


async def create_config(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    data: ConfigCreateIn,
) -> WhatsAppConfig:
    """Add a number; the organisation's first number becomes its default."""
    box = secret_box(settings)
    config = WhatsAppConfig(
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
    _assign(config, box, data.model_dump(exclude={"provider", "is_active", "is_default"}))
    await _set_chatbot(session, config, data.chatbot_id)
    _check_complete(config)
    if not config.webhook_verify_token:
        config.webhook_verify_token = secrets.token_urlsafe(24)
    if config.provider == "evolution":
        config.evolution_webhook_secret_encrypted = box.encrypt(secrets.token_urlsafe(32))
    await _check_unique(session, config)
    if data.is_default or not await _has_default(session, principal.organization_id):
        await _make_default(session, config)
    session.add(config)
    await session.flush()
    return config


async def get_config(
    session: AsyncSession, principal: Principal, config_id: uuid.UUID
) -> WhatsAppConfig:
    return await get_scoped(session, WhatsAppConfig, config_id, principal, what="Configuration")


async def update_config(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    config_id: uuid.UUID,
    data: ConfigUpdateIn,
) -> WhatsAppConfig:
    """Partial update; secrets sent are re-encrypted, omitted ones are kept."""
    config = await get_config(session, principal, config_id)
    changes = data.model_dump(exclude_unset=True)
    if changes.get("is_default") is False and config.is_default:
        raise ValidationFailed.on(
            "is_default", "An organisation always has a default; set another one as default"
        )
    _assign(config, secret_box(settings), changes)
    if "chatbot_id" in changes:
        await _set_chatbot(session, config, data.chatbot_id)
    _check_complete(config)
    await _check_unique(session, config)
    if changes.get("is_active") is not None and changes["is_active"] != config.is_active:
        config.is_active = changes["is_active"]
        config.health_status = "unknown" if config.is_active else "inactive"
        config.health_detail = None
    if changes.get("is_default") and not config.is_default:
        await _make_default(session, config)
    config.updated_at = utcnow()
    await session.flush()
    return config


async def delete_config(session: AsyncSession, principal: Principal, config_id: uuid.UUID) -> None:
    """Delete a number (its conversations stay); a deleted default passes to the newest other."""
    config = await get_config(session, principal, config_id)
    was_default = config.is_default
    await session.delete(config)
    await session.flush()
    if was_default:
        successor = await session.scalar(
            select(WhatsAppConfig)
            .where(WhatsAppConfig.organization_id == config.organization_id)
            .order_by(WhatsAppConfig.is_active.desc(), WhatsAppConfig.created_at.desc())
            .limit(1)
        )
        if successor is not None:
            successor.is_default = True
            await session.flush()


async def default_config(session: AsyncSession, organization_id: uuid.UUID) -> WhatsAppConfig:
    """The organisation's default number (404 when it has none); what sending uses by default."""
    config = await session.scalar(
        select(WhatsAppConfig).where(
            WhatsAppConfig.organization_id == organization_id,
            WhatsAppConfig.is_default.is_(True),
        )
    )
    if config is None:
        raise NotFound("No default WhatsApp configuration")
    return config


async def get_default(session: AsyncSession, principal: Principal) -> WhatsAppConfig:
    return await default_config(session, principal.organization_id)


async def set_default(
    session: AsyncSession, principal: Principal, config_id: uuid.UUID
) -> WhatsAppConfig:
    """Make this number the organisation's default (the previous default is unset)."""
    config = await get_config(session, principal, config_id)
    if not config.is_default:
        await _make_default(session, config)
        config.updated_at = utcnow()
        await session.flush()
    return config


async def test_config(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    http: aiohttp.ClientSession,
    config_id: uuid.UUID,
    base_url: str,
) -> ConfigTestOut:
    """Call the provider with the stored credentials and record the outcome as health.

    For Evolution this also (re)registers PyTake's webhook with its secret header.
    """
    config = await get_config(session, principal, config_id)
    result = await check_connectivity(config, settings, http)
    if result.ok and config.provider == "evolution":
        result = await _register_webhook(config, settings, http, base_url, result)
    apply_result(config, result)
    config.updated_at = utcnow()
    await session.flush()
    return ConfigTestOut(
        success=result.ok,
        message=result.message,
        error=None if result.ok else "Configuration test failed",
        config_id=config.id,
        provider=config.provider,
        details=result.details,
    )


async def _register_webhook(
    config: WhatsAppConfig,
    settings: Settings,
    http: aiohttp.ClientSession,
    base_url: str,
    result: CheckResult,
) -> CheckResult:
    try:
        await register_evolution_webhook(config, settings, http, base_url)
    except (ProviderError, UnsafeUrl) as exc:
        log.warning("webhook/set failed for config %s: %s", config.id, exc)
        return CheckResult(False, f"Could not register the webhook: {exc}", result.details)
    result.details["webhook"] = "registered"
    return result
