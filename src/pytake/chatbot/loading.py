"""Taking conversations for a batch of bot steps and reading what their steps need, a few
statements for the whole batch: the conversations' locks, their oldest inbox rows with the
messages, and the conversations with their contacts, numbers and running sessions.

What a step reads is plain data (`SessionRow`, `ConversationRow`, `ContactRow`), not ORM
entities: loading an entity, its attribute events and the unit of work's flush cost more CPU
per step than the step's own work (the consumer's profile on PostgreSQL). Sessions are
written back by the batch (pytake.chatbot.writes); the rarer changes to a conversation or a
contact (a handoff, a contact update) go through the ORM on demand (pytake.chatbot.runtime).

The lock is what makes a conversation's work exclusive: a transaction-scoped advisory lock on
PostgreSQL (tried for a batch: a conversation another worker holds is left to it), the
database's single write lock on SQLite.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Table, and_, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.kit.sql import among, is_postgresql, statement
from pytake.message.tables import contacts, conversations, messages, whatsapp_configs
from pytake.models import (
    ChatbotInbox,
    ChatbotSession,
)

# Statements on the tables, not the ORM entities: an ORM-enabled statement costs more to
# execute (its compile state is set up again each time) and the consumer runs these per batch.
# The message domain's tables come from pytake.message.tables.
SESSIONS = cast(Table, ChatbotSession.__table__)
INBOX = cast(Table, ChatbotInbox.__table__)


@dataclass(slots=True)
class SessionRow:
    """A chatbot session (a row of chatbot_sessions, every column) as a step changes it."""

    id: uuid.UUID
    organization_id: uuid.UUID
    chatbot_id: uuid.UUID
    conversation_id: uuid.UUID
    contact_id: uuid.UUID
    flow_id: uuid.UUID
    version: int
    node: str
    status: str
    variables: dict[str, Any]
    attempts: int
    steps: int
    waiting: str | None
    wake_at: datetime | None
    pending_http: dict[str, Any] | None
    end_reason: str | None
    ended_at: datetime | None
    messages_in: int
    messages_out: int
    created_at: datetime
    updated_at: datetime


SESSION_COLUMNS = tuple(f.name for f in fields(SessionRow))


@dataclass(slots=True)
class ConversationRow:
    """What a step reads of a conversation."""

    id: uuid.UUID
    organization_id: uuid.UUID
    contact_id: uuid.UUID
    channel_id: uuid.UUID | None
    is_bot_active: bool
    window_expires_at: datetime | None


@dataclass(slots=True)
class ContactRow:
    """What a step reads of a contact (kept current by the step's own contact changes)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    name: str | None
    profile_name: str | None
    email: str | None
    whatsapp_id: str
    attributes: dict[str, Any]
    opt_in: bool
    is_blocked: bool
    deleted_at: datetime | None


_CONVERSATION_COLUMNS = tuple(f.name for f in fields(ConversationRow))
_CONTACT_COLUMNS = tuple(f.name for f in fields(ContactRow))


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

    live: SessionRow | None = None
    inbox: list[InboxItem] = field(default_factory=list)
    conversation: ConversationRow | None = None
    contact: ContactRow | None = None
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
    c = conversations.c
    return (
        update(conversations)
        .where(c.id.in_(bindparam("ids", expanding=True)))
        .values(updated_at=c.updated_at)
    )


async def load(
    session: AsyncSession, conversation_ids: list[uuid.UUID], *, per_conversation: int
) -> dict[uuid.UUID, Loaded]:
    """The `per_conversation` oldest inbox rows and the conversation (with contact, provider,
    named chatbot and running session) of each of these locked conversations."""
    loaded = {c: Loaded() for c in conversation_ids}
    if not conversation_ids:
        return loaded
    s, ids = session, {"ids": list(conversation_ids)}
    inbox = statement(s, "chatbot.inbox", lambda: _inbox(s))
    for conversation_id, *item in await s.execute(inbox, {**ids, "n": per_conversation}):
        loaded[conversation_id].inbox.append(InboxItem(*item))
    found = statement(s, "chatbot.conversations", lambda: _conversations(s))
    n, m = len(_CONVERSATION_COLUMNS), len(_CONVERSATION_COLUMNS) + len(_CONTACT_COLUMNS)
    for row in await s.execute(found, ids):
        conversation = ConversationRow(*row[:n])
        one = loaded[conversation.id]
        one.conversation, one.contact = conversation, ContactRow(*row[n:m])
        one.provider, one.named = row[m], row[m + 1]
        if row[m + 2] is not None:  # the running session's id
            one.live = SessionRow(*row[m + 2 :])
    return loaded


def _inbox(session: AsyncSession) -> Any:
    """Each conversation's oldest inbox rows (at most `n`), oldest first, with the message."""
    inbox = INBOX
    ranked = (
        select(
            inbox.c.id,
            func.row_number()
            .over(partition_by=inbox.c.conversation_id, order_by=inbox.c.id)
            .label("rank"),
        )
        .where(among(session, inbox.c.conversation_id, "ids"))
        .subquery()
    )
    return (
        select(
            inbox.c.conversation_id,
            inbox.c.id,
            inbox.c.due_at,
            inbox.c.new_conversation,
            messages.c.type,
            messages.c.content,
        )
        .join(ranked, ranked.c.id == inbox.c.id)
        .outerjoin(messages, messages.c.id == inbox.c.message_id)
        .where(ranked.c.rank <= bindparam("n"))
        .order_by(inbox.c.id)
    )


def _conversations(session: AsyncSession) -> Any:
    """The conversations, their contacts, their numbers' providers and named chatbots, and
    their running sessions (at most one each: a unique index)."""
    channels, sessions = whatsapp_configs, SESSIONS
    running = and_(sessions.c.conversation_id == conversations.c.id, sessions.c.status == "active")
    return (
        select(
            *(conversations.c[n] for n in _CONVERSATION_COLUMNS),
            *(contacts.c[n] for n in _CONTACT_COLUMNS),
            channels.c.provider,
            channels.c.chatbot_id,
            *(sessions.c[n] for n in SESSION_COLUMNS),
        )
        .select_from(
            conversations.join(contacts, contacts.c.id == conversations.c.contact_id)
            .outerjoin(channels, channels.c.id == conversations.c.channel_id)
            .outerjoin(sessions, running)
        )
        .where(among(session, conversations.c.id, "ids"))
        .order_by(conversations.c.id)
    )
