"""Teams: create, rename and delete them, add and remove members, and find one by name for
a chatbot's handoff. Deleting a team leaves its conversations in the organisation's queue."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections import defaultdict

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.principal import Principal
from pytake.errors import Conflict, NotFound, ValidationFailed
from pytake.kit.pagination import PageParams
from pytake.models import Conversation, Team, TeamMember, User
from pytake.models.base import utcnow
from pytake.team.schemas import TeamCreateIn, TeamMemberOut, TeamOut, TeamUpdateIn
from pytake.tenancy import get_scoped, scoped

_SEPARATORS = re.compile(r"[\s_\-]+")


def team_key(name: str) -> str:
    """How team names compare: "Suporte Técnico" = "suporte_tecnico" = "SUPORTE-TECNICO"."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return _SEPARATORS.sub("_", text).strip("_")[:100]


async def team_named(session: AsyncSession, organization_id: uuid.UUID, name: str) -> Team | None:
    """The organisation's team of that name (see `team_key`), if there is one."""
    key = team_key(name)
    if not key:
        return None
    return await session.scalar(
        select(Team).where(Team.organization_id == organization_id, Team.name_key == key)
    )


async def team_in_organization(
    session: AsyncSession, organization_id: uuid.UUID, team_id: uuid.UUID, field: str
) -> Team:
    """A team of the organisation named by a request field (422 on that field otherwise)."""
    team = await session.scalar(
        select(Team).where(Team.id == team_id, Team.organization_id == organization_id)
    )
    if team is None:
        raise ValidationFailed.on(field, "No such team in your organisation")
    return team


async def views(session: AsyncSession, teams: list[Team]) -> list[TeamOut]:
    """The teams with their members (one query for all of them)."""
    members: dict[uuid.UUID, list[TeamMemberOut]] = defaultdict(list)
    if teams:
        rows = await session.execute(
            select(TeamMember.team_id, TeamMember.created_at, User)
            .join(User, User.id == TeamMember.user_id)
            .where(TeamMember.team_id.in_([t.id for t in teams]))
            .order_by(TeamMember.created_at, User.id)
        )
        for team_id, added_at, user in rows:
            members[team_id].append(
                TeamMemberOut(id=user.id, full_name=user.full_name, email=user.email,
                              role=user.role, is_active=user.is_active, added_at=added_at)
            )  # fmt: skip
    return [
        TeamOut(id=t.id, name=t.name, description=t.description, members=members[t.id],
                member_count=len(members[t.id]), created_at=t.created_at, updated_at=t.updated_at)
        for t in teams
    ]  # fmt: skip


async def list_teams(
    session: AsyncSession, principal: Principal, params: PageParams
) -> tuple[list[Team], int]:
    """The organisation's teams by name."""
    stmt = scoped(select(Team), Team, principal)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await session.scalars(
        stmt.order_by(Team.name_key, Team.id).offset(params.offset).limit(params.limit)
    )
    return list(rows), total


async def get_team(session: AsyncSession, principal: Principal, team_id: uuid.UUID) -> Team:
    return await get_scoped(session, Team, team_id, principal, what="Team")


async def create_team(session: AsyncSession, principal: Principal, data: TeamCreateIn) -> Team:
    """A new team, optionally with its first members."""
    await _check_name_free(session, principal.organization_id, data.name, None)
    team = Team(
        organization_id=principal.organization_id,
        name=data.name,
        name_key=team_key(data.name),
        description=data.description,
    )
    session.add(team)
    await _flush_or_conflict(session)
    for user_id in dict.fromkeys(data.member_ids):
        await _add(session, team, user_id, "member_ids")
    return team


async def update_team(
    session: AsyncSession, principal: Principal, team_id: uuid.UUID, data: TeamUpdateIn
) -> Team:
    """Rename a team or change its description (only the fields given)."""
    team = await get_team(session, principal, team_id)
    changes = data.model_dump(exclude_unset=True)
    if data.name is not None and data.name != team.name:
        await _check_name_free(session, team.organization_id, data.name, team.id)
        team.name, team.name_key = data.name, team_key(data.name)
    if "description" in changes:
        team.description = data.description
    team.updated_at = utcnow()
    await _flush_or_conflict(session)
    return team


async def delete_team(session: AsyncSession, principal: Principal, team_id: uuid.UUID) -> None:
    """Delete a team; its conversations stay where they are, without a team."""
    team = await get_team(session, principal, team_id)
    await session.execute(
        update(Conversation).where(Conversation.team_id == team.id).values(team_id=None)
    )
    await session.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
    await session.delete(team)
    await session.flush()


async def add_member(
    session: AsyncSession, principal: Principal, team_id: uuid.UUID, user_id: uuid.UUID
) -> Team:
    """Add a user of the organisation to the team (adding a member again changes nothing)."""
    team = await get_team(session, principal, team_id)
    await _add(session, team, user_id, "user_id")
    team.updated_at = utcnow()
    return team


async def remove_member(
    session: AsyncSession, principal: Principal, team_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    team = await get_team(session, principal, team_id)
    result = await session.execute(
        delete(TeamMember).where(TeamMember.team_id == team.id, TeamMember.user_id == user_id)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound("This user is not a member of the team")
    team.updated_at = utcnow()


async def _add(session: AsyncSession, team: Team, user_id: uuid.UUID, field: str) -> None:
    user = await session.scalar(
        select(User.id).where(User.id == user_id, User.organization_id == team.organization_id)
    )
    if user is None:
        raise ValidationFailed.on(field, f"No user {user_id} in your organisation")
    member = await session.get(TeamMember, (team.id, user_id))
    if member is None:
        session.add(TeamMember(team_id=team.id, user_id=user_id, created_at=utcnow()))
        await session.flush()


async def _check_name_free(
    session: AsyncSession, organization_id: uuid.UUID, name: str, team_id: uuid.UUID | None
) -> None:
    existing = await team_named(session, organization_id, name)
    if existing is not None and existing.id != team_id:
        raise Conflict(f"A team named '{existing.name}' already exists",
                       extra={"team_id": str(existing.id)})  # fmt: skip
    if not team_key(name):
        raise ValidationFailed.on("name", "A team name needs a letter or a digit")


async def _flush_or_conflict(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent request took the name between check and write
        raise Conflict("A team with this name already exists") from exc
