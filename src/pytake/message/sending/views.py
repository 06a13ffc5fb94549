"""How the API shows a stored message."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.principal import Principal
from pytake.media.schemas import MediaOut
from pytake.media.views import media_for_messages
from pytake.message.sending.schemas import MessageErrorOut, MessageOut
from pytake.models import Message
from pytake.tenancy import get_scoped


async def get_message(
    session: AsyncSession, principal: Principal, message_id: uuid.UUID
) -> Message:
    return await get_scoped(session, Message, message_id, principal, what="Message")


def public_content(kind: str, content: dict[str, Any]) -> dict[str, Any]:
    """Content as the API shows it: texts as `{"text": ...}` in both directions."""
    if kind == "text" and "body" in content and "text" not in content:
        rest = {k: v for k, v in content.items() if k != "body"}
        return {"text": content["body"], **rest}
    return content


def message_view(message: Message) -> MessageOut:
    """The /v1 shape of a stored message."""
    error = None
    if message.status == "failed" or message.error_code is not None:
        error = MessageErrorOut(
            code=message.error_code, title=message.error_title, message=message.error_details
        )
    return MessageOut(
        id=message.id,
        whatsapp_message_id=message.provider_message_id,
        conversation_id=message.conversation_id,
        contact_id=message.contact_id,
        channel_id=message.channel_id,
        direction=message.direction,
        type=message.type,
        status=message.status,
        content=public_content(message.type, message.content or {}),
        to=message.recipient if message.direction == "outbound" else None,
        context_message_id=message.context_provider_message_id,
        sent_at=message.sent_at,
        delivered_at=message.delivered_at,
        read_at=message.read_at,
        failed_at=message.failed_at,
        error=error,
        attempts=message.attempts or 0,
        created_at=message.created_at,
    )


async def message_views(session: AsyncSession, messages: list[Message]) -> list[MessageOut]:
    """The /v1 shapes of stored messages, with their `media` objects (one query for all)."""
    media = await media_for_messages(session, messages)
    views = [message_view(m) for m in messages]
    for view in views:
        found = media.get(view.id)
        if found is not None:
            view.media = MediaOut(**found)
    return views
