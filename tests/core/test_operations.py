"""/health (with its database check), /metrics, and the OpenAPI document."""

from __future__ import annotations

import httpx

from tests.conftest import client_for


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
