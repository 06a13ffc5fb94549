"""Ingest's conversations: the customer's live one on the number, a resolved one reopened when
the customer writes again, else a new one."""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.conversation.rows import new_conversation_row
from pytake.kit.sql import among, insert_for, statement
from pytake.message.ingest.batch import BatchMessage, ChannelRef
from pytake.message.tables import conversations
from pytake.models.base import utcnow
from pytake.models.conversation import LIVE_CONVERSATION_STATUSES


async def conversations_for(
    session: AsyncSession,
    channel: ChannelRef,
    rows: list[BatchMessage],
    contact_ids: dict[str, uuid.UUID],
    created: set[uuid.UUID],
) -> dict[uuid.UUID, uuid.UUID]:
    """Conversation id per contact: the newest live or resolved one on this channel (a resolved
    one reopens when the customer writes again), else a new one (added to `created`)."""
    wanted = {contact_ids[row.key] for row in rows}
    newest = await _newest(session, channel, wanted)
    found = {contact_id: conversation_id for contact_id, (conversation_id, _) in newest.items()}
    writing = {contact_ids[row.key] for row in rows if row.inbound}
    reopen = sorted(
        conv
        for contact, (conv, status) in newest.items()
        if status == "resolved" and contact in writing
    )
    if reopen:
        c = conversations.c
        await session.execute(
            update(conversations)
            .where(c.id.in_(reopen), c.status == "resolved")
            .values(status="open", resolved_at=None, updated_at=utcnow())
        )
    missing = [contact_id for contact_id in wanted if contact_id not in found]
    if missing:
        now = utcnow()
        values = [
            new_conversation_row(channel.organization_id, contact_id, channel.id, now)
            for contact_id in missing
        ]
        await session.execute(insert_for(session, conversations), values)
        found.update({v["contact_id"]: v["id"] for v in values})
        created.update(v["id"] for v in values)
    return found


async def _newest(
    session: AsyncSession, channel: ChannelRef, contact_ids: set[uuid.UUID]
) -> dict[uuid.UUID, tuple[uuid.UUID, str]]:
    """(conversation id, status) of each contact's newest live or resolved conversation."""
    c = conversations.c
    stmt = statement(
        session,
        "select_conversations",
        lambda: (
            select(c.contact_id, c.id, c.status)
            .where(
                c.organization_id == bindparam("org"),
                c.channel_id == bindparam("channel"),
                among(session, c.contact_id, "contacts"),
                c.status.in_((*LIVE_CONVERSATION_STATUSES, "resolved")),
            )
            .order_by(c.created_at)
        ),
    )
    result = await session.execute(
        stmt, {"org": channel.organization_id, "channel": channel.id, "contacts": list(contact_ids)}
    )
    return {contact_id: (conversation_id, status) for contact_id, conversation_id, status in result}
