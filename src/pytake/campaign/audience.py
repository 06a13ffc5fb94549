"""A campaign's audience: which contacts it targets, counted at creation and materialised into
recipient rows in one INSERT … SELECT when it starts.

Every target reads the live contacts of the organisation (a soft-deleted contact loses its
tags and leaves the contacts list), except `contacts`, whose ids may name deleted contacts or
none at all: those are counted as skipped (`deleted`, `not_found`). Live contacts are unique
per number (contacts.uq_contacts_org_match_key_live), so the audience has one row per number.
Opted-out and blocked contacts of the audience become `skipped` recipients with the reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Uuid,
    and_,
    any_,
    case,
    false,
    func,
    insert,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.contact import tags as tag_service
from pytake.contact.service import has_tag, search_clauses
from pytake.kit.sql import is_postgresql
from pytake.models import Contact
from pytake.models.base import UTCDateTime
from pytake.models.campaign import recipients_table

SKIP_REASONS = ("opted_out", "blocked", "deleted", "not_found", "missing_variable")


@dataclass
class AudienceCount:
    """How many contacts would be messaged, and how many are left out, by reason."""

    reachable: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def skip_reason() -> ColumnElement[Any]:
    """Why a contact of the audience is not messaged (NULL: it is)."""
    return case(
        (Contact.deleted_at.is_not(None), "deleted"),
        (Contact.is_blocked.is_(True), "blocked"),
        (Contact.opt_in.is_(False), "opted_out"),
        else_=None,
    )


def _attribute_equals(session: AsyncSession, key: str, value: Any) -> ColumnElement[bool]:
    # Type-aware equality without casts: a contact whose attribute holds another type simply
    # does not match (a cast of its value would fail the whole query on PostgreSQL).
    if is_postgresql(session):
        return type_coerce(Contact.attributes, JSONB).contains({key: value})
    path = '$."' + key.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        value = 1 if value else 0
    return cast(ColumnElement[bool], func.json_extract(Contact.attributes, path) == value)


async def audience_clauses(
    session: AsyncSession,
    organization_id: uuid.UUID,
    target_type: str,
    filters: dict[str, Any],
) -> list[ColumnElement[bool]]:
    """WHERE clauses on contacts selecting the audience (a false clause when nothing can match,
    e.g. a tag the organisation does not have)."""
    clauses: list[ColumnElement[bool]] = [Contact.organization_id == organization_id]
    if target_type == "contacts":
        ids = list(dict.fromkeys(uuid.UUID(str(i)) for i in filters.get("contact_ids") or []))
        if is_postgresql(session):
            clauses.append(Contact.id == any_(literal(ids, ARRAY(Uuid()))))
        else:
            clauses.append(Contact.id.in_(ids))
        return clauses
    clauses.append(Contact.deleted_at.is_(None))
    if target_type == "all":
        return clauses
    names = list(dict.fromkeys(filters.get("tags") or []))
    if names:
        found = await tag_service.tag_ids(session, organization_id, names)
        if len(found) < len(names):
            return [false()]
        clauses.extend(has_tag(found[name]) for name in names)
    if target_type == "segment":
        if filters.get("search"):
            clauses.extend(search_clauses(session, filters["search"]))
        for key, value in (filters.get("attributes") or {}).items():
            clauses.append(_attribute_equals(session, key, value))
        if filters.get("opt_in") is not None:
            clauses.append(Contact.opt_in.is_(bool(filters["opt_in"])))
    return clauses


def _not_found(target_type: str, filters: dict[str, Any], matched: int) -> int:
    if target_type != "contacts":
        return 0
    return len({str(i) for i in filters.get("contact_ids") or []}) - matched


async def count_audience(
    session: AsyncSession, organization_id: uuid.UUID, target_type: str, filters: dict[str, Any]
) -> AudienceCount:
    """The audience counted now: reachable contacts, and the others by reason."""
    clauses = await audience_clauses(session, organization_id, target_type, filters)
    reason = skip_reason().label("reason")
    stmt: Select[Any] = (
        select(reason, func.count()).select_from(Contact).where(and_(*clauses)).group_by(reason)
    )
    result = AudienceCount()
    matched = 0
    for why, n in (await session.execute(stmt)).all():
        matched += n
        if why is None:
            result.reachable = n
        else:
            result.skipped[why] = n
    missing = _not_found(target_type, filters, matched)
    if missing:
        result.skipped["not_found"] = missing
    return result


async def materialise(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    organization_id: uuid.UUID,
    target_type: str,
    filters: dict[str, Any],
    now: datetime,
) -> AudienceCount:
    """Insert the campaign's recipient rows in one statement (pending, or skipped with the
    reason) and return the counts."""
    clauses = await audience_clauses(session, organization_id, target_type, filters)
    reason = skip_reason()
    rows = select(
        Contact.organization_id,
        literal(campaign_id, Uuid()),
        Contact.id,
        Contact.whatsapp_id,
        case((reason.is_(None), "pending"), else_="skipped"),
        reason,
        literal(now, UTCDateTime()),
        literal(now, UTCDateTime()),
    ).where(and_(*clauses))
    r = recipients_table.c
    await session.execute(
        insert(recipients_table).from_select(
            [
                r.organization_id,
                r.campaign_id,
                r.contact_id,
                r.phone,
                r.status,
                r.skip_reason,
                r.created_at,
                r.updated_at,
            ],
            rows,
        )
    )
    counted = await session.execute(
        select(r.skip_reason, func.count())
        .where(r.campaign_id == campaign_id)
        .group_by(r.skip_reason)
    )
    result = AudienceCount()
    matched = 0
    for why, n in counted.all():
        matched += n
        if why is None:
            result.reachable = n
        else:
            result.skipped[str(why)] = n
    missing = _not_found(target_type, filters, matched)
    if missing:
        result.skipped["not_found"] = missing
    return result
