"""CSV export of a filtered contact list, streamed in keyset-paged batches."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.auth.principal import Principal
from pytake.contact import tags as tag_service
from pytake.contact.importer import ATTRIBUTE_PREFIX, IGNORED_COLUMNS, KNOWN_COLUMNS
from pytake.contact.service import ContactFilter, filter_clauses, live_contacts, newest_first
from pytake.kit.sql import is_postgresql
from pytake.models.contact import Contact

EXPORT_BATCH = 1000
BASE_COLUMNS = ["id", "whatsapp_id", "name", "email", "tags", "opt_in", "is_blocked", "created_at"]


async def _attribute_keys(session: AsyncSession, base: Any) -> list[str]:
    ids = base.with_only_columns(Contact.id).order_by(None).subquery()
    if is_postgresql(session):
        from sqlalchemy import func

        keys = func.jsonb_object_keys(Contact.attributes).label("key")
        stmt = select(keys).where(Contact.id.in_(select(ids.c.id))).distinct()
    else:
        from sqlalchemy import func

        each = func.json_each(Contact.attributes).table_valued("key")
        stmt = (
            select(each.c.key)
            .select_from(Contact)
            .join(each, true())
            .where(Contact.id.in_(select(ids.c.id)))
            .distinct()
        )
    return sorted(await session.scalars(stmt))


_RESERVED = set(KNOWN_COLUMNS) | set(IGNORED_COLUMNS) | set(BASE_COLUMNS)


def attribute_column(key: str) -> str:
    """The CSV column of an attribute: prefixed when the import would read it as something else
    (a standard column, or a name that already carries the prefix)."""
    folded = key.lower()
    if folded in _RESERVED or folded.startswith(ATTRIBUTE_PREFIX):
        return ATTRIBUTE_PREFIX + key
    return key


# OWASP's CSV injection rule: a cell a spreadsheet would read as a formula starts with one of
# these; it is prefixed with a single quote, which makes it text (the importer drops the quote
# again, so an export imports back unchanged).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralised(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralised(value)
    return neutralised(json.dumps(value, ensure_ascii=False))


def _encode(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    # CRLF as RFC 4180 has it; with LF alone, the writer would leave a CR inside a field
    # unquoted, and no CSV reader could read that line back.
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue().encode()


async def export_csv(
    factory: async_sessionmaker[AsyncSession], principal: Principal, filt: ContactFilter
) -> AsyncIterator[bytes]:
    """CSV bytes of the filtered contacts, newest first; attribute keys become columns."""
    async with factory() as session:
        clauses = await filter_clauses(session, principal, filt)
        base = live_contacts(principal).where(*(clauses or []))
        keys = await _attribute_keys(session, base) if clauses is not None else []
        yield _encode([BASE_COLUMNS + [attribute_column(k) for k in keys]])
        if clauses is None:
            return
        cursor: tuple[Any, Any] | None = None
        while True:
            stmt = newest_first(base).limit(EXPORT_BATCH)
            if cursor is not None:
                stmt = stmt.where(tuple_(Contact.created_at, Contact.id) < cursor)
            batch = list(await session.scalars(stmt))
            if not batch:
                return
            tags = await tag_service.tag_names_of(session, [c.id for c in batch])
            yield _encode([_row(c, tags[c.id], keys) for c in batch])
            cursor = (batch[-1].created_at, batch[-1].id)
            session.expunge_all()


def _row(contact: Contact, tags: list[str], keys: list[str]) -> list[str]:
    attributes = contact.attributes or {}
    return [
        str(contact.id),
        contact.whatsapp_id,  # E.164, validated: "+" and digits, a number and never a formula
        neutralised(contact.name or ""),
        neutralised(contact.email or ""),
        neutralised(",".join(tags)),
        "true" if contact.opt_in else "false",
        "true" if contact.is_blocked else "false",
        contact.created_at.isoformat().replace("+00:00", "Z"),
        *(_cell(attributes.get(k)) for k in keys),
    ]
