"""What a batch of bot steps writes in common, gathered while the steps run and written at the
end of the batch's transaction with one statement per table and kind: the sessions changed
and started, the queued replies (the send pipeline's rows), the conversations' counters, the
inbox rows answered, the node counters.

Sessions changed are written before those started: a conversation's session that ended in
the batch must be written as ended before its successor is inserted (one active session per
conversation, a unique index). The node counters go last: every conversation of a flow
writes those rows, so their lock is held only until the commit that follows.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Integer, Table, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.chatbot.engine import Count, Reply, SendTemplate
from pytake.chatbot.loading import (
    INBOX,
    SESSION_COLUMNS,
    SESSIONS,
    ContactRow,
    ConversationRow,
    SessionRow,
)
from pytake.events import wake_after_commit
from pytake.kit.rows import RowBuilder
from pytake.kit.sql import BatchSource, among, is_postgresql, statement
from pytake.message.tables import conversations, messages
from pytake.models import ChatbotNodeStat
from pytake.models.base import UTCDateTime

_REPLY_ROWS = RowBuilder(messages)  # every column, as one multi-row INSERT needs
_STATS = cast(Table, ChatbotNodeStat.__table__)
# Replies of one conversation leave a moment apart, so that WhatsApp shows them in their order
# (the dispatcher sends what it claims concurrently) — across the steps of a batch too.
REPLY_SPACING = timedelta(milliseconds=250)
DISPATCHER = "dispatch"


class Writes:
    """The batch's common writes, in the order the steps asked for them."""

    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = []
        # conversation → (replies queued, the time of the last)
        self.replied: dict[uuid.UUID, tuple[int, datetime]] = {}
        self.consumed: list[int] = []
        self.counts: list[tuple[uuid.UUID, Count]] = []
        # conversation → (the last reply's send time, its created_at)
        self._last: dict[uuid.UUID, tuple[datetime, datetime]] = {}
        self.sessions: dict[uuid.UUID, SessionRow] = {}  # changed or started, by id
        self.started: set[uuid.UUID] = set()

    def save_session(self, row: SessionRow, *, started: bool = False) -> None:
        """Write this session with the batch (its state when the batch ends)."""
        self.sessions[row.id] = row
        if started:
            self.started.add(row.id)

    def queue_replies(
        self,
        conversation: ConversationRow,
        contact: ContactRow,
        replies: list[Reply | SendTemplate],
        now: datetime,
    ) -> int:
        """Queue the step's messages as `queued` outbound rows (the dispatcher sends them)."""
        if not replies or conversation.channel_id is None:
            return 0
        send_at, created = self._last.get(conversation.id, (now - REPLY_SPACING, now))
        # later than this conversation's replies queued earlier in the batch
        send_at = max(now - REPLY_SPACING, send_at)
        created = max(now, created + timedelta(microseconds=1))
        for reply in replies:
            send_at, message_id = send_at + REPLY_SPACING, uuid.uuid4()
            kind, content = (
                (reply.type, reply.content)
                if isinstance(reply, Reply)
                else ("template", _template_content(reply.template))
            )
            self.replies.append(
                _reply_row(conversation, contact, message_id, kind, content, send_at, created, now)
            )
            created += timedelta(microseconds=1)
        self._last[conversation.id] = (send_at, created)
        n = self.replied.get(conversation.id, (0, now))[0] + len(replies)
        self.replied[conversation.id] = (n, now)
        return len(replies)

    def consume(self, inbox_id: int) -> None:
        self.consumed.append(inbox_id)

    def count(self, organization_id: uuid.UUID, counts: list[Count]) -> None:
        self.counts.extend((organization_id, c) for c in counts)

    async def flush(self, session: AsyncSession) -> None:
        """Write it all (in the caller's transaction; once: a batch has its own Writes)."""
        await session.flush()  # what went through the ORM (a handoff, a contact's change)
        s = session
        await self._write_sessions(s)
        if self.replies:
            await insert_rows(s, "replies", messages, _REPLY_ROWS.columns, self.replies)
            source = _replied_source(s)
            rows = [{"id": c, "n": n, "at": at} for c, (n, at) in sorted(self.replied.items())]
            stmt = statement(s, "chatbot.replied", lambda: _replied_statement(source.c))
            await s.execute(stmt, source.params(rows))
            wake_after_commit(s, DISPATCHER)
        if self.consumed:
            stmt = statement(s, "chatbot.consumed", lambda: _consumed_statement(s))
            await s.execute(stmt, {"ids": self.consumed})
        await count_nodes(s, self.counts)

    async def _write_sessions(self, session: AsyncSession) -> None:
        changed = [r for r in self.sessions.values() if r.id not in self.started]
        started = [r for r in self.sessions.values() if r.id in self.started]
        if changed:
            source = _changed_source(session)
            stmt = statement(session, "chatbot.sessions.changed",
                             lambda: _changed_statement(source.c))  # fmt: skip
            await session.execute(stmt, source.params([_as_dict(r) for r in changed]))
        if started:
            rows = [_as_dict(r) for r in started]
            await insert_rows(session, "sessions", SESSIONS, SESSION_COLUMNS, rows)


