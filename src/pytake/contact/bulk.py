"""Bulk operations on the contacts matching a filter."""

from __future__ import annotations

from sqlalchemy import delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.principal import Principal
from pytake.contact import tags as tag_service
from pytake.contact.schemas import BulkTagIn
from pytake.contact.service import ContactFilter, filter_clauses, live_contacts
from pytake.models.contact import Contact, ContactTag, contact_tags_table


async def apply_tag(session: AsyncSession, principal: Principal, body: BulkTagIn) -> int:
    """Add or remove one tag on every matching live contact; returns how many changed."""
    f = body.filter
    filt = ContactFilter(search=f.search, tags=f.tags or [], opt_in=f.opt_in, ids=f.ids)
    clauses = await filter_clauses(session, principal, filt)
    if clauses is None:
        return 0
    name = body.tag.strip()
    matching = live_contacts(principal).where(*clauses).with_only_columns(Contact.id)
    if body.action == "remove":
        found = await tag_service.tag_ids(session, principal.organization_id, [name])
        if not found:
            return 0
        result = await session.execute(
            delete(ContactTag).where(
                ContactTag.tag_id == found[name], ContactTag.contact_id.in_(matching)
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
    tag_id = (await tag_service.ensure_tags(session, principal.organization_id, [name]))[name]
    missing = matching.where(
        ~select(ContactTag.contact_id)
        .where(ContactTag.contact_id == Contact.id, ContactTag.tag_id == tag_id)
        .exists()
    )
    count = await session.scalar(select(func.count()).select_from(missing.subquery())) or 0
    await session.execute(
        contact_tags_table.insert().from_select(
            ["contact_id", "contact_created_at", "tag_id"],
            missing.add_columns(Contact.created_at, literal(tag_id, ContactTag.tag_id.type)),
        )
    )
    return count
