"""The hand-off: a campaign's next pending recipients become `queued` template messages of the
durable send pipeline, in one transaction with the recipients marked `sending`.

Set-based: the batch's rows travel as one array per column on PostgreSQL
(`INSERT … SELECT … FROM unnest(…)`, `UPDATE … FROM unnest(…)`: pytake.message.tables
.BatchSource), as executemany on SQLite. Per batch: one SELECT of the recipients with their
contacts and live conversations, the new conversations (and their conversation.created events)
when there are any, then the messages INSERT, the conversations' counters and the recipients,
each one statement whatever the batch's size.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import JSON, String, Table, bindparam, func, insert, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.events import DomainEvent, record_many
from pytake.kit.rows import RowBuilder
from pytake.kit.sql import BatchSource, statement
from pytake.message.sending.render import contact_context, render_text
from pytake.models import Contact, Conversation, Message
from pytake.models.base import UTCDateTime
from pytake.models.campaign import Campaign, recipients_table
from pytake.models.conversation import LIVE_CONVERSATION_STATUSES

_messages = cast(Table, Message.__table__)
_conversations = cast(Table, Conversation.__table__)
_contacts = cast(Table, Contact.__table__)
_message_rows = RowBuilder(_messages)
_conversation_rows = RowBuilder(_conversations)
_UUID = recipients_table.c.contact_id.type
_TEXT = recipients_table.c.skip_reason.type


def _pending_stmt() -> Any:
    """The next pending recipients with what a send needs: the contact, and its newest live
    conversation on the campaign's number (none: one is opened)."""
    r, c, conv = recipients_table.c, _contacts.c, _conversations.c
    live = (
        select(conv.id)
        .where(
            conv.contact_id == r.contact_id,
            conv.channel_id == bindparam("b_channel"),
            conv.status.in_(LIVE_CONVERSATION_STATUSES),
        )
        .order_by(conv.created_at.desc())
        .limit(1)
        .correlate(recipients_table)
        .scalar_subquery()
    )
    return (
        select(
            r.contact_id,
            r.phone,
            c.id,
            c.organization_id,
            c.name,
            c.profile_name,
            c.whatsapp_id,
            c.email,
            c.attributes,
            c.opt_in,
            c.is_blocked,
            c.deleted_at,
            live.label("conversation_id"),
        )
        .join(_contacts, c.id == r.contact_id)
        .where(r.campaign_id == bindparam("b_campaign"), r.status == "pending")
        .limit(bindparam("b_limit"))
    )


async def pending_recipients(session: AsyncSession, campaign: Campaign, limit: int) -> list[Any]:
    stmt = statement(session, "campaign.pending", _pending_stmt)
    params = {"b_campaign": campaign.id, "b_channel": campaign.channel_id, "b_limit": limit}
    return list((await session.execute(stmt, params)).all())


def _waiting_stmt() -> Any:
    # Driven from the send queue's partial index (it holds only queued messages) by a range
    # on its key, each candidate checked against the campaign by its recipient's primary key
    # in a scalar subquery (PostgreSQL runs it per row; it cannot turn it into a join). As a
    # join to the recipients, the prepared statement's generic plan — over statistics of a
    # young table — started from the campaign's recipients instead: all 100,000 of them,
    # 210 ms for each hand-off at the scale (bench/campaigns.py). Counted: what is
    # overdue, not what waits for a later slot (that is the pacing, not the pipeline).
    r, m = recipients_table.c, _messages.c
    recipient_message = (
        select(r.message_id)
        .where(r.campaign_id == bindparam("b_campaign"), r.contact_id == m.contact_id)
        .correlate(_messages)
        .scalar_subquery()
    )
    overdue = (
        select(m.id)
        .where(
            m.next_attempt_at.is_not(None),
            m.next_attempt_at <= bindparam("b_now", type_=UTCDateTime()),
            m.status == "queued",
            recipient_message == m.id,
        )
        .limit(bindparam("b_cap"))
        .subquery()
    )
    return select(func.count()).select_from(overdue)


async def waiting(session: AsyncSession, campaign: Campaign, cap: int, now: datetime) -> int:
    """How many of the campaign's messages are due and still wait for the send pipeline
    (`queued`), up to cap."""
    stmt = statement(session, "campaign.waiting", _waiting_stmt)
    params = {"b_campaign": campaign.id, "b_cap": cap, "b_now": now}
    found = await session.scalar(stmt, params)
    return int(found or 0)


