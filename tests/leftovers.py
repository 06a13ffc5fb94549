"""No connection outlives its test: what the suite left open in PostgreSQL and Redis.

Each app closes its engine, Redis clients and HTTP sessions when its lifespan ends. Checked
twice: a database is looked at just before it is dropped (`drop_database`: whatever is still
connected then belongs to an app, a pool or a worker that outlived the test or session that
owned the database), and at the end of the session Redis is asked for the run's clients (named
`<redis_namespace>:<role>`, the namespace being the run's). Anything found fails the run,
listing what was left.

Why before the drop: `DROP DATABASE … WITH (FORCE)` ends its connections silently, and a pool
that reconnects afterwards only logs `database "…" does not exist` from somewhere else.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

# A closed connection's backend leaves pg_stat_activity a moment after the client is gone.
SETTLE_SECONDS = 3.0


@dataclass
class Leftovers:
    found: list[str] = field(default_factory=list)
    # (URL, client name prefix) of the run's Redis, when the run uses one (conftest sets it).
    redis: tuple[str, str] | None = None


LEFTOVERS = Leftovers()


async def connections_to(conn: Any, database: str) -> list[Any]:
    """Other backends connected to `database` (asyncpg connection to another database)."""
    return list(
        await conn.fetch(
            "SELECT pid, state, application_name, client_port, backend_start, state_change,"
            " left(query, 200) AS query FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    )


async def drop_database(conn: Any, database: str, owner: str) -> None:
    """Drop `database` (asyncpg connection to the admin database), first recording every
    connection still open to it as a leftover of `owner` (a test or the session)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    rows = await connections_to(conn, database)
    while rows and loop.time() < deadline:
        await asyncio.sleep(0.1)
        rows = await connections_to(conn, database)
    for row in rows:
        LEFTOVERS.found.append(
            f"PostgreSQL: a connection to {database} outlived {owner}: pid {row['pid']}, "
            f"{row['state']}, opened {row['backend_start']:%H:%M:%S.%f}, last change "
            f"{row['state_change']:%H:%M:%S.%f}, last query {row['query']!r}"
        )
    await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def redis_clients(url: str, name_prefix: str) -> list[dict[str, Any]]:
    """Redis clients whose name starts with `name_prefix` (CLIENT LIST)."""
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=5)
    try:
        clients: list[dict[str, Any]] = await client.client_list()
    finally:
        await client.aclose()
    return [c for c in clients if str(c.get("name", "")).startswith(name_prefix)]


async def _settled_redis_clients(url: str, name_prefix: str) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    clients = await redis_clients(url, name_prefix)
    while clients and loop.time() < deadline:
        await asyncio.sleep(0.1)
        clients = await redis_clients(url, name_prefix)
    return clients


def check_redis(url: str, name_prefix: str) -> None:
    """Record the run's Redis clients still connected (after every fixture was torn down)."""
    for c in asyncio.run(_settled_redis_clients(url, name_prefix)):
        LEFTOVERS.found.append(
            f"Redis: client {c.get('name')} (id {c.get('id')}, {c.get('addr')}) still "
            f"connected, idle {c.get('idle')} s, last command {c.get('cmd')}"
        )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """Under pytest-xdist, the controller collects what each worker found (see below)."""
    LEFTOVERS.found.extend(getattr(node, "workeroutput", {}).get("leftovers", []))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Every fixture has been torn down: fail the run if it left connections behind."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if LEFTOVERS.redis is not None:
        try:
            check_redis(*LEFTOVERS.redis)
        except Exception as exc:  # Redis gone by now: nothing of ours can be connected to it
            if reporter is not None:
                reporter.write_line(f"could not list Redis clients at the end: {exc!r}")
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        # An xdist worker: its terminal is not shown and its exit status not used, so what it
        # found travels to the controller, which reports it and fails the run.
        workeroutput["leftovers"] = list(LEFTOVERS.found)
        return
    if not LEFTOVERS.found:
        return
    if reporter is not None:
        reporter.write_sep("!", "connections left behind by the test run", red=True)
        for line in LEFTOVERS.found:
            reporter.write_line(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
