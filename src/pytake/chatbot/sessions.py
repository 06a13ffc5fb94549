"""What other domains tell the chatbots: an agent took a conversation over, or resolved it."""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.models import ChatbotSession, Conversation
from pytake.models.base import utcnow


async def end_sessions(session: AsyncSession, conversation_id: uuid.UUID, reason: str) -> None:
    """End the conversation's running session, if any (in the caller's transaction)."""
    now = utcnow()
    await session.execute(
        update(ChatbotSession)
        .where(ChatbotSession.conversation_id == conversation_id, ChatbotSession.status == "active")
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