async def insert_rows(
    session: AsyncSession,
    name: str,
    table: Table,
    columns: tuple[str, ...],
    rows: list[dict[str, Any]],
) -> None:
    """Complete rows (every one of `columns`) in one INSERT: from one array per column on
    PostgreSQL (`INSERT … SELECT … FROM unnest`), an executemany elsewhere. asyncpg's
    executemany was a visible share of the consumer's CPU, per row and column."""
    source = BatchSource(session, name, **{n: table.c[n].type for n in columns})

    def build() -> Any:
        if not source.unnest:
            return insert(table)
        return insert(table).from_select(columns, select(*(source.c[n] for n in columns)))

    stmt = statement(session, f"chatbot.insert.{name}", build)
    await session.execute(stmt, source.params(rows) if source.unnest else rows)


# What a step may change of a running session (its ids, chatbot and start never change).
_CHANGING = ("flow_id", "version", "node", "status", "variables", "attempts", "steps",
             "waiting", "wake_at", "pending_http", "end_reason", "ended_at", "messages_in",
             "messages_out", "updated_at")  # fmt: skip


def _as_dict(row: SessionRow) -> dict[str, Any]:
    return {n: getattr(row, n) for n in SESSION_COLUMNS}


def _changed_source(session: AsyncSession) -> BatchSource:
    types = {n: SESSIONS.c[n].type for n in ("id", "organization_id", *_CHANGING)}
    return BatchSource(session, "changed", **types)


def _changed_statement(changed: Any) -> Any:
    """The batch's changed sessions in one UPDATE (each by its id, in its organisation)."""
    c = SESSIONS.c
    return (
        update(SESSIONS)
        .where(c.id == changed.id, c.organization_id == changed.organization_id)
        .values({n: changed[n] for n in _CHANGING})
    )


def _reply_row(
    conversation: ConversationRow,
    contact: ContactRow,
    message_id: uuid.UUID,
    kind: str,
    content: dict[str, Any],
    send_at: datetime,
    created: datetime,
    now: datetime,
) -> dict[str, Any]:
    return _REPLY_ROWS.row(
        id=message_id,
        organization_id=conversation.organization_id,
        conversation_id=conversation.id,
        contact_id=contact.id,
        channel_id=conversation.channel_id,
        direction="outbound",
        type=kind,
        content=content,
        status="queued",
        callback_data=str(message_id),
        recipient=contact.whatsapp_id,
        attempts=0,
        next_attempt_at=send_at,
        created_at=created,
        updated_at=now,
    )


def _template_content(template: dict[str, Any]) -> dict[str, Any]:
    language = template.get("language")
    content = {
        "name": template.get("name"),
        "language": language if isinstance(language, dict) else {"code": language},
    }
    if template.get("components"):
        content["components"] = template["components"]
    return content


def _replied_source(session: AsyncSession) -> BatchSource:
    return BatchSource(
        session, "replied", id=conversations.c.id.type, n=Integer(), at=UTCDateTime()
    )


def _replied_statement(replied: Any) -> Any:
    c = conversations.c
    return (
        update(conversations)
        .where(c.id == replied.id)
        .values(message_count=c.message_count + replied.n, last_message_at=replied.at,
                updated_at=replied.at)
    )  # fmt: skip


def _consumed_statement(session: AsyncSession) -> Any:
    return delete(INBOX).where(among(session, INBOX.c.id, "ids"))


async def count_nodes(session: AsyncSession, counts: list[tuple[uuid.UUID, Count]]) -> None:
    """Add the per-node counters (one upsert for all of them)."""
    if not counts:
        return
    totals: Counter[tuple[str, int, str, str]] = Counter(
        (c.flow_id, c.version, c.node, c.kind) for _, c in counts
    )
    orgs = {c.flow_id: org for org, c in counts}
    rows: dict[tuple[str, int, str], dict[str, Any]] = {}
    for (flow_id, version, node, kind), n in totals.items():
        row = rows.setdefault(
            (flow_id, version, node),
            {
                "flow_id": uuid.UUID(flow_id),
                "version": version,
                "node": node[:100],
                "organization_id": orgs[flow_id],
                "entered": 0,
                "completed": 0,
                "dropped": 0,
            },
        )
        row[kind] += n
    postgres = is_postgresql(session)
    stmt = statement(session, "chatbot.count_nodes", lambda: _count_statement(postgres))
    # In key order, so two batches counting the same nodes never wait on each other in a
    # circle.
    await session.execute(stmt, [rows[k] for k in sorted(rows)])


def _count_statement(postgres: bool) -> Any:
    stmt = (postgresql if postgres else sqlite).insert(_STATS)
    return stmt.on_conflict_do_update(
        index_elements=["flow_id", "version", "node"],
        set_={k: _STATS.c[k] + getattr(stmt.excluded, k) for k in ("entered", "completed",
                                                                  "dropped")},
    )  # fmt: skip
