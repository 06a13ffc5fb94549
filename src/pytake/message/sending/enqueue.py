"""Queueing a send: resolve the number and the contact, check they may be messaged, fill in the
variables, and store the `queued` message in the caller's transaction."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.principal import Principal
from pytake.channel.service import default_channel
from pytake.contact.events import record_contact_event
from pytake.contact.rows import new_contact_row
from pytake.contact.service import find_by_phone, valid_whatsapp_id
from pytake.conversation.events import record_conversation_created
from pytake.errors import FieldError, NotFound, ValidationFailed
from pytake.kit.phone import match_key
from pytake.kit.sql import insert_for
from pytake.media.outbound import check_media_send
from pytake.message.sending.draft import Draft, Target
from pytake.message.sending.errors import (
    ContactBlocked,
    ContactOptedOut,
    OutsideCustomerServiceWindow,
)
from pytake.message.sending.render import render_content
from pytake.message.sending.schemas import (
    MEDIA_KINDS,
    DocumentIn,
    ImageIn,
    InteractiveIn,
    TextIn,
    VideoIn,
    check_lengths,
)
from pytake.message.tables import contacts
from pytake.models import Channel, Contact, Conversation, Message
from pytake.models.base import utcnow
from pytake.models.conversation import LIVE_CONVERSATION_STATUSES
from pytake.template.service import check_template_send
from pytake.tenancy import get_scoped

_RENDERED_MODELS: dict[str, type[BaseModel]] = {
    "text": TextIn,
    "image": ImageIn,
    "video": VideoIn,
    "document": DocumentIn,
    "interactive": InteractiveIn,
}


async def enqueue(
    session: AsyncSession, principal: Principal, target: Target, draft: Draft
) -> Message:
    """Check the send and store it as a `queued` message (flushes, never commits): the
    conversation's or the number's contact, reachable, inside the customer-service window
    (templates excepted), its variables filled in, a template PyTake knows APPROVED and given
    the parameters it takes. A file sent by PyTake media id is checked first (pytake.media)."""
    if draft.type in MEDIA_KINDS:
        content = await check_media_send(session, principal, draft.type, draft.content)
        draft = dataclasses.replace(draft, content=content)
    if target.conversation_id is not None:
        conversation = await get_scoped(
            session, Conversation, target.conversation_id, principal, what="Conversation"
        )
        contact = await session.get(Contact, conversation.contact_id)
        channel = await _conversation_channel(session, conversation)
        if contact is None or contact.deleted_at is not None:
            raise ValidationFailed.on("conversation_id", "The conversation's contact was deleted")
    else:
        to = valid_whatsapp_id(target.to or "", "to")
        channel = await resolve_channel(session, principal, target.channel_id, target.instance_name)
        contact = await contact_for_number(session, principal.organization_id, to)
        conversation = None
    _check_reachable(contact)
    if draft.type != "template" and channel.provider != "evolution":
        await _check_window(session, contact, channel)
    content = _rendered(draft, contact)
    if draft.type == "template":
        await check_template_send(session, channel, content)
    if conversation is None:
        conversation = await live_conversation(session, contact, channel)
    return await _insert_message(session, conversation, contact, channel, draft, content)


async def _conversation_channel(session: AsyncSession, conversation: Conversation) -> Channel:
    channel = (
        await session.get(Channel, conversation.channel_id) if conversation.channel_id else None
    )
    if channel is None:
        raise ValidationFailed.on(
            "conversation_id", "The conversation's WhatsApp number no longer exists"
        )
    _check_active(channel, "conversation_id")
    return channel


async def resolve_channel(
    session: AsyncSession,
    principal: Principal,
    channel_id: uuid.UUID | None,
    instance_name: str | None = None,
) -> Channel:
    """The number to send from: by id, by name (legacy `instance_name`), else the default."""
    if channel_id is not None:
        try:
            channel = await get_scoped(session, Channel, channel_id, principal)
        except NotFound as exc:
            raise ValidationFailed.on("channel_id", "No such WhatsApp number") from exc
        field_name = "channel_id"
    elif instance_name and instance_name != "default":
        channel_or_none = await session.scalar(
            select(Channel)
            .where(
                Channel.organization_id == principal.organization_id,
                or_(
                    Channel.name == instance_name,
                    Channel.instance_name == instance_name,
                ),
            )
            .order_by(Channel.is_default.desc(), Channel.created_at)
            .limit(1)
        )
        if channel_or_none is None:
            raise ValidationFailed.on(
                "instance_name", f"No WhatsApp configuration named '{instance_name}'"
            )
        channel, field_name = channel_or_none, "instance_name"
    else:
        try:
            channel = await default_channel(session, principal.organization_id)
        except NotFound as exc:
            raise ValidationFailed.on(
                "channel_id", "The organisation has no default WhatsApp number; configure one"
            ) from exc
        field_name = "channel_id"
    _check_active(channel, field_name)
    return channel


def _check_active(channel: Channel, field_name: str) -> None:
    if not channel.is_active:
        raise ValidationFailed.on(field_name, f"The WhatsApp number '{channel.name}' is inactive")


async def contact_for_number(
    session: AsyncSession, organization_id: uuid.UUID, e164: str
) -> Contact:
    """The live contact for a number, created when unknown (safe against concurrent sends)."""
    contact = await find_by_phone(session, organization_id, e164)
    if contact is not None:
        return contact
    row = new_contact_row(organization_id, e164, match_key(e164), utcnow())
    new_id = row["id"]
    await session.execute(insert_for(session, contacts).values(row).on_conflict_do_nothing())
    contact = await find_by_phone(session, organization_id, e164)
    assert contact is not None
    if contact.id == new_id:  # not a concurrent send's contact: this transaction created it
        await record_contact_event(session, contact, "contact.created")
    return contact


def _check_reachable(contact: Contact) -> None:
    if contact.is_blocked:
        raise ContactBlocked()
    if not contact.opt_in:
        raise ContactOptedOut()


async def _check_window(session: AsyncSession, contact: Contact, channel: Channel) -> None:
    expires = await session.scalar(
        select(func.max(Conversation.window_expires_at)).where(
            Conversation.contact_id == contact.id, Conversation.channel_id == channel.id
        )
    )
    if expires is None or expires <= utcnow():
        raise OutsideCustomerServiceWindow()


def _rendered(draft: Draft, contact: Contact) -> dict[str, Any]:
    content = render_content(draft.type, draft.content, draft.variables, contact)
    model = _RENDERED_MODELS.get(draft.type)
    if content != draft.content and check_lengths(draft.type, content):
        raise ValidationFailed(
            details=[
                FieldError(e.field, e.message + " (after filling in variables)")
                for e in check_lengths(draft.type, content)
            ]
        )
    if model is not None and content != draft.content:
        try:
            model.model_validate(content)
        except ValidationError as exc:
            raise ValidationFailed(
                details=[
                    FieldError(
                        ".".join([draft.type, *(str(p) for p in err["loc"])]),
                        err["msg"] + " (after filling in variables)",
                    )
                    for err in exc.errors()
                ]
            ) from exc
    return content


async def live_conversation(
    session: AsyncSession, contact: Contact, channel: Channel
) -> Conversation:
    """The contact's newest live conversation on this number, or a new open one."""
    conversation = await session.scalar(
        select(Conversation)
        .where(
            Conversation.contact_id == contact.id,
            Conversation.channel_id == channel.id,
            Conversation.status.in_(LIVE_CONVERSATION_STATUSES),
        )
        .order_by(Conversation.created_at.desc())
        .limit(1)
    )
    if conversation is None:
        conversation = Conversation(
            organization_id=contact.organization_id,
            contact_id=contact.id,
            channel_id=channel.id,
            status="open",
            tags=[],
            message_count=0,
            unread_count=0,
        )
        session.add(conversation)
        await session.flush()
        await record_conversation_created(session, conversation, contact)
    return conversation


async def _insert_message(
    session: AsyncSession,
    conversation: Conversation,
    contact: Contact,
    channel: Channel,
    draft: Draft,
    content: dict[str, Any],
) -> Message:
    now = utcnow()
    message_id = uuid.uuid4()
    message = Message(
        id=message_id,
        organization_id=contact.organization_id,
        conversation_id=conversation.id,
        contact_id=contact.id,
        channel_id=channel.id,
        direction="outbound",
        type=draft.type,
        content=content,
        status="queued",
        context_provider_message_id=draft.context_message_id,
        callback_data=str(message_id),
        recipient=contact.whatsapp_id,
        attempts=0,
        # The request sends it itself right after commit; the dispatcher takes over only if
        # the request dies before claiming it.
        next_attempt_at=now + timedelta(seconds=30),
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation.id)
        .values(
            message_count=Conversation.message_count + 1,
            last_message_at=now,
            updated_at=now,
        )
    )
    await session.flush()
    return message
