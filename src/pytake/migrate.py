"""Apply Alembic migrations from code (`pytake migrate`, and at start-up on the embedded default)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from pytake.kit.sql import is_postgresql

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# An arbitrary constant: several processes starting at once migrate one at a time.
_ADVISORY_LOCK_ID = 727_253_001


def alembic_config(database_url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url:
        cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def _upgrade_on(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    if is_postgresql(connection):
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
    command.upgrade(cfg, "head")


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (idempotent, safe to race on PostgreSQL)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade_on)
