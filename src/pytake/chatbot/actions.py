"""Making the interpreter's rarer actions real, inside the step's transaction: handoffs and
contact changes (replies and counters are the batch's common writes: pytake.chatbot.writes)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.scopes import Role
from pytake.chatbot.engine import Handoff, UpdateContact
from pytake.contact.events import record_contact_event
from pytake.contact.service import refresh_search_text, set_opt_in
from pytake.contact.tags import ensure_tags, link_tags, tag_ids
from pytake.conversation.events import record_conversation_event
from pytake.models import Contact, ContactTag, Conversation, User
from pytake.models.base import utcnow
from pytake.team.service import team_named

_ASSIGNABLE = (Role.AGENT.value, Role.ORG_ADMIN.value, Role.SUPER_ADMIN.value)


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
