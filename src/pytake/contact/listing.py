"""GET /v1/contacts: one page of a filtered list, newest first, by page number or by cursor.

Pages are read in the order of an index: the live-contact index (organization_id, created_at, id)
or, when tags are given, the first tag's links (tag_id, contact_created_at, contact_id), so a page
costs about `limit` index entries however popular the tag. A cursor continues after the last
contact of the previous page (keyset), so a deep page costs what the first one does; page numbers
(OFFSET) stay for compatibility and cost more the deeper they go.

The total is exact up to a cap and estimated beyond it on PostgreSQL (see `_count`); on the last
page it is known without counting.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from pytake.auth.principal import Principal
from pytake.contact import service
from pytake.contact.service import ContactFilter
from pytake.errors import ValidationFailed
from pytake.kit.pagination import PageParams
from pytake.kit.sql import is_postgresql
from pytake.models.contact import Contact, ContactTag

# Exact totals up to these many matches: an unfiltered (or single-tag) count walks an index
# only; another filter (search, several tags, opt-in) checks each match, so it stops sooner.
COUNT_CAP = 10_000
FILTERED_COUNT_CAP = 1_000
# ... unless the planner expects more than this many, when its estimate is given without counting.
SKIP_COUNT_ABOVE = 2 * FILTERED_COUNT_CAP


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after this contact, with `seen` contacts before it."""

    created_at: datetime
    contact_id: uuid.UUID
    seen: int

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), self.contact_id.hex, self.seen])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        """The cursor a previous page returned, or a 422 naming `cursor`."""
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            created, contact_id, seen = json.loads(raw)
            cursor = cls(datetime.fromisoformat(created), uuid.UUID(hex=contact_id), int(seen))
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise ValidationFailed.on("cursor", "Not a cursor returned by this list") from exc
        if cursor.created_at.tzinfo is None or cursor.seen < 0:
            raise ValidationFailed.on("cursor", "Not a cursor returned by this list")
        return cursor


@dataclass
class ContactList:
    contacts: list[Contact]
    total: int
    total_is_estimate: bool
    current_page: int
    next_cursor: str | None


@dataclass
class _Query:
    """The matching contacts' ids and the (created_at, id) columns of the index they page on."""

    ids: Select[Any]
    created_at: Any
    contact_id: Any
    filtered: bool
    # Tags and nothing else: links are kept for live contacts only (deleting a contact removes
    # them), so the matches are counted from contact_tags' indexes without touching contacts.
    links: Select[Any] | None = None
    single_tag: bool = False


async def _query(session: AsyncSession, principal: Principal, filt: ContactFilter) -> _Query | None:
    found = await service.criteria(session, principal, filt)
    if found is None:
        return None
    ids = service.live_contacts(principal).with_only_columns(Contact.id).where(*found.clauses)
    if not found.tag_ids:
        return _Query(ids, Contact.created_at, Contact.id, bool(found.clauses))
    # Drive from the first tag's links in their (contact_created_at, contact_id) order; the
    # other tags are probes on contact_tags' primary key.
    first, *others = found.tag_ids
    ids = ids.join(
        ContactTag, (ContactTag.contact_id == Contact.id) & (ContactTag.tag_id == first)
    ).where(*(service.has_tag(t) for t in others))
    links = None
    if not found.clauses:
        links = select(ContactTag.contact_id).where(ContactTag.tag_id == first)
        for tag_id in others:
            other = aliased(ContactTag)
            links = links.where(
                exists().where(other.contact_id == ContactTag.contact_id, other.tag_id == tag_id)
            )
    return _Query(
        ids,
        ContactTag.contact_created_at,
        ContactTag.contact_id,
        True,
        links,
        single_tag=links is not None and not others,
    )


async def list_contacts(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    filt: ContactFilter,
    cursor: Cursor | None = None,
) -> ContactList:
    """A page of live contacts, newest first (ties by id): page `params.page`, or after `cursor`."""
    offset = cursor.seen if cursor is not None else params.offset
    current_page = offset // params.limit + 1
    query = await _query(session, principal, filt)
    if query is None:
        return ContactList([], 0, False, current_page, None)
    page = query.ids.order_by(query.created_at.desc(), query.contact_id.desc())
    if cursor is not None:
        after: ColumnElement[bool] = tuple_(query.created_at, query.contact_id) < tuple_(
            cursor.created_at, cursor.contact_id
        )
        page = page.where(after)
    else:
        page = page.offset(offset)
    # One more than asked: whether a next page exists, and the exact total on the last page.
    ids = list(await session.scalars(page.limit(params.limit + 1)))
    more = len(ids) > params.limit
    contacts = await _load(session, ids[: params.limit])
    next_cursor = None
    if more:
        last = contacts[-1]
        next_cursor = Cursor(last.created_at, last.id, offset + len(contacts)).encode()
    if not more and (contacts or offset == 0):
        total, estimate = offset + len(contacts), False
    else:
        total, estimate = await _count(session, query, offset + len(contacts))
    return ContactList(contacts, total, estimate, current_page, next_cursor)


async def _load(session: AsyncSession, ids: list[uuid.UUID]) -> list[Contact]:
    if not ids:
        return []
    found = {c.id: c for c in await session.scalars(select(Contact).where(Contact.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


async def _count(session: AsyncSession, query: _Query, seen: int) -> tuple[int, bool]:
    """(total, is_estimate): exact up to the cap, then the planner's estimate on PostgreSQL.

    A filtered list asks the planner first: counting even 1,000 matches of a common name or of
    two popular tags means probing thousands of rows, so when the planner expects more than
    the cap (SKIP_COUNT_ABOVE) its estimate is the answer at once.
    """
    matching = query.links if query.links is not None else query.ids
    cheap = query.single_tag or not query.filtered
    cap = COUNT_CAP if cheap else FILTERED_COUNT_CAP
    postgres = is_postgresql(session)
    if postgres and not cheap:
        estimate = await _estimate(session, matching)
        if estimate > SKIP_COUNT_ABOVE:
            return max(estimate, seen), True
    capped = select(func.count()).select_from(matching.limit(cap + 1).subquery())
    total = await session.scalar(capped) or 0
    if total <= cap:
        return total, False
    if not postgres:
        exact = select(func.count()).select_from(matching.subquery())
        return await session.scalar(exact) or 0, False
    return max(await _estimate(session, matching), cap + 1, seen), True


async def _estimate(session: AsyncSession, stmt: Select[Any]) -> int:
    """The PostgreSQL planner's row estimate for a query (EXPLAIN: planned, not run)."""
    dialect = session.get_bind().dialect
    sql = stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    conn = await session.connection()
    explained = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}")
    doc: Any = explained.scalar()
    return int((json.loads(doc) if isinstance(doc, str) else doc)[0]["Plan"]["Plan Rows"])
