"""Sign-up, password login with lockout, and refresh-token rotation with reuse detection."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.passwords import passwords_for
from pytake.auth.scopes import Role
from pytake.auth.tokens import digest, issue_access_token, new_refresh_token
from pytake.config import Settings
from pytake.errors import (
    AuthenticationFailed,
    Conflict,
    FieldError,
    PermissionDenied,
    RateLimited,
)
from pytake.models import Organization, RefreshToken, User
from pytake.models.base import utcnow
from pytake.organization.service import create_organization
from pytake.ratelimit import RateLimiter

_LOGIN_FAILURES = "login-failures"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def email_taken(session: AsyncSession, email: str) -> bool:
    return await session.scalar(select(User.id).where(User.email == email)) is not None


async def create_user(
    session: AsyncSession,
    settings: Settings,
    org_id: uuid.UUID,
    email: str,
    password: str,
    full_name: str,
    role: Role,
) -> User:
    """Add a user to an organisation; an e-mail already in use anywhere is a 409."""
    email = normalise_email(email)
    if await email_taken(session, email):
        raise Conflict(
            "A user with this email already exists",
            details=[FieldError("email", "already registered")],
        )
    user = User(
        organization_id=org_id,
        email=email,
        password_hash=await passwords_for(settings).hash(password),
        full_name=full_name.strip(),
        role=role.value,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent sign-up with the same e-mail
        raise Conflict("A user with this email already exists") from exc
    return user


async def register(
    session: AsyncSession,
    settings: Settings,
    email: str,
    password: str,
    name: str,
    org_name: str | None,
) -> User:
    """Sign-up: a new organisation with the registrant as its org admin."""
    if not settings.allow_signup:
        raise PermissionDenied("Sign-up is disabled on this server")
    if await email_taken(session, normalise_email(email)):
        raise Conflict(
            "A user with this email already exists",
            details=[FieldError("email", "already registered")],
        )
    org = await create_organization(session, org_name or f"{name}'s organisation")
    user = await create_user(session, settings, org.id, email, password, name, Role.ORG_ADMIN)
    user.last_login_at = utcnow()
    return user


async def authenticate_password(
    session: AsyncSession, limiter: RateLimiter, settings: Settings, email: str, password: str
) -> User:
    """Check e-mail and password; repeated failures lock the account for a while."""
    email = normalise_email(email)
    policy = f"{settings.login_max_failures}/{settings.login_lockout_seconds} second"
    locked_for = await limiter.is_exhausted(policy, _LOGIN_FAILURES, email)
    if locked_for is not None:
        err = RateLimited(locked_for)
        err.message = f"Too many failed logins for this account. Try again in {locked_for} seconds."
        raise err
    user = await session.scalar(select(User).where(User.email == email))
    ok, rehashed = await passwords_for(settings).verify(
        password, user.password_hash if user else None
    )
    if not ok or user is None:
        await limiter.record(policy, _LOGIN_FAILURES, email)
        raise AuthenticationFailed("Invalid email or password")
    if not user.is_active:
        raise AuthenticationFailed("This account has been deactivated")
    org_active = await session.scalar(
        select(Organization.is_active).where(Organization.id == user.organization_id)
    )
    if not org_active:
        raise AuthenticationFailed("This organisation is disabled")
    await limiter.clear(policy, _LOGIN_FAILURES, email)
    if rehashed is not None:  # stored at another cost: the settings' cost from now on
        user.password_hash = rehashed
    user.last_login_at = utcnow()
    return user


def access_token_for(settings: Settings, user: User, ttl_seconds: int) -> str:
    return issue_access_token(
        settings.secret_key, user.id, user.organization_id, user.role, ttl_seconds
    )


async def issue_token_pair(
    session: AsyncSession, settings: Settings, user: User, family_id: uuid.UUID | None = None
) -> TokenPair:
    """A short-lived access token plus a refresh token in a (new or continued) family."""
    raw = new_refresh_token()
    now = utcnow()
    session.add(
        RefreshToken(
            organization_id=user.organization_id,
            user_id=user.id,
            family_id=family_id or uuid.uuid4(),
            token_hash=digest(raw),
            created_at=now,
            expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    await session.flush()
    ttl = settings.access_token_ttl_seconds
    return TokenPair(access_token_for(settings, user, ttl), raw, ttl)


async def rotate_refresh_token(
    session: AsyncSession, settings: Settings, raw: str
) -> tuple[User, TokenPair]:
    """Exchange a refresh token for a new pair; replaying a used one revokes its family."""
    token = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest(raw)))
    if token is None:
        raise AuthenticationFailed("Invalid refresh token")
    now = utcnow()
    if token.revoked_at is not None or token.used_at is not None:
        await _revoke_family(session, token)
        raise AuthenticationFailed(
            "This refresh token was already used; every session of this login is now signed out",
            keep_changes=True,
        )
    if token.expires_at <= now:
        raise AuthenticationFailed("Refresh token has expired")
    # Conditional update: of two concurrent refreshes with one token, only one wins.
    claimed = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        await _revoke_family(session, token)
        raise AuthenticationFailed("This refresh token was already used", keep_changes=True)
    user = await session.get(User, token.user_id)
    if user is None or not user.is_active:
        raise AuthenticationFailed("This account is not active")
    return user, await issue_token_pair(session, settings, user, token.family_id)


async def _revoke_family(session: AsyncSession, token: RefreshToken) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == token.family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def revoke_refresh_token(session: AsyncSession, raw: str) -> None:
    """Logout: the refresh token (and the rest of its family) stops working."""
    token = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest(raw)))
    if token is None:
        raise AuthenticationFailed("Invalid refresh token")
    await _revoke_family(session, token)


async def revoke_all_for_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
