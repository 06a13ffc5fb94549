"""Taking conversations for a batch of bot steps and reading what their steps need, a few
statements for the whole batch: the conversations' locks, their running sessions, their
oldest inbox rows with the messages, and the conversations with their contacts and numbers.

The lock is what makes a conversation's work exclusive: a transaction-scoped advisory lock on
PostgreSQL (tried for a batch: a conversation another worker holds is left to it), the
database's single write lock on SQLite.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.kit.sql import among, is_postgresql, statement
from pytake.models import (
    Channel,
    ChatbotInbox,
    ChatbotSession,
    Contact,
    Conversation,
    Message,
)


@dataclass(slots=True)
class InboxItem:
    """An inbound message waiting for the bot (plain data: the row is deleted by id)."""

    id: int
    due_at: datetime
    new_conversation: bool
    kind: str | None
    content: dict[str, Any] | None


@dataclass(slots=True)
class Loaded:
    """What one conversation's steps start from; kept current by the steps of a batch."""

    live: ChatbotSession | None = None
    inbox: list[InboxItem] = field(default_factory=list)
    conversation: Conversation | None = None
    contact: Contact | None = None
    provider: str | None = None
    named: uuid.UUID | None = None


def lock_key(conversation_id: uuid.UUID) -> int:
    """A signed 64-bit advisory-lock key for a conversation."""
    digest = hashlib.blake2b(conversation_id.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")
_LOCK = text("SELECT pg_advisory_xact_lock(:key) IS NULL")
# One statement for a batch: the keys whose lock this transaction got (the others are held).
_TRY_LOCKS = text("SELECT k FROM unnest(:keys) AS k WHERE pg_try_advisory_xact_lock(k)").bindparams(
    bindparam("keys", type_=ARRAY(BigInteger()))
)


async def lock_conversation(
    session: AsyncSession, conversation_id: uuid.UUID, *, wait: bool = False
) -> bool:
    """Take the conversation for this transaction; False: another worker has it now (only
    without `wait`: an HTTP answer or a manual start waits its turn instead)."""
    if is_postgresql(session):
        got = await session.scalar(_LOCK if wait else _TRY_LOCK, {"key": lock_key(conversation_id)})
        return bool(got) or wait
    return bool(await lock_conversations(session, [conversation_id]))


async def lock_conversations(
    session: AsyncSession, conversation_ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    """Take what it can of these conversations for this transaction (in their order)."""
    if not conversation_ids:
        return []
    if is_postgresql(session):
        keys = {lock_key(c): c for c in conversation_ids}
        got = set(await session.scalars(_TRY_LOCKS, {"keys": list(keys)}))
        return [c for c in conversation_ids if lock_key(c) in got]
    # SQLite: a write first takes the database's one write lock, so every read after it sees
    # the latest commit (a read-first transaction could not write after another commit).
    stmt = statement(session, "chatbot.lock", _sqlite_lock_statement)
    await session.execute(stmt, {"ids": conversation_ids})
    return list(conversation_ids)


def _sqlite_lock_statement() -> Any:
    return (
        update(Conversation)
        .where(Conversation.id.in_(bindparam("ids", expanding=True)))
        .values(updated_at=Conversation.updated_at)
        .execution_options(synchronize_session=False)
    )


async def load(
    session: AsyncSession, conversation_ids: list[uuid.UUID], *, per_conversation: int
) -> dict[uuid.UUID, Loaded]:
    """The running session, the `per_conversation` oldest inbox rows and the conversation
    (with contact, provider and named chatbot) of each of these locked conversations."""
    loaded = {c: Loaded() for c in conversation_ids}
    if not conversation_ids:
        return loaded
    s, ids = session, {"ids": list(conversation_ids)}
    for live in await s.scalars(statement(s, "chatbot.sessions", lambda: _sessions(s)), ids):
        loaded[live.conversation_id].live = live
    inbox = statement(s, "chatbot.inbox", lambda: _inbox(s))
    for conversation_id, *item in await s.execute(inbox, {**ids, "n": per_conversation}):
        loaded[conversation_id].inbox.append(InboxItem(*item))
    found = statement(s, "chatbot.conversations", lambda: _conversations(s))
    for conversation, contact, provider, named in await s.execute(found, ids):
        one = loaded[conversation.id]
        one.conversation, one.contact, one.provider, one.named = (
            conversation, contact, provider, named
        )  # fmt: skip
    return loaded


def _sessions(session: AsyncSession) -> Any:
    return select(ChatbotSession).where(
        among(session, ChatbotSession.conversation_id, "ids"), ChatbotSession.status == "active"
    )


def _inbox(session: AsyncSession) -> Any:
    """Each conversation's oldest inbox rows (at most `n`), oldest first, with the message."""
    ranked = (
        select(
            ChatbotInbox.id,
            func.row_number()
            .over(partition_by=ChatbotInbox.conversation_id, order_by=ChatbotInbox.id)
            .label("rank"),
        )
        .where(among(session, ChatbotInbox.conversation_id, "ids"))
        .subquery()
    )
    return (
        select(
            ChatbotInbox.conversation_id,
            ChatbotInbox.id,
            ChatbotInbox.due_at,
            ChatbotInbox.new_conversation,
            Message.type,
            Message.content,
        )
        .join(ranked, ranked.c.id == ChatbotInbox.id)
        .outerjoin(Message, Message.id == ChatbotInbox.message_id)
        .where(ranked.c.rank <= bindparam("n"))
        .order_by(ChatbotInbox.id)
    )


def _conversations(session: AsyncSession) -> Any:
    """The conversations, their contacts, and their numbers' providers and named chatbots."""
    return (
        select(Conversation, Contact, Channel.provider, Channel.chatbot_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .outerjoin(Channel, Channel.id == Conversation.channel_id)
        .where(among(session, Conversation.id, "ids"))
        .order_by(Conversation.id)
    )
