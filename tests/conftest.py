"""Shared test setup: a real database (SQLite file, or a fresh PostgreSQL database) and the app.

PYTAKE_TEST_DATABASE_URL (postgresql+asyncpg://…/name) and PYTAKE_TEST_REDIS_URL switch the
whole suite to PostgreSQL and Redis. Tests isolate themselves by creating their own
organisations through the public API, so the database is shared by the session.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from pytake.app import create_app
from pytake.config import Settings

# A test past its deadline prints every thread's and task's stack and is cancelled; the run
# fails if it leaves connections to PostgreSQL or Redis behind (see there).
pytest_plugins = ["tests.timeouts", "tests.leftovers", "tests.completeness"]

TEST_DATABASE_URL = os.environ.get("PYTAKE_TEST_DATABASE_URL")
# Every fixture lives in the repository (tests/fixtures): a plain clone runs the whole suite.
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
META_FIXTURES = FIXTURES_DIR / "meta-webhooks"
# Listed, not globbed, so a lost file fails loudly instead of shrinking a parametrised test.
META_FIXTURE_FILES = (
    "callback_button.json",
    "callback_selection.json",
    "message.json",
    "message_status.json",
    "outgoing_message.json",
    "system.json",
    "template_status.json",
)


def fixture_path(*parts: str) -> Path:
    """A file under tests/fixtures; a missing one is an error naming it, never an empty set."""
    path = FIXTURES_DIR.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"test fixture missing: {path}")
    return path


def meta_fixture_files() -> list[Path]:
    """Every Meta webhook fixture file, each checked to exist."""
    return [fixture_path("meta-webhooks", name) for name in META_FIXTURE_FILES]


TEST_REDIS_URL = os.environ.get("PYTAKE_TEST_REDIS_URL")
CHEAP_PASSWORD_HASHING = {
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 8,
    "password_hash_parallelism": 1,
}
RUN_ID = uuid.uuid4().hex[:10]
# The run's names in Redis (events channel, client names): pub/sub channels are global across
# database numbers, so without it every run on the machine would wake every other run's loops.
REDIS_NAMESPACE = f"pytake-test-{RUN_ID}"


def pytest_configure(config: pytest.Config) -> None:
    from tests.leftovers import LEFTOVERS  # imported once pytest registered it as a plugin

    if TEST_REDIS_URL:
        LEFTOVERS.redis = (TEST_REDIS_URL, REDIS_NAMESPACE + ":")


PASSWORD = "correct-horse-battery"


async def _create_postgres_database(url: str) -> tuple[str, str]:
    import asyncpg

    parsed = make_url(url)
    name = f"{parsed.database or 'pytake_test'}_{RUN_ID}"
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(False)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return parsed.set(database=name).render_as_string(False), admin


async def _drop_postgres_database(admin: str, url: str) -> None:
    import asyncpg

    from tests.leftovers import drop_database

    conn = await asyncpg.connect(admin)
    try:
        await drop_database(conn, str(make_url(url).database), "the session")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    if TEST_DATABASE_URL:
        url, admin = await _create_postgres_database(TEST_DATABASE_URL)
        yield url
        await _drop_postgres_database(admin, url)
    else:
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'pytake.db'}"


@pytest.fixture
async def fresh_database_url(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """An empty database of its own (for tests whose background loops must not meet the
    shared database's rows, and for migration tests)."""
    if not TEST_DATABASE_URL:
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    import asyncpg

    url = make_url(TEST_DATABASE_URL)
    name = f"pytake_empty_{uuid.uuid4().hex[:10]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(False)
    finally:
        from tests.leftovers import drop_database

        await drop_database(conn, name, request.node.nodeid)
        await conn.close()


@pytest.fixture(scope="session")
def make_settings(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Settings]:
    """Settings for a test app; keyword arguments override (e.g. lower rate limits)."""
    # One data directory for the session's apps, as processes of one deployment share storage.
    data_dir = str(tmp_path_factory.mktemp("data"))

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "env": "test",
            "database_url": database_url,
            "data_dir": data_dir,
            "redis_url": TEST_REDIS_URL,
            "secret_key": "test-secret-key-that-is-long-enough-for-hs256",
            "rate_limit_key_prefix": f"pytake-test-{RUN_ID}-{uuid.uuid4().hex[:6]}",
            "redis_namespace": REDIS_NAMESPACE,
            # An app stopping with requests in flight (a test's slow receiver) waits for them
            # at most this long, not the production 15 s.
            "worker_shutdown_grace_seconds": 5.0,
            # Argon2 at its minimum: at the production cost (~0.25 s of CPU a hash) the
            # suite's sign-ups and sign-ins were a third of its CPU. Nothing here depends on
            # the cost, and tests/auth/test_password_cost.py checks the setting itself.
            **CHEAP_PASSWORD_HASHING,
            # The shared app keeps limits on (so headers are exercised) but high enough that
            # the suite's many sign-ups from one address never trip them.
            "rate_limit_legacy_auth": "100000/minute",
            "rate_limit_v1_anonymous": "100000/minute",
            "rate_limit_legacy_general": "100000/hour",
            "rate_limit_legacy_config": "100000/minute",
            "rate_limit_legacy_send": "100000/minute",
            "allow_private_urls": True,
            # Apps share one database, so a long-lived app's loops would work other tests' rows
            # (send their queued messages with its own settings). Tests that need the loops
            # start an app of their own for just that test (tests/events/helpers.running_app).
            "run_background_loops": False,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture(scope="session")
async def start_app(database_url: str) -> AsyncIterator[Callable[[Settings], Awaitable[FastAPI]]]:
    """Build and start (lifespan entered) an app; all are stopped at the end of the session.

    It asks for `database_url` so that the apps stop before the database is dropped: pytest
    tears session fixtures down in the reverse order of their set-up, so without the
    dependency a run whose first test asked for `app` dropped the database first, and the
    apps' last writes (API-key use, event marks) failed on a database that no longer existed.
    """
    stack: list[Any] = []

    async def start(settings: Settings) -> FastAPI:
        app = create_app(settings)
        ctx = app.router.lifespan_context(app)
        await ctx.__aenter__()
        stack.append(ctx)
        return app

    yield start
    for ctx in reversed(stack):
        await ctx.__aexit__(None, None, None)


@pytest.fixture(scope="session")
async def app(
    start_app: Callable[[Settings], Awaitable[FastAPI]], make_settings: Callable[..., Settings]
) -> FastAPI:
    return await start_app(make_settings())


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pytake.test")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@dataclass
class Org:
    """An organisation created through the API, with its admin's credentials."""

    id: str
    admin_id: str
    admin_email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def register_org(client: httpx.AsyncClient, name: str = "Acme") -> Org:
    email = f"admin-{uuid.uuid4().hex[:12]}@example.com"
    resp = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": name}
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return Org(body["user"]["organization_id"], body["user"]["id"], email, body["token"])


async def create_api_key(client: httpx.AsyncClient, org: Org, scopes: list[str]) -> str:
    resp = await client.post(
        "/v1/api-keys", json={"name": "test", "scopes": scopes}, headers=org.headers
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


async def add_user(client: httpx.AsyncClient, org: Org, role: str) -> tuple[str, str]:
    """Create a team member and sign them in; returns (user id, access token)."""
    email = f"{role}-{uuid.uuid4().hex[:12]}@example.com"
    resp = await client.post(
        "/v1/users",
        json={"email": email, "password": PASSWORD, "full_name": role.title(), "role": role},
        headers=org.headers,
    )
    assert resp.status_code == 201, resp.text
    login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return resp.json()["id"], login.json()["access_token"]


@pytest.fixture
async def org(client: httpx.AsyncClient) -> Org:
    return await register_org(client)


@pytest.fixture
async def other_org(client: httpx.AsyncClient) -> Org:
    return await register_org(client, "Other Inc")


class LiveServer:
    """The app served by uvicorn on a loopback port, for peers that call back over HTTP."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task:
            await self.task


@pytest.fixture(scope="session")
async def live_url(app: FastAPI) -> AsyncIterator[str]:
    """Base URL of the shared app on a real loopback port (lifespan already entered)."""
    server = LiveServer(app)
    url = await server.start()
    yield url
    await server.stop()


# One simulator and one sending app for the whole session, registered here rather than in each
# directory's conftest: a fixture registered in two conftests is two session instances, and a
# second sending app's dispatcher would keep claiming the shared database's queued messages and
# sending them to the other simulator (which answers 190 for tokens it never issued).
from tests.channel.support import sim  # noqa: E402, F401
from tests.message.sending.support import http, send_app, send_url, shop  # noqa: E402, F401
