"""/v1/users: the organisation's team."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from pytake.auth.dependencies import AppSettings, DbSession, OrgAdmin, require_scope
from pytake.auth.principal import Principal
from pytake.auth.scopes import Scope
from pytake.kit.pagination import Page, Paging, page_meta
from pytake.user import service
from pytake.user.schemas import AssignableRole, UserCreateIn, UserOut, UserUpdateIn

router = APIRouter(prefix="/users", tags=["users"])

Reader = Annotated[Principal, Depends(require_scope(Scope.USERS_READ))]


@router.get("", response_model=Page[UserOut])
async def list_users(
    params: Paging,
    principal: Reader,
    session: DbSession,
    role: Annotated[AssignableRole | None, Query()] = None,
    is_active: Annotated[bool | None, Query()] = None,
) -> Page[UserOut]:
    """The team, newest first."""
    users, total = await service.list_users(session, principal, params, role, is_active)
    return Page[UserOut](
        data=[UserOut.model_validate(u, from_attributes=True) for u in users],
        meta=page_meta(params, total),
    )


@router.post("", status_code=201, response_model=UserOut)
async def create_user(
    body: UserCreateIn,
    principal: OrgAdmin,
    session: DbSession,
    settings: AppSettings,
) -> UserOut:
    """Add an agent, viewer or admin to your organisation."""
    user = await service.add_user(session, settings, principal, body)
    return UserOut.model_validate(user, from_attributes=True)


@router.get("/{user_id}", response_model=UserOut)
async def get_user(
    user_id: uuid.UUID,
    principal: Reader,
    session: DbSession,
) -> UserOut:
    user = await service.get_user(session, principal, user_id)
    return UserOut.model_validate(user, from_attributes=True)


@router.patch("/{user_id}", response_model=UserOut)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdateIn,
    principal: OrgAdmin,
    session: DbSession,
    settings: AppSettings,
) -> UserOut:
    """Change a user's name, role, password or active state."""
    user = await service.update_user(session, settings, principal, user_id, body)
    return UserOut.model_validate(user, from_attributes=True)


@router.delete("/{user_id}", status_code=204)
async def deactivate_user(
    user_id: uuid.UUID,
    principal: OrgAdmin,
    session: DbSession,
) -> Response:
    """Deactivate a user: they can no longer sign in and their tokens stop working."""
    await service.deactivate_user(session, principal, user_id)
    return Response(status_code=204)
