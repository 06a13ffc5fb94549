"""Team management: org admins add, change and deactivate the users of their organisation."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.passwords import passwords_for
from pytake.auth.principal import Principal
from pytake.auth.scopes import Role
from pytake.auth.service import create_user, revoke_all_for_user
from pytake.config import Settings
from pytake.errors import PermissionDenied, ValidationFailed
from pytake.kit.pagination import PageParams
from pytake.models import User
from pytake.models.base import utcnow
from pytake.tenancy import get_scoped, scoped
from pytake.user.schemas import UserCreateIn, UserUpdateIn


def _check_grantable(principal: Principal, role: str) -> Role:
    granted = Role(role)
    if granted is Role.SUPER_ADMIN and principal.role is not Role.SUPER_ADMIN:
        raise PermissionDenied("Only a super admin can grant the super_admin role")
    return granted


async def list_users(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    role: str | None,
    is_active: bool | None,
) -> tuple[list[User], int]:
    stmt = scoped(select(User), User, principal)
    if role is not None:
        stmt = stmt.where(User.role == role)
    if is_active is not None:
        stmt = stmt.where(User.is_active == is_active)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await session.scalars(
        stmt.order_by(User.created_at.desc(), User.id).offset(params.offset).limit(params.limit)
    )
    return list(rows), total


async def add_user(
    session: AsyncSession, settings: Settings, principal: Principal, data: UserCreateIn
) -> User:
    """Create a user in the admin's own organisation."""
    role = _check_grantable(principal, data.role)
    return await create_user(
        session,
        settings,
        principal.organization_id,
        data.email,
        data.password,
        data.full_name,
        role,
    )


async def get_user(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> User:
    return await get_scoped(session, User, user_id, principal, what="User")


async def update_user(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    user_id: uuid.UUID,
    data: UserUpdateIn,
) -> User:
    """Rename, change role, reactivate/deactivate or reset the password of a team member."""
    user = await get_user(session, principal, user_id)
    if data.full_name is not None:
        user.full_name = data.full_name.strip()
    if data.role is not None and data.role != user.role:
        if user.id == principal.user_id:
            raise ValidationFailed.on("role", "You cannot change your own role")
        user.role = _check_grantable(principal, data.role).value
    if data.password is not None:
        user.password_hash = await passwords_for(settings).hash(data.password)
        await revoke_all_for_user(session, user.id)
    if data.is_active is not None and data.is_active != user.is_active:
        await _set_active(session, principal, user, data.is_active)
    user.updated_at = utcnow()
    return user


async def deactivate_user(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> None:
    """Deactivate (users are kept for history); their tokens stop working at once."""
    user = await get_user(session, principal, user_id)
    await _set_active(session, principal, user, False)


async def _set_active(
    session: AsyncSession, principal: Principal, user: User, active: bool
) -> None:
    if not active and user.id == principal.user_id:
        raise ValidationFailed.on("is_active", "You cannot deactivate yourself")
    user.is_active = active
    user.deactivated_at = None if active else utcnow()
    if not active:
        await revoke_all_for_user(session, user.id)