def unreachable(row: Any) -> str | None:
    """Why a contact may not be messaged now (it opted out or was blocked mid-campaign)."""
    if row.deleted_at is not None:
        return "deleted"
    if row.is_blocked:
        return "blocked"
    if not row.opt_in:
        return "opted_out"
    return None


def rendered(variables: dict[str, Any], contact: Any) -> dict[str, Any]:
    """The campaign's variables with `{{contact.…}}` filled in for this contact."""
    if not any(isinstance(v, str) and "{" in v for v in variables.values()):
        return variables
    context = {"contact": contact_context(cast(Contact, contact))}
    return {
        key: render_text(value, context, f"message_content.variables.{key}")
        if isinstance(value, str)
        else value
        for key, value in variables.items()
    }


def _handed_source(session: AsyncSession) -> BatchSource:
    return BatchSource(session, "handed", contact=_UUID, message=_UUID, conv=_UUID)


def _handed_stmt(session: AsyncSession) -> Any:
    handed, r = _handed_source(session).c, recipients_table.c
    now = bindparam("b_now", type_=UTCDateTime())
    return (
        update(recipients_table)
        .where(r.campaign_id == bindparam("b_campaign"), r.contact_id == handed.contact)
        .values(
            status="sending",
            message_id=handed.message,
            conversation_id=handed.conv,
            queued_at=now,
            updated_at=now,
        )
    )


def _touched_source(session: AsyncSession) -> BatchSource:
    return BatchSource(session, "touched", id=_UUID)


def _touched_stmt(session: AsyncSession) -> Any:
    touched, conv = _touched_source(session).c, _conversations.c
    now = bindparam("b_now", type_=UTCDateTime())
    return (
        update(_conversations)
        .where(conv.id == touched.id)
        .values(message_count=conv.message_count + 1, last_message_at=now, updated_at=now)
    )


def _skipped_source(session: AsyncSession) -> BatchSource:
    return BatchSource(session, "skipped", contact=_UUID, reason=_TEXT, title=_TEXT)


def _skipped_stmt(session: AsyncSession) -> Any:
    skipped, r = _skipped_source(session).c, recipients_table.c
    return (
        update(recipients_table)
        .where(r.campaign_id == bindparam("b_campaign"), r.contact_id == skipped.contact)
        .values(
            status="skipped",
            skip_reason=skipped.reason,
            error_title=skipped.title,
            updated_at=bindparam("b_now", type_=UTCDateTime()),
        )
    )


def _source_for(session: AsyncSession, name: str, table: Table, rows: RowBuilder) -> BatchSource:
    # JSON documents travel as text and are cast by PostgreSQL: an array's bind processing
    # would take a list-valued document (conversations.tags) for one of its dimensions.
    types = {n: String() if n in _json(table) else table.c[n].type for n in rows.columns}
    return BatchSource(session, name, **types)


@functools.cache
def _json(table: Table) -> frozenset[str]:
    return frozenset(c.key for c in table.columns if isinstance(c.type, JSON))


def _insert_stmt(session: AsyncSession, name: str, table: Table, rows: RowBuilder) -> Any:
    """INSERT of a batch of `rows` into `table`: from arrays on PostgreSQL, executemany else."""
    source = _source_for(session, name, table, rows)
    if not source.unnest:
        return insert(table)  # SQLite: an executemany, sent as multi-row INSERTs
    json = _json(table)
    columns = [sql_cast(source.c[n], JSONB()) if n in json else source.c[n] for n in rows.columns]
    return insert(table).from_select(rows.columns, select(*columns))


def _text(document: Any) -> str | None:
    # As the engine serialises JSON columns (pytake.db).
    if document is None:
        return None
    return orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS).decode()


async def insert_rows(
    session: AsyncSession, name: str, table: Table, rows: RowBuilder, values: list[dict[str, Any]]
) -> None:
    stmt = statement(session, name, lambda: _insert_stmt(session, name, table, rows))
    source = _source_for(session, name, table, rows)
    if not source.unnest:
        await session.execute(stmt, values)
        return
    json = _json(table)
    encoded = [{n: _text(v) if n in json else v for n, v in row.items()} for row in values]
    await session.execute(stmt, source.params(encoded))


