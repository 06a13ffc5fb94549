"""What other domains tell the chatbots: an agent took a conversation over (in the console, or
from the business's phone), or resolved it."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.models import ChatbotSession, Conversation, Message
from pytake.models.base import utcnow


async def end_sessions(session: AsyncSession, conversation_id: uuid.UUID, reason: str) -> None:
    """End the conversation's running session, if any (in the caller's transaction)."""
    await end_sessions_of(session, [conversation_id], reason)


async def end_sessions_of(
    session: AsyncSession, conversation_ids: Collection[uuid.UUID], reason: str
) -> None:
    """End the running sessions of these conversations (in the caller's transaction)."""
    now = utcnow()
    await session.execute(
        update(ChatbotSession)
        .where(
            ChatbotSession.conversation_id.in_(list(conversation_ids)),
            ChatbotSession.status == "active",
        )
        .values(status="ended", end_reason=reason, ended_at=now, waiting=None, wake_at=None,
                pending_http=None, updated_at=now)
    )  # fmt: skip


async def pause_for_agent(
    session: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID
) -> None:
    """A person replied in the conversation: the bot stops there until it is resolved (or
    the customer sends the chatbot's resume keyword)."""
    result = await session.execute(
        update(Conversation)
        .where(
            Conversation.id == conversation_id,
            Conversation.organization_id == organization_id,
            Conversation.is_bot_active.is_(True),
        )
        .values(is_bot_active=False)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        await end_sessions(session, conversation_id, "agent_replied")


async def pause_for_phone_replies(
    session: AsyncSession,
    organization_id: uuid.UUID,
    conversation_ids: Collection[uuid.UUID],
    *,
    gateway: bool,
) -> None:
    """Someone answered from the business's phone (an echo: the WhatsApp Business app on a
    Cloud API coexistence number, or the phone an Evolution instance runs on): the bot stops
    in those conversations as for an agent's reply in the console.

    On a gateway (Evolution), not while one of the conversation's own sends is in flight: it
    may echo an API send as a phone message before the send's answer gives us its id, and the
    bot must not pause on its own message. (Meta echoes only the Business app's messages.)"""
    if not conversation_ids:
        return
    in_flight = (
        set()
        if not gateway
        else set(
            await session.scalars(
                select(Message.conversation_id).where(
                    Message.conversation_id.in_(list(conversation_ids)),
                    Message.direction == "outbound",
                    Message.status == "sending",
                    Message.provider_message_id.is_(None),
                )
            )
        )
    )
    wanted = [c for c in conversation_ids if c not in in_flight]
    if not wanted:
        return
    paused = list(
        await session.scalars(
            update(Conversation)
            .where(
                Conversation.id.in_(wanted),
                Conversation.organization_id == organization_id,
                Conversation.is_bot_active.is_(True),
            )
            .values(is_bot_active=False)
            .returning(Conversation.id)
        )
    )
    if paused:
        await end_sessions_of(session, paused, "agent_replied_from_phone")
