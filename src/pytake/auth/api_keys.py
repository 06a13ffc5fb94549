"""API keys: created by org admins, shown once, stored as a SHA-256 digest."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.principal import Principal
from pytake.auth.schemas import ApiKeyOut
from pytake.auth.tokens import API_KEY_PREFIX, digest, new_api_key
from pytake.errors import NotFound
from pytake.models import ApiKey
from pytake.models.base import utcnow
from pytake.tenancy import get_scoped, scoped

_SHOWN_PREFIX_CHARS = len(API_KEY_PREFIX) + 6


async def create(
    session: AsyncSession, principal: Principal, name: str, scopes: list[str]
) -> tuple[ApiKey, str]:
    """A new key for the principal's organisation; returns the row and the raw key."""
    raw = new_api_key()
    key = ApiKey(
        organization_id=principal.organization_id,
        name=name.strip(),
        prefix=raw[:_SHOWN_PREFIX_CHARS],
        key_hash=digest(raw),
        scopes=sorted(set(scopes)),
        created_by_id=principal.user_id,
        created_at=utcnow(),
    )
    session.add(key)
    await session.flush()
    return key, raw


async def list_active(session: AsyncSession, principal: Principal) -> Sequence[ApiKey]:
    stmt = scoped(select(ApiKey), ApiKey, principal).where(ApiKey.revoked_at.is_(None))
    return (await session.scalars(stmt.order_by(ApiKey.created_at.desc(), ApiKey.id))).all()


async def revoke(session: AsyncSession, principal: Principal, key_id: uuid.UUID) -> None:
    key = await get_scoped(session, ApiKey, key_id, principal, what="API key")
    if key.revoked_at is not None:
        raise NotFound("API key not found")
    key.revoked_at = utcnow()


def describe(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        scopes=list(key.scopes),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        created_by=key.created_by_id,
    )