class Batch:
    """One hand-off's rows: messages (and new conversations) to insert, recipients to mark."""

    def __init__(self, campaign: Campaign, now: datetime) -> None:
        self.campaign = campaign
        self.now = now
        self.sends: list[tuple[Any, dict[str, Any]]] = []
        self.skipped: list[dict[str, Any]] = []

    def skip(self, contact_id: uuid.UUID, reason: str, title: str | None) -> None:
        self.skipped.append(
            {"contact": contact_id, "reason": reason, "title": (title or "")[:300] or None}
        )

    def send(self, row: Any, content: dict[str, Any]) -> None:
        self.sends.append((row, content))

    async def write(self, session: AsyncSession, slot: datetime, rate: float) -> None:
        """Insert the messages, due one slot of 1/rate s apart from `slot`; mark the
        recipients `sending`; count the messages on their conversations."""
        campaign, now = self.campaign, self.now
        assert campaign.channel_id is not None
        conversations = await _conversations_for(session, campaign, [r for r, _ in self.sends], now)
        messages, handed = [], []
        step = 1.0 / rate
        for index, (row, content) in enumerate(self.sends):
            message_id = uuid.uuid4()
            conversation_id = conversations[row.contact_id]
            messages.append(
                _message_rows.row(
                    id=message_id,
                    organization_id=campaign.organization_id,
                    conversation_id=conversation_id,
                    contact_id=row.contact_id,
                    channel_id=campaign.channel_id,
                    direction="outbound",
                    type="template",
                    content=content,
                    status="queued",
                    callback_data=str(message_id),
                    recipient=row.whatsapp_id,
                    attempts=0,
                    next_attempt_at=slot + timedelta(seconds=index * step),
                    created_at=now,
                    updated_at=now,
                )
            )
            handed.append(
                {"contact": row.contact_id, "message": message_id, "conv": conversation_id}
            )
        await insert_rows(session, "campaign.messages", _messages, _message_rows, messages)
        touched = [{"id": conversation_id} for conversation_id in set(conversations.values())]
        await session.execute(
            statement(session, "campaign.touch_conversations", lambda: _touched_stmt(session)),
            _touched_source(session).params(touched, now=now),
        )
        await session.execute(
            statement(session, "campaign.handed", lambda: _handed_stmt(session)),
            _handed_source(session).params(handed, campaign=campaign.id, now=now),
        )

    async def write_skipped(self, session: AsyncSession) -> None:
        if not self.skipped:
            return
        await session.execute(
            statement(session, "campaign.skipped", lambda: _skipped_stmt(session)),
            _skipped_source(session).params(self.skipped, campaign=self.campaign.id, now=self.now),
        )


async def _conversations_for(
    session: AsyncSession, campaign: Campaign, rows: list[Any], now: datetime
) -> dict[uuid.UUID, uuid.UUID]:
    """contact id → its live conversation on the campaign's number; the contacts without one
    get one opened (with conversation.created, as a send opens one)."""
    found = {row.contact_id: row.conversation_id for row in rows if row.conversation_id}
    new_rows, events = [], []
    for row in rows:
        if row.contact_id in found:
            continue
        conversation_id = uuid.uuid4()
        found[row.contact_id] = conversation_id
        new_rows.append(
            _conversation_rows.row(
                id=conversation_id,
                organization_id=campaign.organization_id,
                contact_id=row.contact_id,
                channel_id=campaign.channel_id,
                status="open",
                is_bot_active=True,
                tags=[],
                message_count=0,
                unread_count=0,
                created_at=now,
                updated_at=now,
            )
        )
        events.append(_conversation_created(campaign, row, conversation_id))
    if new_rows:
        await insert_rows(
            session, "campaign.conversations", _conversations, _conversation_rows, new_rows
        )
        await record_many(session, events)
    return found


def _conversation_created(campaign: Campaign, row: Any, conversation_id: uuid.UUID) -> DomainEvent:
    return DomainEvent(
        campaign.organization_id,
        "conversation.created",
        {
            "conversation": {
                "id": conversation_id,
                "status": "open",
                "contact_id": row.contact_id,
                "channel_id": campaign.channel_id,
                "assigned_to_id": None,
            },
            "contact": {
                "id": row.contact_id,
                "name": row.name or row.profile_name,
                "whatsapp_id": row.whatsapp_id,
                "opt_in": row.opt_in,
            },
        },
    )
