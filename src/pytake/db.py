"""Engines, the session factory, and the unit of work that a request or a job owns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from starlette.requests import HTTPConnection

from pytake.errors import PyTakeError


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine tuned for the backend: SQLite in WAL mode, PostgreSQL with a pool."""
    url = make_url(database_url)
    # orjson for JSON columns: several times faster than the standard library on the hot paths
    # (message content, event payloads), and it also writes UUIDs and datetimes.
    kwargs.setdefault("json_serializer", _json_dumps)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.get_backend_name() == "sqlite":
        # SQLAlchemy's default pool (5 + 10 overflow): SQLite has one writer, and more
        # connections only mean more transactions failing on its lock. Each request holds one
        # connection (API-key use is written in batches: pytake.auth.key_usage).
        engine = create_async_engine(
            url, connect_args={"timeout": 30}, pool_pre_ping=False, **kwargs
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    engine = create_async_engine(url, pool_pre_ping=False, **kwargs)
    event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Pessimistic disconnect handling without a round trip: a pooled connection the server
    has closed (a restart, an idle timeout) is replaced before anyone uses it.

    asyncpg notices the server's close as it happens (the socket is always being read), so
    checking its flag finds what `pool_pre_ping` finds in the common cases. pre-ping instead
    runs BEGIN, `;` and ROLLBACK on every checkout: three round trips, and at ten webhooks per
    ingest batch about a fifth of PostgreSQL's statements (bench/ingest.py). A connection
    lost silently (no FIN or RST reaches us) fails its one transaction instead, and the pool
    then replaces every connection as old as it.
    """
    is_closed = getattr(dbapi_conn.driver_connection, "is_closed", None)  # asyncpg's
    if is_closed is not None and is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers proceed while one writer commits; foreign keys are off by default in SQLite.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends normally, rolled back on any error."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except PyTakeError as exc:
            await (session.commit() if exc.keep_changes else session.rollback())
            raise
        except BaseException:
            await session.rollback()
            raise


async def request_session(conn: HTTPConnection) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: the request's unit of work (use with scope="function")."""
    factory: async_sessionmaker[AsyncSession] = conn.app.state.session_factory
    async with unit_of_work(factory) as session:
        yield session
