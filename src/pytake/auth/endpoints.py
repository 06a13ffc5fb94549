"""Auth routes: /api/v1 register/login/me, /v1 login/refresh/logout, and /v1/api-keys."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from pytake.auth import api_keys, service
from pytake.auth.dependencies import (
    DbSession,
    OrgAdmin,
    SignedIn,
)
from pytake.auth.key_usage import KeyUsage
from pytake.auth.schemas import (
    ApiKeyCreatedOut,
    ApiKeyIn,
    ApiKeyListOut,
    ApiKeyOut,
    LegacyTokenOut,
    LegacyUserOut,
    LoginIn,
    RefreshIn,
    RegisterIn,
    ScopeListOut,
    ScopeOut,
    TokenPairOut,
    UserBrief,
)
from pytake.auth.scopes import SCOPES
from pytake.config import Settings
from pytake.errors import NotFound
from pytake.models import User

legacy_auth_router = APIRouter(tags=["auth (/api/v1)"])
legacy_router = APIRouter(tags=["auth (/api/v1)"])
v1_router = APIRouter(tags=["auth"])
api_keys_router = APIRouter(prefix="/api-keys", tags=["api keys"])


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _legacy_user(user: User) -> LegacyUserOut:
    return LegacyUserOut(
        id=user.id,
        email=user.email,
        name=user.full_name,
        roles=[user.role],
        organization_id=user.organization_id,
        created_at=user.created_at,
        last_login=user.last_login_at,
    )


@legacy_auth_router.post("/auth/register", status_code=201, response_model=LegacyTokenOut)
async def register(body: RegisterIn, request: Request, session: DbSession) -> LegacyTokenOut:
    """Create an organisation with the registrant as its org admin, and sign them in."""
    settings = _settings(request)
    user = await service.register(
        session, settings, body.email, body.password, body.name, body.organization_name
    )
    token = service.access_token_for(settings, user, settings.legacy_token_ttl_seconds)
    return LegacyTokenOut(token=token, user=_legacy_user(user))


@legacy_auth_router.post("/auth/login", response_model=LegacyTokenOut)
async def legacy_login(body: LoginIn, request: Request, session: DbSession) -> LegacyTokenOut:
    """Sign in with e-mail and password; returns one bearer token."""
    settings = _settings(request)
    user = await service.authenticate_password(
        session, request.app.state.rate_limiter, settings, body.email, body.password
    )
    token = service.access_token_for(settings, user, settings.legacy_token_ttl_seconds)
    return LegacyTokenOut(token=token, user=_legacy_user(user))


@legacy_router.get("/auth/me", response_model=LegacyUserOut)
async def me(principal: SignedIn, session: DbSession) -> LegacyUserOut:
    """The signed-in user."""
    user = await session.get(User, principal.user_id) if principal.user_id else None
    if user is None:
        raise NotFound("This credential is an API key, not a user")
    return _legacy_user(user)


def _token_pair_out(user: User, pair: service.TokenPair) -> TokenPairOut:
    return TokenPairOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        user=UserBrief(
            id=user.id,
            email=user.email,
            full_name=user.full_name,
            role=user.role,
            organization_id=user.organization_id,
        ),
    )


@v1_router.post("/auth/login", response_model=TokenPairOut)
async def login(body: LoginIn, request: Request, session: DbSession) -> TokenPairOut:
    """Sign in: a 15-minute access token and a rotating refresh token."""
    settings = _settings(request)
    user = await service.authenticate_password(
        session, request.app.state.rate_limiter, settings, body.email, body.password
    )
    pair = await service.issue_token_pair(session, settings, user)
    return _token_pair_out(user, pair)


@v1_router.post("/auth/refresh", response_model=TokenPairOut)
async def refresh(body: RefreshIn, request: Request, session: DbSession) -> TokenPairOut:
    """Exchange a refresh token for a new pair. Replaying a used token revokes its family."""
    user, pair = await service.rotate_refresh_token(session, _settings(request), body.refresh_token)
    return _token_pair_out(user, pair)


@v1_router.post("/auth/logout", status_code=204)
async def logout(body: RefreshIn, session: DbSession) -> Response:
    """Revoke the refresh token (and the rest of its family)."""
    await service.revoke_refresh_token(session, body.refresh_token)
    return Response(status_code=204)


@api_keys_router.post("", status_code=201, response_model=ApiKeyCreatedOut)
async def create_api_key(
    body: ApiKeyIn,
    principal: OrgAdmin,
    session: DbSession,
) -> ApiKeyCreatedOut:
    """Create a key; the full key is in this response only."""
    key, raw = await api_keys.create(session, principal, body.name, list(body.scopes))
    return ApiKeyCreatedOut(**api_keys.describe(key).model_dump(), key=raw)


@api_keys_router.get("", response_model=ApiKeyListOut)
async def list_api_keys(
    request: Request,
    principal: OrgAdmin,
    session: DbSession,
) -> ApiKeyListOut:
    """The organisation's active keys (never the keys themselves)."""
    keys = await api_keys.list_active(session, principal)
    usage: KeyUsage = request.app.state.key_usage
    described = [api_keys.describe(k) for k in keys]
    for out in described:  # a use this process has not written yet
        out.last_used_at = usage.last_used(out.id, out.last_used_at)
    return ApiKeyListOut(data=described)


@api_keys_router.get("/scopes", response_model=ScopeListOut)
async def list_scopes(principal: OrgAdmin) -> ScopeListOut:
    """Every scope a key may carry, with what it allows (the choices when creating a key)."""
    return ScopeListOut(
        data=[ScopeOut(name=name, description=text) for name, text in SCOPES.items()]
    )


@api_keys_router.delete("/{key_id}", status_code=204)
async def revoke_api_key(
    key_id: uuid.UUID,
    principal: OrgAdmin,
    session: DbSession,
) -> Response:
    """Revoke a key; it is refused from the next request on."""
    await api_keys.revoke(session, principal, key_id)
    return Response(status_code=204)


__all__ = ["ApiKeyOut", "api_keys_router", "legacy_auth_router", "legacy_router", "v1_router"]
