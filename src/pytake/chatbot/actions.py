"""Making the interpreter's actions real, inside the step's transaction: queued replies (the
send pipeline's rows), handoffs, contact changes and per-node counters."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.scopes import Role
from pytake.chatbot.engine import Count, Handoff, Reply, SendTemplate, UpdateContact
from pytake.contact.events import record_contact_event
from pytake.contact.service import refresh_search_text, set_opt_in
from pytake.contact.tags import ensure_tags, link_tags, tag_ids
from pytake.conversation.events import record_conversation_event
from pytake.events import wake_after_commit
from pytake.kit.sql import is_postgresql, statement
from pytake.models import (
    ChatbotNodeStat,
    Contact,
    ContactTag,
    Conversation,
    Message,
    User,
)
from pytake.models.base import utcnow
from pytake.team.service import team_named

_MESSAGES = cast(Table, Message.__table__)
_STATS = cast(Table, ChatbotNodeStat.__table__)
# Replies of one step leave a moment apart, so that WhatsApp shows them in their order (the
# dispatcher sends what it claims concurrently).
REPLY_SPACING = timedelta(milliseconds=250)
DISPATCHER = "dispatch"
_ASSIGNABLE = (Role.AGENT.value, Role.ORG_ADMIN.value, Role.SUPER_ADMIN.value)


async def queue_replies(
    session: AsyncSession,
    conversation: Conversation,
    contact: Contact,
    replies: list[Reply | SendTemplate],
    now: datetime,
) -> int:
    """Queue the step's messages as `queued` outbound rows (the dispatcher sends them)."""
    if not replies or conversation.channel_id is None:
        return 0
    rows = []
    for i, reply in enumerate(replies):
        message_id = uuid.uuid4()
        kind, content = (
            (reply.type, reply.content)
            if isinstance(reply, Reply)
            else ("template", _template_content(reply.template))
        )
        rows.append(
            {
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
                "next_attempt_at": now + REPLY_SPACING * i,
                "created_at": now + timedelta(microseconds=i),
                "updated_at": now,
            }
        )
    await session.execute(statement(session, "chatbot.replies", lambda: insert(_MESSAGES)), rows)
    await session.execute(
        statement(session, "chatbot.replied", _replied_statement),
        {"conversation": conversation.id, "n": len(rows), "now": now},
    )
    wake_after_commit(session, DISPATCHER)
    return len(rows)


def _replied_statement() -> Any:
    conversations = cast(Table, Conversation.__table__)
    return (
        update(conversations)
        .where(conversations.c.id == bindparam("conversation"))
        .values(
            message_count=conversations.c.message_count + bindparam("n"),
            last_message_at=bindparam("now"),
            updated_at=bindparam("now"),
        )
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


async def hand_off(
    session: AsyncSession, conversation: Conversation, handoff: Handoff, now: datetime
) -> None:
    """The bot stops here: the conversation waits for people (pending in the named team's
    queue or the organisation's, or assigned to the named user), keeping what the bot
    collected; conversation.assigned fires."""
    assignee = await _assignee(session, conversation.organization_id, handoff.user_id)
    collected = dict(handoff.variables)
    collected["handoff_reason"] = handoff.reason
    team = None
    if handoff.team:
        # The name the flow asked for stays with the variables: with no such team (deleted,
        # renamed, never made) the organisation's queue takes the conversation.
        collected["handoff_team"] = handoff.team
        team = await team_named(session, conversation.organization_id, handoff.team)
    conversation.team_id = team.id if team is not None else None
    conversation.is_bot_active = False
    conversation.bot_variables = collected
    conversation.assigned_to_id = assignee
    conversation.status = "assigned" if assignee else "pending"
    conversation.resolved_at = None
    conversation.updated_at = now
    await session.flush()
    await record_conversation_event(session, conversation, "conversation.assigned")


async def _assignee(
    session: AsyncSession, organization_id: uuid.UUID, user_id: str | None
) -> uuid.UUID | None:
    if not user_id:
        return None
    try:
        wanted = uuid.UUID(str(user_id))
    except ValueError:
        return None
    user = await session.scalar(
        select(User).where(User.id == wanted, User.organization_id == organization_id)
    )
    if user is None or not user.is_active or user.role not in _ASSIGNABLE:
        return None  # an assignee who left: the queue takes the conversation
    return user.id


async def change_contact(session: AsyncSession, contact: Contact, change: UpdateContact) -> None:
    changes = change.changes
    names: list[str] = []
    for name in ("name", "email"):
        if changes.get(name):
            setattr(contact, name, str(changes[name])[: 320 if name == "email" else 200])
            names.append(name)
    if changes.get("attributes"):
        contact.attributes = {**(contact.attributes or {}), **changes["attributes"]}
        names.append("attributes")
    if "opt_out" in changes:
        set_opt_in(contact, not changes["opt_out"], "chatbot")
        names.append("opt_in")
    if names:
        refresh_search_text(contact)
        contact.updated_at = utcnow()
    if changes.get("add_tags"):
        ids = await ensure_tags(session, contact.organization_id, changes["add_tags"])
        await link_tags(session, [contact], list(ids.values()))
        names.append("tags")
    if changes.get("remove_tags"):
        ids = await tag_ids(session, contact.organization_id, changes["remove_tags"])
        if ids:
            await session.execute(
                delete(ContactTag).where(
                    ContactTag.contact_id == contact.id, ContactTag.tag_id.in_(list(ids.values()))
                )
            )
        names.append("tags")
    await session.flush()
    if names:
        await record_contact_event(session, contact, "contact.updated", names)


async def count_nodes(
    session: AsyncSession, organization_id: uuid.UUID, counts: list[Count]
) -> None:
    """Add the step's per-node counters (one upsert for all of them)."""
    if not counts:
        return
    totals: Counter[tuple[str, int, str, str]] = Counter(
        (c.flow_id, c.version, c.node, c.kind) for c in counts
    )
    rows: dict[tuple[str, int, str], dict[str, Any]] = {}
    for (flow_id, version, node, kind), n in totals.items():
        row = rows.setdefault(
            (flow_id, version, node),
            {
                "flow_id": uuid.UUID(flow_id),
                "version": version,
                "node": node[:100],
                "organization_id": organization_id,
                "entered": 0,
                "completed": 0,
                "dropped": 0,
            },
        )
        row[kind] += n
    postgres = is_postgresql(session)
    stmt = statement(session, "chatbot.count_nodes", lambda: _count_statement(postgres))
    # In key order, so two steps counting the same nodes never wait on each other in a circle.
    await session.execute(stmt, [rows[k] for k in sorted(rows)])


def _count_statement(postgres: bool) -> Any:
    stmt = (postgresql if postgres else sqlite).insert(_STATS)
    return stmt.on_conflict_do_update(
        index_elements=["flow_id", "version", "node"],
        set_={k: _STATS.c[k] + getattr(stmt.excluded, k) for k in ("entered", "completed",
                                                                  "dropped")},
    )  # fmt: skip
