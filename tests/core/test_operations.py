"""/health (with its database check), /metrics, and the OpenAPI document."""

from __future__ import annotations

import asyncio
import os

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import client_for, register_org
from tests.events.helpers import running_app


async def test_health(client: httpx.AsyncClient) -> None:
    resp = await client.get("/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "healthy"
    assert body["service"] == "pytake-api"
    assert body["timestamp"].endswith("Z")
    assert body["checks"]["database"] == "ok"


async def test_health_is_503_when_the_database_is_unreachable(start_app, make_settings) -> None:  # type: ignore[no-untyped-def]
    # Nothing listens on port 1; the app starts (no auto-migration) and reports the outage.
    settings = make_settings(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/none", auto_migrate=False
    )
    app = await start_app(settings)
    async with client_for(app) as client:
        resp = await client.get("/health")
    assert resp.status_code == 503
    assert resp.json()["status"] == "unhealthy"
    assert resp.json()["checks"]["database"] == "unreachable"


async def test_metrics_count_requests_by_route_and_status(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    await client.get("/v1/users")  # 401
    text = (await client.get("/metrics")).text
    assert 'pytake_http_requests_total{method="GET",route="/health",status="200"}' in text
    assert 'pytake_http_requests_total{method="GET",route="/v1/users",status="401"}' in text
    assert "pytake_http_request_duration_seconds_bucket" in text


async def test_openapi_documents_routes_auth_and_errors(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/me",
        "/v1/auth/login",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/users",
        "/v1/users/{user_id}",
        "/v1/api-keys",
        "/v1/api-keys/{key_id}",
        "/health",
    ):
        assert path in paths, path
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    users_get = paths["/v1/users"]["get"]
    assert {"HTTPBearer": []} in users_get["security"]
    assert {"401", "403", "422", "429"} <= set(users_get["responses"])
    assert (await client.get("/docs")).status_code == 200


def test_serve_offers_no_websocket_compression_unless_asked() -> None:
    from pytake.cli import server_options
    from pytake.config import Settings

    assert server_options(Settings(), None, None, 1)["ws_per_message_deflate"] is False
    assert server_options(Settings(ws_compression=True), None, 9000, 2)["ws_per_message_deflate"]
    assert server_options(Settings(), None, 9000, 2)["port"] == 9000


@pytest.mark.skipif(
    not os.environ.get("PYTAKE_TEST_DATABASE_URL"),
    reason="SQLite has no server to close connections",
)
async def test_connections_the_server_closed_are_replaced_before_use(
    make_settings, fresh_database_url: str
) -> None:  # type: ignore[no-untyped-def]
    """After PostgreSQL drops the pool's connections (a restart, an idle timeout), the next
    requests get fresh ones instead of failing."""
    # An app of this test only: it must close its pool before its database is dropped (a
    # session app would still hold the replacement connections then).
    async with (
        running_app(make_settings(database_url=fresh_database_url)) as app,
        client_for(app) as client,
    ):
        org = await register_org(client)
        # Fill the pool with several idle connections.
        pages = [client.get("/v1/contacts", headers=org.headers) for _ in range(5)]
        assert {r.status_code for r in await asyncio.gather(*pages)} == {200}
        admin = make_url(fresh_database_url).set(drivername="postgresql")
        conn = await asyncpg.connect(admin.render_as_string(False))
        try:
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        assert killed >= 1
        await asyncio.sleep(0.2)  # the terminations reach the pooled sockets
        for _ in range(5):
            resp = await client.get("/v1/contacts", headers=org.headers)
            assert resp.status_code == 200, resp.text
        assert (await client.get("/health")).json()["checks"]["database"] == "ok"
