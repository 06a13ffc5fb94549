"""/v1/chatbots (bots, flows, versions, stats) and the earlier /api/v1/flows."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from pytake.auth.dependencies import DbSession, require_scope
from pytake.auth.principal import Principal
from pytake.auth.scopes import Scope
from pytake.chatbot import service
from pytake.chatbot.schemas import (
    ChatbotCreateIn,
    ChatbotDetailOut,
    ChatbotList,
    ChatbotUpdateIn,
    FlowIn,
    FlowList,
    FlowOut,
    FlowStatsOut,
    FlowVersionList,
    FlowVersionOut,
    LegacyFlowCreated,
    LegacyFlowIn,
    LegacyFlowList,
    StartFlowIn,
    StartFlowOut,
)

router = APIRouter(prefix="/chatbots", tags=["chatbots"])
legacy_router = APIRouter(prefix="/flows", tags=["flows"])
conversation_router = APIRouter(prefix="/conversations", tags=["chatbots"])

Reader = Annotated[Principal, Depends(require_scope(Scope.CHATBOTS_READ))]
Writer = Annotated[Principal, Depends(require_scope(Scope.CHATBOTS_WRITE))]


@router.get("", response_model=ChatbotList)
async def list_chatbots(principal: Reader, session: DbSession) -> ChatbotList:
    """The organisation's chatbots, with conversations and messages their sessions had."""
    return ChatbotList(data=await service.list_chatbots(session, principal))


@router.post("", status_code=201, response_model=ChatbotDetailOut)
async def create_chatbot(
    body: ChatbotCreateIn, principal: Writer, session: DbSession
) -> ChatbotDetailOut:
    bot = await service.create_chatbot(session, principal, body)
    return await service.chatbot_detail(session, principal, bot.id)


@router.get("/{chatbot_id}", response_model=ChatbotDetailOut)
async def get_chatbot(
    chatbot_id: uuid.UUID, principal: Reader, session: DbSession
) -> ChatbotDetailOut:
    """A chatbot with its flows (and their nodes) and settings."""
    return await service.chatbot_detail(session, principal, chatbot_id)


@router.patch("/{chatbot_id}", response_model=ChatbotDetailOut)
async def update_chatbot(
    chatbot_id: uuid.UUID,
    body: ChatbotUpdateIn,
    principal: Writer,
    session: DbSession,
) -> ChatbotDetailOut:
    await service.update_chatbot(session, principal, chatbot_id, body)
    return await service.chatbot_detail(session, principal, chatbot_id)


@router.delete("/{chatbot_id}", status_code=204)
async def delete_chatbot(chatbot_id: uuid.UUID, principal: Writer, session: DbSession) -> Response:
    """Delete a chatbot, its flows and their sessions."""
    await service.delete_chatbot(session, principal, chatbot_id)
    return Response(status_code=204)


@router.get("/{chatbot_id}/flows", response_model=FlowList)
async def list_flows(chatbot_id: uuid.UUID, principal: Reader, session: DbSession) -> FlowList:
    return FlowList(data=await service.list_flows(session, principal, chatbot_id))


@router.post("/{chatbot_id}/flows", status_code=201, response_model=FlowOut)
async def create_flow(
    chatbot_id: uuid.UUID,
    body: FlowIn,
    principal: Writer,
    session: DbSession,
) -> FlowOut:
    """Save a flow (a draft until published). Invalid flows are a 422 naming the node and
    field; unreachable nodes come back as `warnings`."""
    return await service.create_flow(session, principal, chatbot_id, body)


@router.get("/{chatbot_id}/flows/{flow_id}", response_model=FlowOut)
async def get_flow(
    chatbot_id: uuid.UUID,
    flow_id: uuid.UUID,
    principal: Reader,
    session: DbSession,
) -> FlowOut:
    return service.flow_view(await service.get_flow(session, principal, chatbot_id, flow_id))


@router.put("/{chatbot_id}/flows/{flow_id}", response_model=FlowOut)
async def replace_flow(
    chatbot_id: uuid.UUID,
    flow_id: uuid.UUID,
    body: FlowIn,
    principal: Writer,
    session: DbSession,
) -> FlowOut:
    """Replace the draft; publish to make it the version new sessions start on."""
    return await service.replace_flow(session, principal, chatbot_id, flow_id, body)


@router.delete("/{chatbot_id}/flows/{flow_id}", status_code=204)
async def delete_flow(
    chatbot_id: uuid.UUID,
    flow_id: uuid.UUID,
    principal: Writer,
    session: DbSession,
) -> Response:
    await service.delete_flow(session, principal, chatbot_id, flow_id)
    return Response(status_code=204)


@router.post(
    "/{chatbot_id}/flows/{flow_id}/publish", status_code=201, response_model=FlowVersionOut
)
async def publish_flow(
    chatbot_id: uuid.UUID,
    flow_id: uuid.UUID,
    principal: Writer,
    session: DbSession,
) -> FlowVersionOut:
    """Freeze the draft as the next numbered version and activate the flow. Sessions already
    running keep the version they started on."""
    return await service.publish_flow(session, principal, chatbot_id, flow_id)


@router.get("/{chatbot_id}/flows/{flow_id}/versions", response_model=FlowVersionList)
async def list_versions(
    chatbot_id: uuid.UUID,
    flow_id: uuid.UUID,
    principal: Reader,
    session: DbSession,
) -> FlowVersionList:
    """Published versions, newest first."""
    return FlowVersionList(
        data=await service.list_versions(session, principal, chatbot_id, flow_id)
    )


@router.get("/{chatbot_id}/flows/{flow_id}/stats", response_model=FlowStatsOut)
async def flow_stats(
    chatbot_id: uuid.UUID,
    flow_id: uuid.UUID,
    principal: Reader,
    session: DbSession,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> FlowStatsOut:
    """Per node of each version: how many sessions entered it, completed it, and dropped
    there (expired, gave up, or stopped) — where customers leave."""
    return await service.flow_stats(session, principal, chatbot_id, flow_id, version)


@legacy_router.get("", response_model=LegacyFlowList)
async def legacy_list_flows(
    principal: Reader,
    session: DbSession,
    active: Annotated[bool | None, Query()] = None,
    category: Annotated[str | None, Query(max_length=100)] = None,
) -> LegacyFlowList:
    """Every flow of the organisation (`active`, `category` filter)."""
    flows = await service.legacy_list_flows(session, principal, active, category)
    return LegacyFlowList(flows=flows, total=len(flows))


@legacy_router.post("", status_code=201, response_model=LegacyFlowCreated)
async def legacy_create_flow(
    body: LegacyFlowIn, principal: Writer, session: DbSession
) -> LegacyFlowCreated:
    """A step-list flow, run by the organisation's default chatbot (published at once when
    `is_active`)."""
    flow = await service.legacy_create_flow(session, principal, body)
    return LegacyFlowCreated(
        id=flow.id,
        name=flow.name,
        description=flow.description,
        category=flow.category,
        is_active=flow.is_active,
        created_at=flow.created_at,
    )


@conversation_router.post("/{conversation_id}/flow", status_code=201, response_model=StartFlowOut)
async def start_flow(
    conversation_id: uuid.UUID,
    body: StartFlowIn,
    principal: Writer,
    session: DbSession,
) -> StartFlowOut:
    """Start a published flow in the conversation now (the `manual` trigger); a session
    already running there ends. The bot is switched back on for the conversation."""
    return await service.start_flow(session, principal, conversation_id, body.flow_id)
