"""Migrations upgrade an empty database on the engine under test and match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from pytake.db import create_engine
from pytake.migrate import upgrade_to_head
from pytake.models import Base


async def test_upgrade_empty_database_has_no_drift(fresh_database_url: str) -> None:
    engine = create_engine(fresh_database_url)
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
