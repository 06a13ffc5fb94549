"""conversation.created / .assigned / .resolved from a conversation row (payloads:
pytake.events.payloads)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pytake.contact.events import contact_brief_of
from pytake.events import record_many
from pytake.events.payloads import conversation_event, conversation_view
from pytake.models import Contact, Conversation


def conversation_view_of(conversation: Conversation) -> dict[str, Any]:
    return conversation_view(
        conversation.id,
        conversation.status,
        conversation.contact_id,
        conversation.channel_id,
        conversation.assigned_to_id,
        conversation.team_id,
    )


async def record_conversation_created(
    session: AsyncSession, conversation: Conversation, contact: Contact
) -> None:
    """conversation.created (with the contact), in the transaction that opened it."""
    event = conversation_event(
        conversation.organization_id,
        "conversation.created",
        conversation_view_of(conversation),
        contact_brief_of(contact),
    )
    await record_many(session, [event])


async def record_conversation_event(
    session: AsyncSession, conversation: Conversation, type: str
) -> None:
    """conversation.assigned / conversation.resolved, in the change's transaction."""
    event = conversation_event(
        conversation.organization_id, type, conversation_view_of(conversation)
    )
    await record_many(session, [event])
