"""Sending: validate, check window and consent, honour Idempotency-Key, queue, then send.

The request does not use its own session for this: the `queued` row must be committed before
the provider is called (so a crash never loses an accepted request), and the provider's answer
is recorded in a transaction of its own. So the flow runs explicit units of work:
  1. queue: idempotency key + contact + conversation + `queued` message, committed;
  2. claim the row (`sending`), committed — if the dispatcher got it first, answer 202;
  3. call the provider (waiting at most `request_wait_seconds`), record the outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.auth.principal import Principal
from pytake.channel.service import default_config
from pytake.config import Settings
from pytake.contact.rows import new_contact_row
from pytake.contact.service import find_by_phone, record_contact_created, valid_whatsapp_id
from pytake.db import unit_of_work
from pytake.errors import FieldError, NotFound, PyTakeError, ValidationFailed, render_v1
from pytake.events import record, wake_after_commit
from pytake.kit.phone import match_key
from pytake.message.sending import queue
from pytake.message.sending.dispatcher import (
    Dispatcher,
    ProviderCache,
    SendingTuning,
    record_events,
    send_jobs,
    worker_id,
)
from pytake.message.sending.errors import (
    ContactBlocked,
    ContactOptedOut,
    IdempotencyConflict,
    OutsideCustomerServiceWindow,
    whatsapp_error,
)
from pytake.message.sending.render import render_content
from pytake.message.sending.schemas import (
    DocumentIn,
    ImageIn,
    InteractiveIn,
    LegacySendIn,
    MessageErrorOut,
    MessageOut,
    ReplyIn,
    SendMessageIn,
    TemplateComponent,
    TemplateIn,
    TemplateLanguage,
    TextIn,
    VideoIn,
    check_lengths,
    check_message,
    graph_content,
)
from pytake.message.tables import contacts, insert_for
from pytake.models import Contact, Conversation, IdempotencyKey, Message, WhatsAppConfig
from pytake.models.base import utcnow
from pytake.models.conversation import LIVE_CONVERSATION_STATUSES
from pytake.tenancy import get_scoped

log = logging.getLogger("pytake.message.sending")

_RENDERED_MODELS: dict[str, type[BaseModel]] = {
    "text": TextIn,
    "image": ImageIn,
    "video": VideoIn,
    "document": DocumentIn,
    "interactive": InteractiveIn,
}


@dataclass
class SendingContext:
    """What sending needs from the app: sessions, providers, tuning, the in-process loop."""

    factory: async_sessionmaker[AsyncSession]
    settings: Settings
    providers: ProviderCache
    tuning: SendingTuning
    worker: str
    dispatcher: Dispatcher | None = None
    background: set[asyncio.Task[Any]] = field(default_factory=set)


def sending_context(state: Any) -> SendingContext:
    """The app's SendingContext (built on first use from `app.state`)."""
    ctx: SendingContext | None = getattr(state, "sending", None)
    if ctx is None:
        tuning = getattr(state, "sending_tuning", None) or SendingTuning.from_settings(
            state.settings
        )
        providers = ProviderCache(
            state.session_factory, state.settings, state.http, tuning.provider_cache_seconds
        )
        ctx = SendingContext(
            state.session_factory, state.settings, providers, tuning, worker_id("api")
        )
        state.sending = ctx
    return ctx


@dataclass(frozen=True)
class Draft:
    """A message before it is bound to a contact: type, Graph content, reply-to, variables."""

    type: str
    content: dict[str, Any]
    context_message_id: str | None
    variables: dict[str, Any]

    @classmethod
    def of(cls, body: SendMessageIn | ReplyIn) -> Draft:
        check_message(body)
        reply_to = body.context.message_id if body.context else None
        return cls(body.type, graph_content(body), reply_to, body.variables)


