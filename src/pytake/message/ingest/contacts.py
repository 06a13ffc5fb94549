"""Ingest's contacts: one live contact per WhatsApp user, created on first contact; opt-outs."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.config import Settings
from pytake.contact.rows import new_contact_row
from pytake.kit.phone import from_wa_id
from pytake.kit.sql import among, insert_for, is_postgresql, statement
from pytake.kit.text import without_nul
from pytake.message.ingest.batch import BatchMessage, ChannelRef
from pytake.message.tables import contacts
from pytake.models.base import utcnow
from pytake.whatsapp.events import InboundMessage


async def contacts_for(
    session: AsyncSession,
    channel: ChannelRef,
    rows: list[BatchMessage],
    created: set[uuid.UUID],
    people: dict[uuid.UUID, dict[str, Any]],
) -> dict[str, uuid.UUID]:
    """Contact id per match key, creating missing contacts (one live contact per WhatsApp user);
    the ids of contacts this call created are added to `created`, and every contact's fields
    the events show to `people`.

    On PostgreSQL the contacts come back locked: that serialises concurrent ingests of one
    customer (deduplication, the choice of conversation). Existing ones are locked in id
    order, then missing ones inserted in key order, so two batches never wait on each other
    in a circle."""
    wanted = {row.key: row for row in rows}
    found = await _select_contacts(session, channel.organization_id, set(wanted))
    missing = sorted(key for key in wanted if key not in found)
    if missing:
        now = utcnow()
        values = [_new_contact(channel, wanted[key], now) for key in missing]
        await session.execute(insert_for(session, contacts).on_conflict_do_nothing(), values)
        found.update(await _select_contacts(session, channel.organization_id, set(missing)))
        # A concurrent ingest may have won the insert: only our own ids count as created.
        created.update(v["id"] for v in values if found[v["match_key"]].id == v["id"])
    people.update({row.id: row._asdict() for row in found.values()})
    return {key: row.id for key, row in found.items()}


def _new_contact(channel: ChannelRef, row: BatchMessage, now: Any) -> dict[str, Any]:
    profile = without_nul(row.event.profile_name) if isinstance(row.event, InboundMessage) else None
    return new_contact_row(
        channel.organization_id,
        from_wa_id(row.party),
        row.key,
        now,
        wa_id=row.party,
        profile_name=profile,
    )


async def _select_contacts(
    session: AsyncSession, organization_id: uuid.UUID, keys: set[str]
) -> dict[str, Any]:
    """The live contacts with these match keys (locked, in id order, on PostgreSQL)."""
    c = contacts.c

    def build() -> Any:
        stmt = select(
            c.match_key,
            c.id,
            c.name,
            c.profile_name,
            c.whatsapp_id,
            c.email,
            c.opt_in,
            c.is_blocked,
            c.attributes,
        ).where(
            c.organization_id == bindparam("org"),
            among(session, c.match_key, "keys"),
            c.deleted_at.is_(None),
        )
        if is_postgresql(session):
            stmt = stmt.order_by(c.id).with_for_update()
        return stmt

    stmt = statement(session, "select_contacts", build)
    result = await session.execute(stmt, {"org": organization_id, "keys": list(keys)})
    return {row.match_key: row for row in result.all()}


async def lock_contacts(session: AsyncSession, contact_ids: list[uuid.UUID]) -> None:
    """SQLite: take the database's one write lock now, so that the reads that follow are
    current (on PostgreSQL `contacts_for` locked the contacts themselves)."""
    c = contacts.c
    stmt = statement(
        session,
        "lock_contacts",
        lambda: update(contacts).where(among(session, c.id, "ids")).values(updated_at=c.updated_at),
    )
    await session.execute(stmt, {"ids": contact_ids})


def is_opt_out(text: Any, keywords: list[str]) -> bool:
    """Whether a message text is exactly an opt-out keyword (trimmed, case-insensitive)."""
    if not isinstance(text, str):
        return False
    word = text.strip().casefold()
    return any(word == keyword.strip().casefold() for keyword in keywords)


async def apply_opt_outs(
    session: AsyncSession,
    settings: Settings,
    rows: list[BatchMessage],
    contact_ids: dict[str, uuid.UUID],
) -> list[uuid.UUID]:
    """Opt out the contacts whose stored inbound texts are an opt-out keyword; returns them."""
    opted = sorted(
        {
            contact_ids[r.key]
            for r in rows
            if r.inbound
            and r.event.type == "text"
            and is_opt_out(r.event.content.get("text"), settings.opt_out_keywords)
        }
    )
    if opted:
        now = utcnow()
        await session.execute(
            update(contacts)
            .where(contacts.c.id.in_(opted), contacts.c.opt_in.is_(True))
            .values(opt_in=False, opt_in_changed_at=now, opt_in_source="keyword", updated_at=now)
        )
    return opted
