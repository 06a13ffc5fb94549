"""Mounts every domain's routes on the two surfaces, each group behind its rate-limit policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials
from starlette.routing import BaseRoute

from pytake.auth import endpoints as auth
from pytake.auth.dependencies import bearer_scheme
from pytake.auth.tokens import InvalidToken, decode_access_token, digest, is_api_key
from pytake.campaign import endpoints as campaigns
from pytake.channel import endpoints as channels
from pytake.chatbot import endpoints as chatbots
from pytake.config import Settings
from pytake.contact import endpoints as contacts
from pytake.conversation import endpoints as conversations
from pytake.errors import is_v1_path
from pytake.media import endpoints as media
from pytake.message import webhooks as inbound_webhooks
from pytake.message.sending import endpoints as sending
from pytake.openapi import legacy_error_responses, v1_error_responses
from pytake.ratelimit import client_address, enforce
from pytake.realtime import endpoints as realtime
from pytake.team import endpoints as teams
from pytake.template import endpoints as templates
from pytake.user import endpoints as users
from pytake.webhook import endpoints as webhooks

LimitDependency = Callable[..., Awaitable[None]]

LEGACY_PREFIX = "/api/v1"
# Served by pytake.message.webhooks.MetaWebhookFastPath ahead of the router (see there).
META_WEBHOOK_PATH = LEGACY_PREFIX + inbound_webhooks.router.prefix + "/webhook"
# Provider webhooks read their bodies with their own limit (settings.max_webhook_body_bytes).
PROVIDER_WEBHOOKS_PREFIX = META_WEBHOOK_PATH
CONTACT_IMPORT_PATH = "/v1" + contacts.router.prefix + "/import"
MEDIA_UPLOAD_PATH = "/v1" + media.router.prefix


def _caller_key(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """A rate-limit bucket for the caller without touching the database."""
    if credentials is None:
        return None
    token = credentials.credentials
    if is_api_key(token):
        return "key:" + digest(token)[:24]
    try:
        return "org:" + str(decode_access_token(settings.secret_key, token).organization_id)
    except InvalidToken:
        return None


def legacy_limit(category: str) -> LimitDependency:
    """/api/v1 policy by category: auth (per client address), send, config, general."""
    if category == "auth":
        # No credentials here: register and login are public, and the schema says so.
        async def by_address(request: Request) -> None:
            policy: str = request.app.state.settings.rate_limit_legacy_auth
            await enforce(request, policy, "legacy-auth", "ip:" + client_address(request))

        return by_address

    async def limit(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)
    ) -> None:
        settings: Settings = request.app.state.settings
        policy: str = getattr(settings, f"rate_limit_legacy_{category}")
        key = _caller_key(settings, credentials)
        await enforce(request, policy, f"legacy-{category}", key or "ip:" + client_address(request))

    return limit


async def v1_anonymous_limit(request: Request) -> None:
    """/v1 routes used before there is an organisation to count against (login, refresh)."""
    settings: Settings = request.app.state.settings
    await enforce(request, settings.rate_limit_v1_anonymous, "v1-anon", client_address(request))


async def count_before_route(request: Request) -> None:
    """Count a request answered before its route's own limit could run against its surface's
    policy: no route (404, 405), a body refused unread (413, NUL characters) or one that is not
    JSON (FastAPI parses the body before any dependency). So it carries the rate-limit headers
    like every other response there, and a flood of such requests is throttled too. Without the
    database, an API key's /v1 requests count by address here (its organisation is unknown)."""
    path = request.url.path
    if path.startswith(PROVIDER_WEBHOOKS_PREFIX):
        return  # Meta's and Evolution's traffic is never throttled
    settings: Settings = request.app.state.settings
    credentials = await bearer_scheme(request)
    key = _caller_key(settings, credentials)
    if is_v1_path(path):
        if key is not None and key.startswith("org:"):
            await enforce(request, settings.rate_limit_v1_per_org, "v1", key.removeprefix("org:"))
        else:
            await enforce(
                request, settings.rate_limit_v1_anonymous, "v1-anon", client_address(request)
            )
    elif path == LEGACY_PREFIX or path.startswith(LEGACY_PREFIX + "/"):
        bucket = key or "ip:" + client_address(request)
        await enforce(request, settings.rate_limit_legacy_general, "legacy-general", bucket)


# The API's routes, built once per process and shared by every app created in it. Building
# them is pydantic schema work for every parameter and model (about 0.3 s of CPU); `serve`
# makes one app, but the test suite makes hundreds. Routes keep no reference to their app.
_api_routes: list[BaseRoute] | None = None


def include_routers(app: FastAPI) -> None:
    global _api_routes
    if _api_routes is None:
        built = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        _build_routers(built)
        _api_routes = list(built.router.routes)
    app.router.routes.extend(_api_routes)
    # FastAPI 0.16x includes routers lazily and caches what it resolved per routes version.
    mark_changed = getattr(app.router, "_mark_routes_changed", None)
    if mark_changed is not None:
        mark_changed()


def _build_routers(app: FastAPI) -> None:
    v1 = APIRouter(prefix="/v1", responses=v1_error_responses())
    v1.include_router(auth.v1_router, dependencies=[Depends(v1_anonymous_limit)])
    v1.include_router(media.signed_router, dependencies=[Depends(v1_anonymous_limit)])
    # Authenticated /v1 routes are counted per organisation inside current_principal.
    for router in (
        users.router,
        teams.router,
        auth.api_keys_router,
        contacts.router,
        contacts.tags_router,
        sending.router,
        conversations.router,
        webhooks.router,
        templates.router,
        campaigns.router,
        chatbots.router,
        chatbots.conversation_router,
        media.router,
    ):
        v1.include_router(router)

    legacy = APIRouter(prefix=LEGACY_PREFIX, responses=legacy_error_responses())
    legacy.include_router(auth.legacy_auth_router, dependencies=[Depends(legacy_limit("auth"))])
    legacy.include_router(auth.legacy_router, dependencies=[Depends(legacy_limit("general"))])
    legacy.include_router(realtime.stats_router, dependencies=[Depends(legacy_limit("general"))])
    legacy.include_router(sending.legacy_router, dependencies=[Depends(legacy_limit("send"))])
    legacy.include_router(
        conversations.legacy_router, dependencies=[Depends(legacy_limit("general"))]
    )
    legacy.include_router(chatbots.legacy_router, dependencies=[Depends(legacy_limit("general"))])
    for router in (channels.legacy_router, channels.instance_router):
        legacy.include_router(router, dependencies=[Depends(legacy_limit("config"))])
    # Provider webhooks are never rate limited: Meta's traffic must not be throttled.
    legacy.include_router(inbound_webhooks.router)
    v1.include_router(channels.v1_router)

    app.include_router(v1)
    app.include_router(legacy)
    app.include_router(realtime.ws_router)