@dataclass(frozen=True)
class Target:
    """Who to send to: a number (with an optional channel) or an existing conversation."""

    to: str | None = None
    channel_id: uuid.UUID | None = None
    instance_name: str | None = None
    conversation_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Idempotency:
    key: str
    request_hash: str

    @classmethod
    def of(cls, key: str | None, scope: str, body: BaseModel) -> Idempotency | None:
        if key is None:
            return None
        if not key.strip() or len(key) > 255:
            raise ValidationFailed.on("Idempotency-Key", "Must be 1 to 255 characters")
        raw = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        return cls(key, hashlib.sha256(scope.encode() + b"\n" + raw).hexdigest())


@dataclass
class SendReply:
    """The HTTP answer of a send: 201 sent, 202 queued; `message` is the stored row's view."""

    status_code: int
    body: dict[str, Any]
    message: Message | None = None


# --- the pipeline --------------------------------------------------------------------------


async def send(
    ctx: SendingContext,
    principal: Principal,
    target: Target,
    draft: Draft,
    idempotency: Idempotency | None = None,
) -> SendReply:
    """Queue a message durably, then try to hand it to WhatsApp within a short wait."""
    if idempotency is not None:
        replay = await _replay(ctx, principal, idempotency)
        if replay is not None:
            return replay
    try:
        async with unit_of_work(ctx.factory) as session:
            key_row = await _take_key(session, principal, idempotency)
            message = await _enqueue(session, principal, target, draft)
            if key_row is not None:
                key_row.message_id = message.id
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key committed first.
        replay = await _replay(ctx, principal, idempotency) if idempotency else None
        if replay is None:
            raise
        return replay
    try:
        reply = await _deliver(ctx, message)
    except PyTakeError as err:
        await _remember(ctx, principal, idempotency, err.status, render_v1(err))
        raise
    await _remember(ctx, principal, idempotency, reply.status_code, reply.body)
    return reply


async def _take_key(
    session: AsyncSession, principal: Principal, idempotency: Idempotency | None
) -> IdempotencyKey | None:
    if idempotency is None:
        return None
    row = IdempotencyKey(
        organization_id=principal.organization_id,
        key=idempotency.key,
        request_hash=idempotency.request_hash,
    )
    session.add(row)
    await session.flush()  # takes the key now: a concurrent twin waits here, then conflicts
    return row


async def _replay(
    ctx: SendingContext, principal: Principal, idempotency: Idempotency
) -> SendReply | None:
    async with ctx.factory() as session:
        row = await session.scalar(
            select(IdempotencyKey).where(
                IdempotencyKey.organization_id == principal.organization_id,
                IdempotencyKey.key == idempotency.key,
            )
        )
        if row is None:
            return None
        if row.request_hash != idempotency.request_hash:
            raise IdempotencyConflict()
        if row.response_status is not None and row.response_body is not None:
            return SendReply(row.response_status, row.response_body)
        message = await session.get(Message, row.message_id) if row.message_id else None
    if message is None:
        return None
    return _reply_for(message)


async def _remember(
    ctx: SendingContext,
    principal: Principal,
    idempotency: Idempotency | None,
    status: int,
    body: dict[str, Any],
) -> None:
    if idempotency is None:
        return
    async with unit_of_work(ctx.factory) as session:
        await session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.organization_id == principal.organization_id,
                IdempotencyKey.key == idempotency.key,
                IdempotencyKey.response_status.is_(None),
            )
            .values(response_status=status, response_body=orjson.loads(orjson.dumps(body)))
        )


def _reply_for(message: Message) -> SendReply:
    status = "queued" if message.status in ("queued", "sending") else message.status
    body = {
        "id": str(message.id),
        "whatsapp_message_id": message.provider_message_id,
        "conversation_id": str(message.conversation_id),
        "to": message.recipient,
        "status": status,
        "created_at": message.created_at.isoformat().replace("+00:00", "Z"),
    }
    return SendReply(202 if status == "queued" else 201, body, message)


