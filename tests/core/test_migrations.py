"""Migrations upgrade an empty database on the engine under test and match the models."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import orjson
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Uuid, column, insert, inspect, table, text
from sqlalchemy.engine import Connection

from pytake.db import create_engine
from pytake.kit.sql import is_postgresql
from pytake.migrate import alembic_config, upgrade_to_head
from pytake.models import Base
from pytake.models.base import UTCDateTime, utcnow


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


async def test_no_index_on_messages_mentions_a_delivery_status(fresh_database_url: str) -> None:
    """A status webhook changes `status` and a per-status timestamp; if any index (or partial
    index predicate) mentioned them, PostgreSQL could never update the row in place (HOT)."""
    engine = create_engine(fresh_database_url)
    try:
        await upgrade_to_head(engine)
        async with engine.connect() as conn:
            if is_postgresql(engine):
                rows = await conn.execute(
                    text("SELECT indexdef FROM pg_indexes WHERE tablename = 'messages'")
                )
                options = await conn.scalar(
                    text("SELECT reloptions FROM pg_class WHERE relname = 'messages'")
                )
                assert "fillfactor=50" in (options or [])
            else:
                rows = await conn.execute(
                    text(
                        "SELECT sql FROM sqlite_master WHERE type = 'index' "
                        "AND tbl_name = 'messages' AND sql IS NOT NULL"
                    )
                )
            definitions = [row[0] for row in rows]
    finally:
        await engine.dispose()
    assert len(definitions) >= 4  # the queue's two partial indexes, per conversation, per org
    stamps = ("status", "sent_at", "delivered_at", "read_at", "failed_at", "updated_at")
    assert [d for d in definitions if any(s in d for s in stamps)] == []


async def test_events_unpublished_before_the_upgrade_still_reach_the_relay(
    fresh_database_url: str,
) -> None:
    """0010 replaced `events.published_at` by `events_unpublished`: events a process never
    published before the upgrade are handed to the relay, published ones are not."""

    def upgrade_to(revision: str) -> Callable[[Connection], None]:
        def run(connection: Connection) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)

        return run

    engine = create_engine(fresh_database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_to("0009"))
            org, now = uuid.uuid4(), utcnow()
            organizations = table(
                "organizations",
                *(column(n) for n in ("name", "is_active", "settings")),
                column("id", Uuid()),
                column("created_at", UTCDateTime()),
                column("updated_at", UTCDateTime()),
            )
            await conn.execute(
                insert(organizations).values(
                    id=org, name="Acme", is_active=True, settings="{}", created_at=now,
                    updated_at=now,
                )
            )  # fmt: skip
            events = table(
                "events",
                *(column(n) for n in ("id", "type", "payload")),
                column("organization_id", Uuid()),
                column("created_at", UTCDateTime()),
                column("published_at", UTCDateTime()),
            )
            for n, published in enumerate([now, None, None]):
                await conn.execute(
                    insert(events).values(
                        id=n + 1, organization_id=org, type="contact.created", payload="{}",
                        created_at=now, published_at=published,
                    )
                )  # fmt: skip
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_to("head"))
            lists = (await conn.execute(text("SELECT event_ids FROM events_unpublished"))).all()
    finally:
        await engine.dispose()
    waiting = [i for (ids,) in lists for i in (orjson.loads(ids) if isinstance(ids, str) else ids)]
    assert sorted(waiting) == [2, 3]
