"""SQL helpers shared by every domain: the dialect question, portable upserts, statements built
once per process, and multi-row batches (`BatchSource`).

Ask for the dialect with `is_postgresql(session)`; everything else here builds on it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Engine,
    Table,
    TypeDecorator,
    any_,
    bindparam,
    case,
    column,
    false,
    func,
    or_,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.types import TypeEngine

Bound = AsyncSession | AsyncConnection | AsyncEngine | Connection | Engine


def dialect_name(bound: Bound) -> str:
    """The dialect of whatever a statement runs on: a session, a connection or an engine."""
    if isinstance(bound, AsyncSession):
        return bound.get_bind().dialect.name
    return bound.dialect.name


def is_postgresql(bound: Bound) -> bool:
    """True on PostgreSQL; the one way the code base asks which engine it is on."""
    return dialect_name(bound) == "postgresql"


async def serialise(session: AsyncSession, key: str, table: Table) -> None:
    """Hold `key` until the transaction ends, so read-then-insert work on one thing (e.g. one
    Business Account's templates) runs one transaction at a time across processes.

    PostgreSQL: a transaction-level advisory lock on the key's hash. SQLite has one writer: a
    write that changes nothing (on `table`) takes the database's write lock now, before the
    reads, so they see what the previous holder committed."""
    if is_postgresql(session):
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        )
        return
    await session.execute(update(table).where(false()).values({table.c.id: table.c.id}))


def later(column: Any, value: Any) -> ColumnElement[Any]:
    """SQL for "the later of the column and value" that treats NULL as "no value"."""
    return case((or_(column.is_(None), column < value), value), else_=column)


def insert_for(session: AsyncSession, table: Table) -> Any:
    """An INSERT that supports ON CONFLICT DO NOTHING on the session's engine."""
    if is_postgresql(session):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def among(session: AsyncSession, column: Any, name: str) -> ColumnElement[bool]:
    """`column IN (the list bound as name)`, for statements built once (see `statement`).

    PostgreSQL gets `= ANY(array)`: one parameter, so one prepared statement whatever the
    list's length; elsewhere an expanding IN, rendered per execution."""
    if is_postgresql(session):
        return cast(ColumnElement[bool], column == any_(bindparam(name, type_=ARRAY(column.type))))
    return cast(ColumnElement[bool], column.in_(bindparam(name, expanding=True)))


_STATEMENTS: dict[tuple[str, str], Any] = {}


def statement(session: AsyncSession, name: str, build: Callable[[], Any]) -> Any:
    """The hot path's statement `name` for the session's engine, built once per process.

    A statement object is immutable and memoizes its cache key, so reusing it skips both the
    construction and the key walk that SQLAlchemy otherwise repeats on every execution."""
    key = (dialect_name(session), name)
    found = _STATEMENTS.get(key)
    if found is None:
        found = _STATEMENTS[key] = build()
    return found


class BatchSource:
    """Where a multi-row statement reads each row's values.

    On PostgreSQL the batch travels as one array per column, joined with `unnest(…)` as a
    derived table (`UPDATE … FROM unnest`, `INSERT … SELECT … FROM unnest`): one parameter set
    whatever the number of rows, which asyncpg encodes in C. Elsewhere the same statement runs
    as an executemany, each column a bind parameter. Profiles of ingest showed SQLAlchemy's
    per-row parameter handling for executemany and multi-row VALUES as a large share of a
    batch's CPU; with arrays it is per column.

    `c.<name>` is the column to use in the statement; `params(rows, **constants)` the
    parameters for `session.execute(statement, …)`; constants are ordinary bind parameters.
    """

    def __init__(self, session: AsyncSession, name: str, **types: TypeEngine[Any]) -> None:
        self.unnest = is_postgresql(session)
        self._name = name
        self._types = types

    @functools.cached_property
    def c(self) -> Any:
        # Only needed to build a statement, which callers do once (see `statement`).
        types = self._types
        if not self.unnest:
            return _Columns({n: bindparam(f"b_{n}", type_=t) for n, t in types.items()})
        arrays = func.unnest(
            *(bindparam(f"b_{n}", type_=ARRAY(_array_item(t))) for n, t in types.items())
        )
        derived = arrays.table_valued(*(column(n, _array_item(t)) for n, t in types.items()))
        return derived.render_derived(name=self._name).c

    def params(self, rows: list[dict[str, Any]], **constants: Any) -> Any:
        fixed = {f"b_{k}": v for k, v in constants.items()}
        if self.unnest:
            return {**fixed, **{f"b_{n}": [row[n] for row in rows] for n in self._types}}
        return [{**fixed, **{f"b_{n}": row[n] for n in self._types}} for row in rows]


class _Columns:
    def __init__(self, columns: dict[str, Any]) -> None:
        self.__dict__.update(columns)

    def __getitem__(self, name: str) -> Any:
        return self.__dict__[name]


def _array_item(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    # Arrays of a TypeDecorator bind each element through it; the plain types are enough here
    # (aware datetimes; JSON documents as JSONB).
    if isinstance(type_, TypeDecorator):
        return type_.impl_instance
    if type_.__class__.__name__ == "JSON":
        return JSONB()
    return type_
