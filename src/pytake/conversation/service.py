"""The inbox: list and read conversations, assign / tag / resolve them, mark them read."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, and_, exists, func, or_, select, type_coerce, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.principal import Principal
from pytake.auth.scopes import Role
from pytake.chatbot.sessions import end_sessions
from pytake.contact.search import search_pattern
from pytake.conversation.events import record_conversation_event
from pytake.conversation.schemas import (
    AssigneeOut,
    ConversationContactOut,
    ConversationOut,
    ConversationUpdateIn,
    LegacyAgentConversation,
)
from pytake.db import unit_of_work
from pytake.errors import ValidationFailed
from pytake.kit.pagination import PageParams
from pytake.kit.sql import is_postgresql
from pytake.message.sending.context import SendingContext
from pytake.message.sending.errors import whatsapp_error
from pytake.models import Contact, Conversation, Message, Team, User
from pytake.models.base import utcnow
from pytake.team.schemas import TeamBriefOut
from pytake.team.service import team_in_organization
from pytake.tenancy import get_scoped, scoped
from pytake.whatsapp.provider import ProviderError

# Roles whose users can be assigned conversations (viewers only read).
ASSIGNABLE_ROLES = (Role.AGENT.value, Role.ORG_ADMIN.value, Role.SUPER_ADMIN.value)
# The earlier API's three states.
LEGACY_STATUS = {
    "pending": ("open", "pending"),
    "active": ("assigned",),
    "resolved": ("resolved", "closed"),
}


@dataclass
class ConversationFilter:
    status: str | None = None
    assigned_to: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    search: str | None = None
    statuses: tuple[str, ...] | None = None
    team_id: uuid.UUID | None = None
    unassigned: bool = False
    tag: str | None = None


def _has_tag(session: AsyncSession, tag: str) -> Any:
    """Conversations whose `tags` (a JSON list) hold `tag`."""
    if is_postgresql(session):
        return type_coerce(Conversation.tags, JSONB).contains([tag])
    each = func.json_each(Conversation.tags).table_valued("value")
    return exists(select(1).select_from(each).where(each.c.value == tag))


def _base(principal: Principal) -> Select[Any]:
    stmt = (
        select(
            Conversation,
            Contact.name,
            Contact.profile_name,
            Contact.whatsapp_id,
            User.full_name,
            Team.name,
        )
        .join(Contact, Contact.id == Conversation.contact_id)
        .outerjoin(User, User.id == Conversation.assigned_to_id)
        .outerjoin(Team, Team.id == Conversation.team_id)
    )
    return scoped(cast(Select[Any], stmt), Conversation, principal)


def _filtered(session: AsyncSession, stmt: Select[Any], f: ConversationFilter) -> Select[Any]:
    if f.unassigned:
        stmt = stmt.where(Conversation.assigned_to_id.is_(None))
    if f.tag is not None:
        stmt = stmt.where(_has_tag(session, f.tag))
    if f.status is not None:
        stmt = stmt.where(Conversation.status == f.status)
    if f.statuses is not None:
        stmt = stmt.where(Conversation.status.in_(f.statuses))
    if f.assigned_to is not None:
        stmt = stmt.where(Conversation.assigned_to_id == f.assigned_to)
    if f.contact_id is not None:
        stmt = stmt.where(Conversation.contact_id == f.contact_id)
    if f.team_id is not None:
        stmt = stmt.where(Conversation.team_id == f.team_id)
    pattern = search_pattern(f.search) if f.search else None
    if pattern is not None:
        stmt = stmt.where(Contact.search_text.like(pattern, escape="\\"))
    return stmt


def view(row: Any) -> ConversationOut:
    """A (Conversation, contact name, profile name, whatsapp id, assignee name, team name)
    row → schema."""
    conversation, name, profile_name, whatsapp_id, assignee, team = row
    return ConversationOut(
        id=conversation.id,
        contact=ConversationContactOut(
            id=conversation.contact_id, name=name or profile_name, whatsapp_id=whatsapp_id
        ),
        channel_id=conversation.channel_id,
        status=conversation.status,
        assigned_to=AssigneeOut(id=conversation.assigned_to_id, name=assignee or "")
        if conversation.assigned_to_id
        else None,
        team=TeamBriefOut(id=conversation.team_id, name=team or "")
        if conversation.team_id
        else None,
        is_bot_active=conversation.is_bot_active,
        tags=list(conversation.tags or []),
        unread_count=conversation.unread_count,
        message_count=conversation.message_count,
        last_message_at=conversation.last_message_at,
        window_expires_at=conversation.window_expires_at,
        resolved_at=conversation.resolved_at,
        bot_variables=conversation.bot_variables,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
    )


async def list_conversations(
    session: AsyncSession, principal: Principal, params: PageParams, f: ConversationFilter
) -> tuple[list[ConversationOut], int]:
    """Most recently active first."""
    stmt = _filtered(session, _base(principal), f)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await session.execute(
        stmt.order_by(
            Conversation.last_message_at.desc().nulls_last(),
            Conversation.created_at.desc(),
            Conversation.id,
        )
        .offset(params.offset)
        .limit(params.limit)
    )
    return [view(row) for row in rows.all()], total


async def get_conversation(
    session: AsyncSession, principal: Principal, conversation_id: uuid.UUID
) -> ConversationOut:
    await get_scoped(session, Conversation, conversation_id, principal, what="Conversation")
    row = (await session.execute(_base(principal).where(Conversation.id == conversation_id))).one()
    return view(row)


def _encode_cursor(message: Message) -> str:
    raw = f"{message.created_at.isoformat()}|{message.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, message_id = raw.split("|")
        return datetime.fromisoformat(at), uuid.UUID(message_id)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed.on("messages_cursor", "Invalid cursor") from exc


async def conversation_messages(
    session: AsyncSession, conversation_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[Message], str | None]:
    """The most recent page of messages (before `cursor`) in chronological order, and the
    cursor of the page before it: a chat view reads a thread bottom-up and pages back."""
    stmt = select(Message).where(Message.conversation_id == conversation_id)
    if cursor:
        at, message_id = _decode_cursor(cursor)
        stmt = stmt.where(
            or_(
                Message.created_at < at,
                and_(Message.created_at == at, Message.id < message_id),
            )
        )
    rows = list(
        await session.scalars(
            stmt.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    older = _encode_cursor(rows[-1]) if more and rows else None
    rows.reverse()
    return rows, older


async def _assignee(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> User:
    user = await session.scalar(
        select(User).where(User.id == user_id, User.organization_id == principal.organization_id)
    )
    if user is None:
        raise ValidationFailed.on("assigned_to", "No such user in your organisation")
    if not user.is_active:
        raise ValidationFailed.on("assigned_to", "This user is deactivated")
    if user.role not in ASSIGNABLE_ROLES:
        raise ValidationFailed.on(
            "assigned_to", f"A user with the role '{user.role}' cannot take conversations"
        )
    return user


async def update_conversation(
    session: AsyncSession,
    principal: Principal,
    conversation_id: uuid.UUID,
    data: ConversationUpdateIn,
) -> ConversationOut:
    """Change status, assignee, tags or the bot flag (only the fields given)."""
    conversation = await get_scoped(
        session, Conversation, conversation_id, principal, what="Conversation", for_update=True
    )
    changes = data.model_dump(exclude_unset=True)
    events: list[str] = []
    if "assigned_to" in changes:
        _assign(conversation, await _assignee_or_none(session, principal, data.assigned_to))
        if data.assigned_to is not None:
            events.append("conversation.assigned")
    if data.status is not None and data.status != conversation.status:
        conversation.status = data.status
        if data.status == "resolved":
            events.append("conversation.resolved")
            # Resolving hands the conversation back to the chatbot for the next message.
            conversation.is_bot_active = True
            await end_sessions(session, conversation.id, "resolved")
    if conversation.status in ("resolved", "closed"):
        conversation.resolved_at = conversation.resolved_at or utcnow()
    else:
        conversation.resolved_at = None
    if data.tags is not None:
        conversation.tags = data.tags
    if "team_id" in changes:
        conversation.team_id = (
            (await team_in_organization(session, conversation.organization_id, data.team_id,
                                        "team_id")).id
            if data.team_id is not None
            else None
        )  # fmt: skip
    if data.is_bot_active is not None:
        conversation.is_bot_active = data.is_bot_active
    conversation.updated_at = utcnow()
    await session.flush()
    for event in events:
        await record_conversation_event(session, conversation, event)
    return await get_conversation(session, principal, conversation_id)


async def _assignee_or_none(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID | None
) -> User | None:
    return await _assignee(session, principal, user_id) if user_id is not None else None


def _assign(conversation: Conversation, user: User | None) -> None:
    conversation.assigned_to_id = user.id if user else None
    # Assignment moves an unowned conversation to `assigned`; unassigning moves it back.
    if user is not None and conversation.status in ("open", "pending"):
        conversation.status = "assigned"
    if user is None and conversation.status == "assigned":
        conversation.status = "open"


async def mark_read(
    ctx: SendingContext, principal: Principal, conversation_id: uuid.UUID
) -> tuple[int, int]:
    """Tell WhatsApp the customer's messages were read; returns (newly read, unread left)."""
    async with ctx.factory() as session:
        conversation = await get_scoped(
            session, Conversation, conversation_id, principal, what="Conversation"
        )
        contact = await session.get(Contact, conversation.contact_id)
        unread = conversation.unread_count
        latest = await session.scalar(
            select(Message)
            .where(
                Message.conversation_id == conversation.id,
                Message.direction == "inbound",
                Message.provider_message_id.is_not(None),
            )
            .order_by(Message.created_at.desc())
            .limit(1)
        )
    if latest is not None and latest.provider_message_id and unread:
        sender = (contact.wa_id or contact.whatsapp_id.lstrip("+")) if contact else None
        try:
            provider = await ctx.providers.get(conversation.channel_id)
            # WhatsApp marks every earlier message of the chat read along with this one.
            await provider.mark_read(latest.provider_message_id, sender=sender)
        except ProviderError as exc:
            raise whatsapp_error(exc, str(latest.id)) from exc
    async with unit_of_work(ctx.factory) as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id)
            .values(unread_count=0, updated_at=utcnow())
        )
    return unread, 0


def legacy_view(row: Any) -> LegacyAgentConversation:
    conversation, _name, _profile, whatsapp_id, _assignee, _team = row
    status = next(k for k, v in LEGACY_STATUS.items() if conversation.status in v)
    return LegacyAgentConversation(
        id=conversation.id,
        customer_phone=whatsapp_id,
        agent_id=conversation.assigned_to_id,
        status=status,
        started_at=conversation.created_at,
        last_message_at=conversation.last_message_at,
        message_count=conversation.message_count,
    )


async def legacy_agent_conversations(
    session: AsyncSession,
    principal: Principal,
    agent_id: uuid.UUID | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[LegacyAgentConversation], int]:
    f = ConversationFilter(assigned_to=agent_id, statuses=LEGACY_STATUS[status] if status else None)
    stmt = _filtered(session, _base(principal), f)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await session.execute(
        stmt.order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id)
        .offset(offset)
        .limit(limit)
    )
    return [legacy_view(row) for row in rows.all()], total
