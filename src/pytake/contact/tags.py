"""Tags: an organisation's labels for contacts (created on first use, renamed, deleted)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.principal import Principal
from pytake.contact.schemas import TagCreateIn, TagUpdateIn
from pytake.errors import Conflict
from pytake.kit.sql import is_postgresql
from pytake.models.base import utcnow
from pytake.models.contact import Contact, ContactTag, Tag
from pytake.tenancy import get_scoped, scoped


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """INSERT with ON CONFLICT support for the session's engine."""
    if is_postgresql(session):
        return postgresql.insert(table)
    return sqlite.insert(table)


async def ensure_tags(
    session: AsyncSession, organization_id: uuid.UUID, names: Iterable[str]
) -> dict[str, uuid.UUID]:
    """Ids of the named tags of the organisation, creating the missing ones (race-safe)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    found = await tag_ids(session, organization_id, wanted)
    missing = [n for n in wanted if n not in found]
    if missing:
        now = utcnow()
        rows = [
            {"id": uuid.uuid4(), "organization_id": organization_id, "name": n, "created_at": now}
            for n in missing
        ]
        stmt = dialect_insert(session, Tag.__table__).values(rows)
        await session.execute(
            stmt.on_conflict_do_nothing(index_elements=["organization_id", "name"])
        )
        found = await tag_ids(session, organization_id, wanted)
    return found


async def tag_ids(
    session: AsyncSession, organization_id: uuid.UUID, names: Sequence[str]
) -> dict[str, uuid.UUID]:
    """Existing tags of the organisation by name (unknown names are absent)."""
    rows = await session.execute(
        select(Tag.name, Tag.id).where(Tag.organization_id == organization_id, Tag.name.in_(names))
    )
    return {name: tag_id for name, tag_id in rows}


async def tag_names_of(
    session: AsyncSession, contact_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    """Each contact's tag names, alphabetically."""
    result: dict[uuid.UUID, list[str]] = {cid: [] for cid in contact_ids}
    if not contact_ids:
        return result
    rows = await session.execute(
        select(ContactTag.contact_id, Tag.name)
        .join(Tag, Tag.id == ContactTag.tag_id)
        .where(ContactTag.contact_id.in_(contact_ids))
        .order_by(Tag.name)
    )
    for contact_id, name in rows:
        result[contact_id].append(name)
    return result


async def replace_contact_tags(session: AsyncSession, contact: Contact, names: list[str]) -> None:
    """Make the contact's tag set exactly `names`."""
    ids = await ensure_tags(session, contact.organization_id, names)
    unlink = delete(ContactTag).where(ContactTag.contact_id == contact.id)
    if ids:
        unlink = unlink.where(ContactTag.tag_id.not_in(list(ids.values())))
    await session.execute(unlink)
    await link_tags(session, [contact], list(ids.values()))


async def link_tags(
    session: AsyncSession, contacts: Sequence[Contact], ids: Sequence[uuid.UUID]
) -> None:
    """Attach tags to contacts; links that already exist are left alone."""
    rows = [
        {"contact_id": c.id, "tag_id": t, "contact_created_at": c.created_at}
        for c in contacts
        for t in ids
    ]
    if rows:
        stmt = dialect_insert(session, ContactTag.__table__).values(rows)
        await session.execute(stmt.on_conflict_do_nothing())


def _contact_count() -> Any:
    # Links of deleted contacts are removed with them (service.delete_contact), so counting a
    # tag's links is counting its live contacts: an index-only scan, no join.
    return (
        select(func.count())
        .select_from(ContactTag)
        .where(ContactTag.tag_id == Tag.id)
        .scalar_subquery()
    )


async def list_tags(session: AsyncSession, principal: Principal) -> list[tuple[Tag, int]]:
    """The organisation's tags by name, with how many live contacts carry each."""
    stmt = scoped(select(Tag, _contact_count()), Tag, principal).order_by(Tag.name, Tag.id)
    return [(tag, count) for tag, count in await session.execute(stmt)]


async def get_tag(
    session: AsyncSession, principal: Principal, tag_id: uuid.UUID
) -> tuple[Tag, int]:
    tag = await get_scoped(session, Tag, tag_id, principal, what="Tag")
    count = await session.scalar(select(_contact_count()).where(Tag.id == tag.id))
    return tag, count or 0


async def _ensure_name_free(
    session: AsyncSession, organization_id: uuid.UUID, name: str, tag_id: uuid.UUID | None
) -> None:
    stmt = select(Tag.id).where(Tag.organization_id == organization_id, Tag.name == name)
    existing = await session.scalar(stmt)
    if existing is not None and existing != tag_id:
        raise Conflict(f"A tag named '{name}' already exists")


async def create_tag(session: AsyncSession, principal: Principal, data: TagCreateIn) -> Tag:
    """A new tag; names are unique within the organisation."""
    name = data.name.strip()
    await _ensure_name_free(session, principal.organization_id, name, None)
    tag = Tag(
        organization_id=principal.organization_id, name=name, color=data.color, created_at=utcnow()
    )
    session.add(tag)
    await session.flush()
    return tag


async def update_tag(
    session: AsyncSession, principal: Principal, tag_id: uuid.UUID, data: TagUpdateIn
) -> tuple[Tag, int]:
    """Rename or recolour a tag; contacts keep it under the new name."""
    tag, count = await get_tag(session, principal, tag_id)
    if data.name is not None and data.name.strip() != tag.name:
        await _ensure_name_free(session, tag.organization_id, data.name.strip(), tag.id)
        tag.name = data.name.strip()
    if "color" in data.model_fields_set:
        tag.color = data.color
    await session.flush()
    return tag, count


async def delete_tag(session: AsyncSession, principal: Principal, tag_id: uuid.UUID) -> None:
    """Delete a tag and remove it from every contact."""
    tag = await get_scoped(session, Tag, tag_id, principal, what="Tag")
    await session.execute(delete(ContactTag).where(ContactTag.tag_id == tag.id))
    await session.delete(tag)
    await session.flush()
