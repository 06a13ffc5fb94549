"""The Authenticator: `Authorization: Bearer <JWT or API key>` → Principal, with scope checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.key_usage import KeyUsage
from pytake.auth.principal import Principal
from pytake.auth.scopes import ROLE_SCOPES, Role, Scope
from pytake.auth.tokens import InvalidToken, decode_access_token, digest, is_api_key
from pytake.config import Settings
from pytake.db import request_session
from pytake.errors import AuthenticationFailed, InvalidApiKey, PermissionDenied, is_v1_path
from pytake.models import ApiKey, Organization, User
from pytake.models.base import utcnow
from pytake.ratelimit import client_address, enforce

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A JWT from a login, or an API key (`pytake_live_…`).",
)

Session = Depends(request_session, scope="function")
# The request's session (it owns the transaction), as an annotation: `session: DbSession`.
DbSession = Annotated[AsyncSession, Session]


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# The app's settings, as an annotation: `settings: AppSettings`.
AppSettings = Annotated[Settings, Depends(app_settings)]


async def _principal_from_api_key(
    session: AsyncSession, token: str, usage: KeyUsage | None
) -> Principal:
    key = await session.scalar(select(ApiKey).where(ApiKey.key_hash == digest(token)))
    if key is None or key.revoked_at is not None:
        raise InvalidApiKey()
    org_active = await session.scalar(
        select(Organization.is_active).where(Organization.id == key.organization_id)
    )
    if not org_active:
        raise InvalidApiKey("The organisation of this API key is disabled")
    if usage is not None:  # written shortly, whatever this request's outcome
        usage.note(key.id, key.last_used_at, utcnow())
    scopes = frozenset(key.scopes)
    return Principal(key.organization_id, Role.ORG_ADMIN, scopes, api_key_id=key.id)


async def principal_from_jwt(session: AsyncSession, settings: Settings, token: str) -> Principal:
    """Resolve a JWT to its user; deactivated users and disabled organisations are refused."""
    try:
        claims = decode_access_token(settings.secret_key, token)
    except InvalidToken as exc:
        raise AuthenticationFailed(f"Invalid access token: {exc}") from exc
    row = (
        await session.execute(
            select(User.role, User.is_active, User.organization_id, Organization.is_active)
            .join(Organization, Organization.id == User.organization_id)
            .where(User.id == claims.user_id)
        )
    ).first()
    if row is None or not row[1] or not row[3]:
        raise AuthenticationFailed("This account is not active")
    role = Role(row[0])
    return Principal(row[2], role, ROLE_SCOPES[role], user_id=claims.user_id)


async def resolve_token(
    session: AsyncSession,
    settings: Settings,
    token: str,
    usage: KeyUsage | None = None,
) -> Principal:
    """A Principal for a bearer token (used by HTTP routes and the WebSocket alike)."""
    if is_api_key(token):
        return await _principal_from_api_key(session, token, usage)
    return await principal_from_jwt(session, settings, token)


async def current_principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
    session: AsyncSession = Session,
) -> Principal:
    """The authenticated caller; under /v1 this also counts the organisation's rate limit."""
    settings: Settings = request.app.state.settings
    v1 = is_v1_path(request.url.path)
    try:
        if credentials is None or not credentials.credentials:
            raise AuthenticationFailed("Missing credentials: send Authorization: Bearer <token>")
        principal = await resolve_token(
            session, settings, credentials.credentials, request.app.state.key_usage
        )
    except (AuthenticationFailed, InvalidApiKey):
        if v1:  # no organisation to count against: the caller's address (and its headers)
            await enforce(
                request, settings.rate_limit_v1_anonymous, "v1-anon", client_address(request)
            )
        raise
    if v1:
        await enforce(request, settings.rate_limit_v1_per_org, "v1", str(principal.organization_id))
    return principal


# Each scope check made by require_scope, and its scope: the OpenAPI description lists the
# operations every scope allows from the routes themselves (pytake.openapi).
SCOPE_CHECKS: dict[Callable[..., Awaitable[Principal]], str] = {}


def require_scope(scope: Scope | str) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller must hold `scope` (403 insufficient_permissions otherwise).

    Endpoints name it once per module as an annotation alias, e.g.
    `Reader = Annotated[Principal, Depends(require_scope(Scope.CONTACTS_READ))]`."""

    async def checker(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.can(scope):
            raise PermissionDenied(f"This credential lacks the '{scope}' scope")
        return principal

    checker.__name__ = f"require_{scope.replace(':', '_')}"
    SCOPE_CHECKS[checker] = str(scope)
    return checker


async def require_org_admin(principal: Principal = Depends(current_principal)) -> Principal:
    """Dependency: a signed-in organisation admin (API keys cannot manage people or keys)."""
    if not principal.is_org_admin:
        raise PermissionDenied("Only organisation admins signed in as a user can do this")
    return principal


# A signed-in caller (any credential) and an organisation admin, as annotations.
SignedIn = Annotated[Principal, Depends(current_principal)]
OrgAdmin = Annotated[Principal, Depends(require_org_admin)]
