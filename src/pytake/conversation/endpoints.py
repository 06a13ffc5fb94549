"""/v1/conversations (the inbox) and the earlier /api/v1/conversations/agent."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request

from pytake.auth.dependencies import DbSession, require_scope
from pytake.auth.principal import Principal
from pytake.auth.scopes import Scope
from pytake.chatbot.sessions import pause_for_agent
from pytake.conversation import service
from pytake.conversation.schemas import (
    ConversationDetailOut,
    ConversationOut,
    ConversationStatus,
    ConversationUpdateIn,
    LegacyAgentConversations,
    MessagesMeta,
    ReadOut,
)
from pytake.db import unit_of_work
from pytake.kit.pagination import MAX_OFFSET, Page, Paging, page_meta
from pytake.kit.responses import FastJSONResponse
from pytake.message.sending import service as sending
from pytake.message.sending.context import sending_context
from pytake.message.sending.draft import Draft, Target
from pytake.message.sending.endpoints import SEND_RESPONSES, send_response
from pytake.message.sending.idempotency import Idempotency
from pytake.message.sending.schemas import ReplyIn
from pytake.message.sending.views import message_views

router = APIRouter(prefix="/conversations", tags=["conversations"])
legacy_router = APIRouter(prefix="/conversations", tags=["conversations"])

Reader = Annotated[Principal, Depends(require_scope(Scope.CONVERSATIONS_READ))]
Writer = Annotated[Principal, Depends(require_scope(Scope.CONVERSATIONS_WRITE))]


@router.get("", response_model=Page[ConversationOut])
async def list_conversations(
    params: Paging,
    principal: Reader,
    session: DbSession,
    status: Annotated[ConversationStatus | None, Query()] = None,
    assigned_to: Annotated[uuid.UUID | None, Query()] = None,
    contact_id: Annotated[uuid.UUID | None, Query()] = None,
    team_id: Annotated[uuid.UUID | None, Query(description="Only this team's.")] = None,
    unassigned: Annotated[
        bool, Query(description="Only conversations no one is assigned to.")
    ] = False,
    tag: Annotated[
        str | None, Query(min_length=1, max_length=100, description="Only those with this tag.")
    ] = None,
    search: Annotated[
        str | None, Query(max_length=200, description="Contact name or number.")
    ] = None,
) -> Page[ConversationOut]:
    """Conversations, most recently active first."""
    f = service.ConversationFilter(
        status, assigned_to, contact_id, search, team_id=team_id, unassigned=unassigned, tag=tag
    )
    items, total = await service.list_conversations(session, principal, params, f)
    return Page[ConversationOut](data=items, meta=page_meta(params, total))


@router.get("/{conversation_id}", response_model=ConversationDetailOut)
async def get_conversation(
    conversation_id: uuid.UUID,
    principal: Reader,
    session: DbSession,
    messages_limit: Annotated[int, Query(ge=1, le=100)] = 50,
    messages_cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ConversationDetailOut:
    """A conversation with its most recent messages, oldest of the page first (as a chat reads);
    `messages_meta.next_cursor`, passed as `messages_cursor`, pages back to older ones."""
    conversation = await service.get_conversation(session, principal, conversation_id)
    messages, cursor = await service.conversation_messages(
        session, conversation_id, messages_limit, messages_cursor
    )
    return ConversationDetailOut(
        **conversation.model_dump(),
        messages=await message_views(session, list(messages)),
        messages_meta=MessagesMeta(
            limit=messages_limit, has_more=cursor is not None, next_cursor=cursor
        ),
    )


@router.patch("/{conversation_id}", response_model=ConversationOut)
async def update_conversation(
    conversation_id: uuid.UUID,
    body: ConversationUpdateIn,
    principal: Writer,
    session: DbSession,
) -> ConversationOut:
    """Assign (to an agent or admin of your organisation), route to a team, tag, resolve or
    reopen."""
    return await service.update_conversation(session, principal, conversation_id, body)


@router.post("/{conversation_id}/messages", status_code=201, responses=SEND_RESPONSES)
async def reply(
    request: Request,
    conversation_id: uuid.UUID,
    body: ReplyIn,
    principal: Writer,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> FastJSONResponse:
    """Reply in the conversation (same rules as `POST /v1/messages`)."""
    ctx = sending_context(request.app.state)
    if principal.is_user:
        async with unit_of_work(ctx.factory) as session:
            await pause_for_agent(session, principal.organization_id, conversation_id)
    scope = f"POST /v1/conversations/{conversation_id}/messages"
    receipt = await sending.send(
        ctx,
        principal,
        Target(conversation_id=conversation_id),
        Draft.of(body),
        Idempotency.of(idempotency_key, scope, body),
    )
    return send_response(receipt)


@router.post("/{conversation_id}/read", response_model=ReadOut)
async def mark_read(request: Request, conversation_id: uuid.UUID, principal: Writer) -> ReadOut:
    """Mark the customer's messages read (blue ticks on their phone) and clear the unread count."""
    ctx = sending_context(request.app.state)
    marked, unread = await service.mark_read(ctx, principal, conversation_id)
    return ReadOut(conversation_id=conversation_id, marked_read=marked, unread_count=unread)


@legacy_router.get("/agent", response_model=LegacyAgentConversations)
async def agent_conversations(
    principal: Reader,
    session: DbSession,
    agent_id: Annotated[uuid.UUID | None, Query()] = None,
    status: Annotated[Literal["pending", "active", "resolved"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> LegacyAgentConversations:
    """Conversations and their agents (pending: waiting, active: assigned, resolved)."""
    items, total = await service.legacy_agent_conversations(
        session, principal, agent_id, status, limit, offset
    )
    return LegacyAgentConversations(conversations=items, total=total, limit=limit, offset=offset)
