"""/v1/campaigns: template broadcasts, their metrics, recipients and the run actions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.dependencies import DbSession, require_scope
from pytake.auth.principal import Principal
from pytake.auth.scopes import Scope
from pytake.campaign import service
from pytake.campaign.recipients import list_recipients
from pytake.campaign.schemas import (
    CampaignCreateIn,
    CampaignOut,
    CampaignPage,
    CampaignStatus,
    CampaignUpdateIn,
    RecipientPage,
    RecipientStatus,
)
from pytake.config import Settings
from pytake.kit.pagination import Paging, page_meta

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

Reader = Annotated[Principal, Depends(require_scope(Scope.CAMPAIGNS_READ))]
Writer = Annotated[Principal, Depends(require_scope(Scope.CAMPAIGNS_WRITE))]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _one(session: AsyncSession, request: Request, campaign: object) -> CampaignOut:
    return (await service.views(session, _settings(request), [campaign]))[0]  # type: ignore[list-item]


@router.post("", status_code=201, response_model=CampaignOut)
async def create_campaign(
    body: CampaignCreateIn,
    request: Request,
    principal: Writer,
    session: DbSession,
) -> CampaignOut:
    """Create a campaign: `draft` (start it with POST …/start) or `scheduled` (started by the
    worker at `scheduled_at`). `total_recipients` counts the audience now: opted in, not
    blocked, not deleted, one per number; the others are in `skipped_reasons`."""
    campaign = await service.create_campaign(session, principal, body)
    return await _one(session, request, campaign)


@router.get("", response_model=CampaignPage)
async def list_campaigns(
    request: Request,
    params: Paging,
    principal: Reader,
    session: DbSession,
    status: Annotated[CampaignStatus | None, Query(description="Only this status")] = None,
) -> CampaignPage:
    """The organisation's campaigns, newest first, with their metrics."""
    campaigns, total = await service.list_campaigns(session, principal, params, status)
    data = await service.views(session, _settings(request), campaigns)
    return CampaignPage(data=data, meta=page_meta(params, total))


@router.get("/{campaign_id}", response_model=CampaignOut)
async def get_campaign(
    campaign_id: uuid.UUID,
    request: Request,
    principal: Reader,
    session: DbSession,
) -> CampaignOut:
    """A campaign with its metrics, counted from its recipients and their messages now."""
    campaign = await service.get_campaign(session, principal, campaign_id)
    return await _one(session, request, campaign)


@router.patch("/{campaign_id}", response_model=CampaignOut)
async def update_campaign(
    campaign_id: uuid.UUID,
    body: CampaignUpdateIn,
    request: Request,
    principal: Writer,
    session: DbSession,
) -> CampaignOut:
    """Edit a `draft` or `scheduled` campaign (409 otherwise); checked as on creation."""
    campaign = await service.update_campaign(session, principal, campaign_id, body)
    return await _one(session, request, campaign)


@router.delete("/{campaign_id}", status_code=204)
async def delete_campaign(
    campaign_id: uuid.UUID, principal: Writer, session: DbSession
) -> Response:
    """Delete a `draft` campaign (409 otherwise: cancel a campaign that has run)."""
    await service.delete_campaign(session, principal, campaign_id)
    return Response(status_code=204)


def _action(action: str, doc: str) -> None:
    async def handler(
        campaign_id: uuid.UUID,
        request: Request,
        principal: Writer,
        session: DbSession,
    ) -> CampaignOut:
        campaign = await service.act(session, principal, campaign_id, action)
        return await _one(session, request, campaign)

    handler.__doc__ = doc
    handler.__name__ = f"{action}_campaign"
    router.add_api_route(
        f"/{{campaign_id}}/{action}",
        handler,
        methods=["POST"],
        response_model=CampaignOut,
        name=f"{action}_campaign",
        summary=f"{action.capitalize()} a campaign",
    )


_action(
    "start",
    "Start a `draft` or `scheduled` campaign now: its audience becomes recipient rows in one "
    "pass and sending begins (campaign.started).",
)
_action(
    "pause",
    "Pause a `running` campaign: messages not yet claimed by a worker are withdrawn and their "
    "recipients wait (campaign.paused).",
)
_action("resume", "Resume a `paused` campaign where it stopped.")
_action(
    "cancel",
    "Cancel a campaign that has not completed: nothing more is sent; what was sent keeps its "
    "state.",
)


@router.get("/{campaign_id}/recipients", response_model=RecipientPage)
async def campaign_recipients(
    campaign_id: uuid.UUID,
    request: Request,
    params: Paging,
    principal: Reader,
    session: DbSession,
    status: Annotated[RecipientStatus | None, Query(description="Only this status")] = None,
) -> RecipientPage:
    """Each recipient: contact, status, WhatsApp message id, error code and title, times."""
    campaign = await service.get_campaign(session, principal, campaign_id)
    rows, total = await list_recipients(
        session, campaign.id, params, status, _settings(request).campaign_reply_window_hours
    )
    return RecipientPage(data=rows, meta=page_meta(params, total))
