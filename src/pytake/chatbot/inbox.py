"""The bot inbox: the one hook ingest calls, in the inbound message's own transaction.

A row per inbound message of an organisation that has an active chatbot, so the bot learns of
every message exactly when it is committed (never of one that rolled back) without reading
the messages table by a cursor whose gaps concurrent commits leave. One INSERT per ingest
batch with messages, and none at all without an active chatbot: the condition is part of
the statement, so ingest needs no extra round trip to find out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, exists, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.events import wake_after_commit
from pytake.kit.sql import is_postgresql
from pytake.models import Chatbot, ChatbotInbox
from pytake.models.base import utcnow

_INBOX = cast(Table, ChatbotInbox.__table__)
CONSUMER = "chatbots"  # the loop's name (pytake.chatbot.tasks), woken after commit

# PostgreSQL: the batch as arrays, inserted in their order (ids ascend in arrival order), only
# when the organisation has an active chatbot.
_INSERT_PG = text(
    """
    INSERT INTO chatbot_inbox
        (organization_id, conversation_id, message_id, new_conversation, due_at, created_at)
    SELECT :org, n.conversation_id, n.message_id, n.new_conversation, :now, :now
    FROM unnest(CAST(:conversations AS uuid[]), CAST(:messages AS uuid[]),
                CAST(:news AS boolean[])) WITH ORDINALITY
         AS n(conversation_id, message_id, new_conversation, ord)
    WHERE EXISTS (SELECT 1 FROM chatbots c WHERE c.organization_id = :org AND c.is_active)
    ORDER BY n.ord
    """
)


@dataclass(frozen=True, slots=True)
class InboundItem:
    message_id: uuid.UUID
    conversation_id: uuid.UUID
    # The first message of a conversation this batch opened (the `new_conversation` trigger).
    new_conversation: bool


def inbox_items(stored: Any, new_conversations: set[uuid.UUID]) -> list[InboundItem]:
    """The inbound messages an ingest batch stored (`message.ingest.batch.Stored`), in
    arrival order; the first of a conversation the batch opened is marked new."""
    items, opened = [], set()
    for row in stored.rows:
        if not row.inbound:
            continue
        conversation_id = stored.conversation_ids[stored.contact_ids[row.key]]
        first = conversation_id in new_conversations and conversation_id not in opened
        opened.add(conversation_id)
        message_id = stored.message_ids[row.event.provider_message_id]
        items.append(InboundItem(message_id, conversation_id, first))
    return items


def phone_replies(stored: Any) -> set[uuid.UUID]:
    """The conversations an ingest batch stored an echo of a message sent from the business's
    phone in (not an echo of an API send)."""
    return {
        stored.conversation_ids[stored.contact_ids[row.key]]
        for row in stored.rows
        if not row.inbound and getattr(row.event, "source", None) == "device"
    }


async def enqueue_inbound(
    session: AsyncSession, organization_id: uuid.UUID, items: list[InboundItem]
) -> None:
    """Queue stored inbound messages for the organisation's chatbots (flushes, never commits)."""
    if not items:
        return
    now = utcnow()
    if is_postgresql(session):
        result = await session.execute(
            _INSERT_PG,
            {
                "org": organization_id,
                "now": now,
                "conversations": [i.conversation_id for i in items],
                "messages": [i.message_id for i in items],
                "news": [i.new_conversation for i in items],
            },
        )
        if result.rowcount:  # type: ignore[attr-defined]
            wake_after_commit(session, CONSUMER)
        return
    active = await session.scalar(
        select(
            exists().where(Chatbot.organization_id == organization_id, Chatbot.is_active.is_(True))
        )
    )
    if not active:
        return
    await session.execute(
        insert(_INBOX),
        [
            {
                "organization_id": organization_id,
                "conversation_id": i.conversation_id,
                "message_id": i.message_id,
                "new_conversation": i.new_conversation,
                "due_at": now,
                "created_at": now,
            }
            for i in items
        ],
    )
    wake_after_commit(session, CONSUMER)
