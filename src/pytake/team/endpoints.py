"""/v1/teams: the organisation's teams and their members."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.dependencies import DbSession, require_scope
from pytake.auth.principal import Principal
from pytake.auth.scopes import Scope
from pytake.kit.pagination import Page, Paging, page_meta
from pytake.team import service
from pytake.team.schemas import TeamCreateIn, TeamMemberIn, TeamOut, TeamUpdateIn

router = APIRouter(prefix="/teams", tags=["teams"])

Reader = Annotated[Principal, Depends(require_scope(Scope.TEAMS_READ))]
Writer = Annotated[Principal, Depends(require_scope(Scope.TEAMS_WRITE))]


async def _out(session: AsyncSession, team: object) -> TeamOut:
    [out] = await service.views(session, [team])  # type: ignore[list-item]
    return out


@router.get("", response_model=Page[TeamOut])
async def list_teams(
    params: Paging,
    principal: Reader,
    session: DbSession,
) -> Page[TeamOut]:
    """The organisation's teams, by name, with their members."""
    teams, total = await service.list_teams(session, principal, params)
    return Page[TeamOut](data=await service.views(session, teams), meta=page_meta(params, total))


@router.post("", status_code=201, response_model=TeamOut)
async def create_team(body: TeamCreateIn, principal: Writer, session: DbSession) -> TeamOut:
    """Create a team. Chatbot handoffs (`assign_to: {"team": …}`, `transfer_to_<team>`) route
    conversations to the team of that name."""
    return await _out(session, await service.create_team(session, principal, body))


@router.get("/{team_id}", response_model=TeamOut)
async def get_team(team_id: uuid.UUID, principal: Reader, session: DbSession) -> TeamOut:
    return await _out(session, await service.get_team(session, principal, team_id))


@router.patch("/{team_id}", response_model=TeamOut)
async def update_team(
    team_id: uuid.UUID,
    body: TeamUpdateIn,
    principal: Writer,
    session: DbSession,
) -> TeamOut:
    """Rename a team or change its description."""
    return await _out(session, await service.update_team(session, principal, team_id, body))


@router.delete("/{team_id}", status_code=204)
async def delete_team(team_id: uuid.UUID, principal: Writer, session: DbSession) -> Response:
    """Delete a team; its conversations keep their status and assignee, without a team."""
    await service.delete_team(session, principal, team_id)
    return Response(status_code=204)


@router.post("/{team_id}/members", status_code=201, response_model=TeamOut)
async def add_member(
    team_id: uuid.UUID,
    body: TeamMemberIn,
    principal: Writer,
    session: DbSession,
) -> TeamOut:
    """Add a user of your organisation to the team (adding a member again changes nothing)."""
    team = await service.add_member(session, principal, team_id, body.user_id)
    return await _out(session, team)


@router.delete("/{team_id}/members/{user_id}", status_code=204)
async def remove_member(
    team_id: uuid.UUID,
    user_id: uuid.UUID,
    principal: Writer,
    session: DbSession,
) -> Response:
    await service.remove_member(session, principal, team_id, user_id)
    return Response(status_code=204)
