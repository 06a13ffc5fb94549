"""/v1/users: the organisation's team."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.dependencies import Session, require_org_admin, require_scope
from pytake.auth.principal import Principal
from pytake.kit.pagination import Page, PageParams, page_meta, page_params
from pytake.user import service
from pytake.user.schemas import AssignableRole, UserCreateIn, UserOut, UserUpdateIn

router = APIRouter(prefix="/users", tags=["users"])


@router.get("", response_model=Page[UserOut])
async def list_users(
    params: PageParams = Depends(page_params),
    role: Annotated[AssignableRole | None, Query()] = None,
    is_active: Annotated[bool | None, Query()] = None,
    principal: Principal = Depends(require_scope("users:read")),
    session: AsyncSession = Session,
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
    principal: Principal = Depends(require_org_admin),
    session: AsyncSession = Session,
) -> UserOut:
    """Add an agent, viewer or admin to your organisation."""
    user = await service.add_user(session, principal, body)
    return UserOut.model_validate(user, from_attributes=True)


@router.get("/{user_id}", response_model=UserOut)
async def get_user(
    user_id: uuid.UUID,
    principal: Principal = Depends(require_scope("users:read")),
    session: AsyncSession = Session,
) -> UserOut:
    user = await service.get_user(session, principal, user_id)
    return UserOut.model_validate(user, from_attributes=True)


@router.patch("/{user_id}", response_model=UserOut)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdateIn,
    principal: Principal = Depends(require_org_admin),
    session: AsyncSession = Session,
) -> UserOut:
    """Change a user's name, role, password or active state."""
    user = await service.update_user(session, principal, user_id, body)
    return UserOut.model_validate(user, from_attributes=True)


@router.delete("/{user_id}", status_code=204)
async def deactivate_user(
    user_id: uuid.UUID,
    principal: Principal = Depends(require_org_admin),
    session: AsyncSession = Session,
) -> Response:
    """Deactivate a user: they can no longer sign in and their tokens stop working."""
    await service.deactivate_user(session, principal, user_id)
    return Response(status_code=204)
