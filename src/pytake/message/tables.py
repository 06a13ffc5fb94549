"""Core tables and SQL helpers for the ingest hot path (multi-row statements, no ORM units)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import ColumnElement, Table, case, or_
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.models import (
    ChannelEvent,
    Contact,
    Conversation,
    Message,
    PendingStatus,
    WhatsAppConfig,
)

contacts = cast(Table, Contact.__table__)
conversations = cast(Table, Conversation.__table__)
messages = cast(Table, Message.__table__)
pending_statuses = cast(Table, PendingStatus.__table__)
channel_events = cast(Table, ChannelEvent.__table__)
whatsapp_configs = cast(Table, WhatsAppConfig.__table__)


def later(column: Any, value: Any) -> ColumnElement[Any]:
    """SQL for "the later of the column and value" that treats NULL as "no value"."""
    return case((or_(column.is_(None), column < value), value), else_=column)


def insert_for(session: AsyncSession, table: Table) -> Any:
    """An INSERT that supports ON CONFLICT DO NOTHING on the session's engine."""
    if dialect_name(session) == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def dialect_name(session: AsyncSession) -> str:
    return session.get_bind().dialect.name
