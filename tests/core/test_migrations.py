"""Migrations upgrade an empty database on the engine under test and match the models."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from pytake.db import create_engine
from pytake.migrate import upgrade_to_head
from pytake.models import Base
from tests.conftest import TEST_DATABASE_URL


@pytest.fixture
async def empty_database_url(tmp_path) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    if not TEST_DATABASE_URL:
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
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
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def test_upgrade_empty_database_has_no_drift(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        await upgrade_to_head(engine)
        await upgrade_to_head(engine)  # idempotent: a second start changes nothing

        def diff(connection):  # type: ignore[no-untyped-def]
            ctx = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(ctx, Base.metadata), inspect(connection).get_table_names()

        async with engine.connect() as conn:
            drift, tables = await conn.run_sync(diff)
    finally:
        await engine.dispose()
    assert drift == []
    assert {"organizations", "users", "refresh_tokens", "api_keys", "alembic_version"} <= set(
        tables
    )


def test_one_head() -> None:
    from alembic.script import ScriptDirectory

    from pytake.migrate import alembic_config

    # Parallel work branches the history; a merge revision must join it before it lands.
    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1