async def _deliver(ctx: SendingContext, message: Message) -> SendReply:
    async with unit_of_work(ctx.factory) as session:
        job = await queue.claim_one(session, ctx.worker, message.id)
    if job is None:  # the dispatcher took it: it is being sent
        return _reply_for(message)
    task = asyncio.create_task(_send_and_record(ctx, job))
    ctx.background.add(task)
    task.add_done_callback(ctx.background.discard)
    done, _ = await asyncio.wait({task}, timeout=ctx.tuning.request_wait_seconds)
    if not done:
        return _reply_for(message)  # still waiting on the provider: 202, recorded later
    outcome = task.result()
    if outcome is None:
        return _reply_for(message)
    if outcome.status == "failed" and outcome.error is not None:
        raise whatsapp_error(outcome.error, str(message.id))
    if outcome.status == "sent" and outcome.result is not None:
        message.status = "sent"
        message.provider_message_id = outcome.result.provider_message_id
    return _reply_for(message)


async def _send_and_record(ctx: SendingContext, job: queue.Job) -> queue.Outcome | None:
    try:
        outcomes = await send_jobs(ctx.providers, [job], 1)
        async with unit_of_work(ctx.factory) as session:
            await queue.record_outcomes(session, ctx.worker, outcomes, ctx.tuning.policy())
            await record_events(session, outcomes)
            if outcomes[0].status == "queued":
                # The retry is the dispatcher's, maybe in a `pytake worker` process: tell it
                # after commit (through Redis when there is one) rather than at its next poll.
                wake_after_commit(session, Dispatcher.name)
        if outcomes[0].status == "queued" and ctx.dispatcher is not None:
            ctx.dispatcher.wake()
        return outcomes[0]
    except Exception:
        # The row stays `sending`; reconciliation settles it from the status webhooks.
        log.exception("recording the outcome of message %s failed", job.id)
        return None


# --- queueing ------------------------------------------------------------------------------


async def _enqueue(
    session: AsyncSession, principal: Principal, target: Target, draft: Draft
) -> Message:
    if target.conversation_id is not None:
        conversation = await get_scoped(
            session, Conversation, target.conversation_id, principal, what="Conversation"
        )
        contact = await session.get(Contact, conversation.contact_id)
        config = await _conversation_channel(session, conversation)
        if contact is None or contact.deleted_at is not None:
            raise ValidationFailed.on("conversation_id", "The conversation's contact was deleted")
    else:
        to = valid_whatsapp_id(target.to or "", "to")
        config = await resolve_channel(session, principal, target.channel_id, target.instance_name)
        contact = await contact_for_number(session, principal.organization_id, to)
        conversation = None
    _check_reachable(contact)
    if draft.type != "template" and config.provider != "evolution":
        await _check_window(session, contact, config)
    content = _rendered(draft, contact)
    if conversation is None:
        conversation = await live_conversation(session, contact, config)
    return await _insert_message(session, conversation, contact, config, draft, content)


async def _conversation_channel(
    session: AsyncSession, conversation: Conversation
) -> WhatsAppConfig:
    config = (
        await session.get(WhatsAppConfig, conversation.channel_id)
        if conversation.channel_id
        else None
    )
    if config is None:
        raise ValidationFailed.on(
            "conversation_id", "The conversation's WhatsApp number no longer exists"
        )
    _check_active(config, "conversation_id")
    return config


