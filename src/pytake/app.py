"""create_app(): lifespan (engine, rate limiter, HTTP client), middleware, error handlers, routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from pytake import __version__
from pytake.api_docs import install_docs
from pytake.auth.key_usage import KeyUsage
from pytake.config import Settings, get_settings
from pytake.dashboard.serving import mount_console
from pytake.db import create_engine, create_session_factory
from pytake.errors import (
    FieldError,
    PyTakeError,
    RateLimited,
    ServiceUnavailable,
    error_for_status,
    render,
)
from pytake.kit.gc_tuning import tune_for_serving
from pytake.kit.responses import FastJSONResponse
from pytake.message.sending.dispatcher import SendingTuning
from pytake.message.webhooks import MetaWebhookFastPath
from pytake.migrate import upgrade_to_head
from pytake.observability import ObservabilityMiddleware, request_id_var
from pytake.openapi import install_openapi
from pytake.ratelimit import STATE_KEY, RateLimiter
from pytake.request_guard import RequestGuard
from pytake.routing import (
    CONTACT_IMPORT_PATH,
    MEDIA_UPLOAD_PATH,
    META_WEBHOOK_PATH,
    PROVIDER_WEBHOOKS_PREFIX,
    count_before_route,
    include_routers,
)
from pytake.worker.runtime import provider_session, redis_check, start_for_app, stop_for_app

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    settings.warn_if_insecure()
    engine = create_engine(settings.database_url)
    app.state.engine = engine
    app.state.session_factory = create_session_factory(engine)
    app.state.key_usage = KeyUsage(app.state.session_factory)
    if settings.auto_migrate:
        await upgrade_to_head(engine)
    # Requests send inline (and the channel health loop checks numbers) through this pool.
    app.state.http = provider_session(SendingTuning.from_settings(settings).concurrency)
    await start_for_app(app)
    tune_for_serving(settings.gc_tuning)  # after start-up: see kit/gc_tuning.py
    try:
        yield
    finally:
        await stop_for_app(app)
        await app.state.http.close()
        await app.state.key_usage.close()
        await app.state.rate_limiter.close()
        await engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="PyTake API",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc are served without a CDN: pytake.api_docs
        redoc_url=None,
        # PyTake has its own metrics and request ids (observability.py) and no OpenTelemetry
        # SDK. Left on, FastAPI asks OpenTelemetry on every request whether a provider is
        # configured, which reads os.environ: 3 % of a webhook's CPU (bench/ingest.py).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    # Built here rather than in the lifespan so the limiter exists as soon as the app does.
    app.state.rate_limiter = RateLimiter(
        settings.redis_url,
        settings.rate_limit_key_prefix,
        settings.rate_limit_enabled,
        client_name=settings.redis_client_name("rate-limits"),
    )
    # Innermost: bodies are bounded and NUL-free before a route reads them.
    app.add_middleware(
        RequestGuard,
        default_limit=settings.max_request_body_bytes,
        limits={
            CONTACT_IMPORT_PATH: settings.max_import_body_bytes,
            MEDIA_UPLOAD_PATH: settings.max_media_upload_bytes,
        },
        exempt_prefixes=(PROVIDER_WEBHOOKS_PREFIX,),
        count=count_before_route,
    )
    # Added before the observability middleware so that it runs inside it.
    app.add_middleware(MetaWebhookFastPath, path=META_WEBHOOK_PATH)
    app.add_middleware(ObservabilityMiddleware)
    _install_error_handlers(app)
    _install_operations_routes(app)
    include_routers(app)
    install_openapi(app)
    install_docs(app)
    mount_console(app)
    return app


def _error_response(request: Request, err: PyTakeError) -> FastJSONResponse:
    body = render(err, request.url.path, request_id_var.get())
    return FastJSONResponse(body, status_code=err.status, headers=err.headers or None)


_LOCATIONS = ("body", "query", "path", "header", "cookie")


def _field_name(loc: tuple[Any, ...]) -> str:
    """`("body", "text", "body")` → `text.body`: only the leading location marker is dropped."""
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _count_if_uncounted(request: Request) -> RateLimited | None:
    """Count a request its route's rate limit never saw: no route matched (404, 405), or
    FastAPI refused the body (not JSON, a broken form) before running any dependency. The
    429 to answer instead when that exhausted the limit."""
    if STATE_KEY in request.scope.get("state", {}):
        return None
    try:
        await count_before_route(request)
    except RateLimited as limited:
        return limited
    return None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PyTakeError)
    async def pytake_error(request: Request, exc: PyTakeError) -> FastJSONResponse:
        return _error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> FastJSONResponse:
        if limited := await _count_if_uncounted(request):
            return _error_response(request, limited)
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            err: PyTakeError = error_for_status(400, "Request body is not valid JSON")
            err.details = [FieldError("body", "invalid JSON")]
        else:
            err = error_for_status(422, "Invalid request parameters")
            # One detail per field: a parameter read by two dependencies is reported twice.
            by_field: dict[str, str] = {}
            for e in errors:
                by_field.setdefault(_field_name(tuple(e["loc"])), e["msg"])
            err.details = [FieldError(f, m) for f, m in by_field.items()]
        return _error_response(request, err)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else None
        if limited := await _count_if_uncounted(request):
            return _error_response(request, limited)
        if exc.status_code == 404 and message == "Not Found":
            message = f"No route for {request.method} {request.url.path}"
        err = error_for_status(exc.status_code, message)
        err.headers = dict(exc.headers or {})
        return _error_response(request, err)


def _install_operations_routes(app: FastAPI) -> None:
    @app.get("/health", tags=["operations"], responses={503: {"description": "Database down"}})
    async def health(request: Request) -> FastJSONResponse:
        """Service health: a database round trip (503 when it fails) and, with Redis, a PING
        (`redis: down` makes the status `degraded`, still 200: PyTake works without it)."""
        body: dict[str, Any] = {
            "status": "healthy",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "service": "pytake-api",
            "version": __version__,
            "checks": {"database": "ok"},
        }
        try:
            async with request.app.state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # any failure to reach the database means unhealthy
            log.warning("health check: database unreachable: %s", exc)
            body["status"] = "unhealthy"
            body["checks"]["database"] = "unreachable"
            return FastJSONResponse(body, status_code=ServiceUnavailable.status)
        runtime = getattr(request.app.state, "runtime", None)
        if runtime is not None and runtime.redis is not None:
            body["checks"]["redis"] = await redis_check(runtime.redis)
            if body["checks"]["redis"] != "ok":
                body["status"] = "degraded"
        return FastJSONResponse(body)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> Response:
        """Prometheus metrics (text exposition format)."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


_DESCRIPTION = """
PyTake is a self-hostable WhatsApp Business automation platform.

Two API surfaces share one core:

* **`/v1`** — the current API. Authenticate with `Authorization: Bearer <token>` where the
  token is an API key (`pytake_live_…`, created under *Settings → API Keys*) or a JWT from
  `POST /v1/auth/login`. Errors: `{"error": {"code", "message", "details": [{"field", "message"}]}}`.
  Rate limit: 1,000 requests per minute per organisation with bursts of 100 per second.
* **`/api/v1`** — the earlier API (register/login/me, WhatsApp configs, send, instances,
  agent conversations, dashboard, flows). Errors: `{"error", "message", "code", "details"}`.
  Rate limits: auth 5/min per client address, sending 100/min, configuration 30/min,
  everything else 1,000/hour.

Every limited response carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
`X-RateLimit-Reset` (Unix seconds); a 429 also carries `Retry-After`.

Scopes: API keys carry scopes; a user's role maps to scopes (viewer: every `:read` scope;
agent: reads plus `contacts:write`, `messages:send`, `conversations:write`; org admin: all).
"""
