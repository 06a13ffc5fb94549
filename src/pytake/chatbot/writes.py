"""What a batch of bot steps writes in common, gathered while the steps run and written at the
end of the batch's transaction with one statement per table: the queued replies (the send
pipeline's rows), the conversations' counters, the inbox rows answered, the node counters.

The sessions themselves are ORM rows the steps change; they are flushed first. The node
counters go last: every conversation of a flow writes those rows, so their lock is held only
until the commit that follows.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Integer, Table, delete, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.chatbot.engine import Count, Reply, SendTemplate
from pytake.events import wake_after_commit
from pytake.kit.sql import BatchSource, among, is_postgresql, statement
from pytake.models import ChatbotInbox, ChatbotNodeStat, Contact, Conversation, Message
from pytake.models.base import UTCDateTime

_MESSAGES = cast(Table, Message.__table__)
_CONVERSATIONS = cast(Table, Conversation.__table__)
_INBOX = cast(Table, ChatbotInbox.__table__)
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

    def queue_replies(
        self,
        conversation: Conversation,
        contact: Contact,
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
        await session.flush()
        s = session
        if self.replies:
            await s.execute(
                statement(s, "chatbot.replies", lambda: insert(_MESSAGES)), self.replies
            )
            source = _replied_source(s)
            rows = [{"id": c, "n": n, "at": at} for c, (n, at) in sorted(self.replied.items())]
            stmt = statement(s, "chatbot.replied", lambda: _replied_statement(source.c))
            await s.execute(stmt, source.params(rows))
            wake_after_commit(s, DISPATCHER)
        if self.consumed:
            stmt = statement(s, "chatbot.consumed", lambda: _consumed_statement(s))
            await s.execute(stmt, {"ids": self.consumed})
        await count_nodes(s, self.counts)


def _reply_row(
    conversation: Conversation,
    contact: Contact,
    message_id: uuid.UUID,
    kind: str,
    content: dict[str, Any],
    send_at: datetime,
    created: datetime,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": message_id,
        "organization_id": conversation.organization_id,
        "conversation_id": conversation.id,
        "contact_id": contact.id,
        "channel_id": conversation.channel_id,
        "direction": "outbound",
        "type": kind,
        "content": content,
        "status": "queued",
        "callback_data": str(message_id),
        "recipient": contact.whatsapp_id,
        "attempts": 0,
        "next_attempt_at": send_at,
        "created_at": created,
        "updated_at": now,
    }


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
        session, "replied", id=_CONVERSATIONS.c.id.type, n=Integer(), at=UTCDateTime()
    )


def _replied_statement(replied: Any) -> Any:
    c = _CONVERSATIONS.c
    return (
        update(_CONVERSATIONS)
        .where(c.id == replied.id)
        .values(message_count=c.message_count + replied.n, last_message_at=replied.at,
                updated_at=replied.at)
    )  # fmt: skip


def _consumed_statement(session: AsyncSession) -> Any:
    return delete(_INBOX).where(among(session, _INBOX.c.id, "ids"))


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