async def resolve_channel(
    session: AsyncSession,
    principal: Principal,
    channel_id: uuid.UUID | None,
    instance_name: str | None = None,
) -> WhatsAppConfig:
    """The number to send from: by id, by name (legacy `instance_name`), else the default."""
    if channel_id is not None:
        try:
            config = await get_scoped(session, WhatsAppConfig, channel_id, principal)
        except NotFound as exc:
            raise ValidationFailed.on("channel_id", "No such WhatsApp number") from exc
        field_name = "channel_id"
    elif instance_name and instance_name != "default":
        config_or_none = await session.scalar(
            select(WhatsAppConfig)
            .where(
                WhatsAppConfig.organization_id == principal.organization_id,
                or_(
                    WhatsAppConfig.name == instance_name,
                    WhatsAppConfig.instance_name == instance_name,
                ),
            )
            .order_by(WhatsAppConfig.is_default.desc(), WhatsAppConfig.created_at)
            .limit(1)
        )
        if config_or_none is None:
            raise ValidationFailed.on(
                "instance_name", f"No WhatsApp configuration named '{instance_name}'"
            )
        config, field_name = config_or_none, "instance_name"
    else:
        try:
            config = await default_config(session, principal.organization_id)
        except NotFound as exc:
            raise ValidationFailed.on(
                "channel_id", "The organisation has no default WhatsApp number; configure one"
            ) from exc
        field_name = "channel_id"
    _check_active(config, field_name)
    return config


def _check_active(config: WhatsAppConfig, field_name: str) -> None:
    if not config.is_active:
        raise ValidationFailed.on(field_name, f"The WhatsApp number '{config.name}' is inactive")


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
        await record_contact_created(session, contact)
    return contact


def _check_reachable(contact: Contact) -> None:
    if contact.is_blocked:
        raise ContactBlocked()
    if not contact.opt_in:
        raise ContactOptedOut()


async def _check_window(session: AsyncSession, contact: Contact, config: WhatsAppConfig) -> None:
    expires = await session.scalar(
        select(func.max(Conversation.window_expires_at)).where(
            Conversation.contact_id == contact.id, Conversation.channel_id == config.id
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
    session: AsyncSession, contact: Contact, config: WhatsAppConfig
) -> Conversation:
    """The contact's newest live conversation on this number, or a new open one."""
    conversation = await session.scalar(
        select(Conversation)
        .where(
            Conversation.contact_id == contact.id,
            Conversation.channel_id == config.id,
            Conversation.status.in_(LIVE_CONVERSATION_STATUSES),
        )
        .order_by(Conversation.created_at.desc())
        .limit(1)
    )
    if conversation is None:
        conversation = Conversation(
            organization_id=contact.organization_id,
            contact_id=contact.id,
            channel_id=config.id,
            status="open",
            tags=[],
            message_count=0,
            unread_count=0,
        )
        session.add(conversation)
        await session.flush()
        await record(
            session,
            contact.organization_id,
            "conversation.created",
            _created(conversation, contact),
        )
    return conversation


def _created(conversation: Conversation, contact: Contact) -> dict[str, Any]:
    # The same payload as a conversation a customer's first message opens (message ingest).
    return {
        "conversation": {
            "id": conversation.id,
            "status": conversation.status,
            "contact_id": contact.id,
            "channel_id": conversation.channel_id,
            "assigned_to_id": conversation.assigned_to_id,
        },
        "contact": {
            "id": contact.id,
            "name": contact.name or contact.profile_name,
            "whatsapp_id": contact.whatsapp_id,
            "opt_in": contact.opt_in,
        },
    }


async def _insert_message(
    session: AsyncSession,
    conversation: Conversation,
    contact: Contact,
    config: WhatsAppConfig,
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
        channel_id=config.id,
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


# --- reads ---------------------------------------------------------------------------------


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


def legacy_message(body: LegacySendIn) -> SendMessageIn:
    """The /v1 request equivalent to an /api/v1/whatsapp/send body."""
    if body.message_type == "template":
        if not body.template_name:
            raise ValidationFailed.on("template_name", "Required for template messages")
        components = (
            [TemplateComponent(type="body", parameters=body.template_parameters)]
            if body.template_parameters
            else None
        )
        template = TemplateIn(
            name=body.template_name,
            language=TemplateLanguage(code=body.template_language),
            components=components,
        )
        return SendMessageIn(to=body.to, type="template", template=template)
    if not body.message:
        raise ValidationFailed.on("message", "Required for text messages")
    return SendMessageIn(to=body.to, type="text", text=TextIn(body=body.message))
