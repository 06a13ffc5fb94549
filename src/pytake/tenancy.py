"""The one place tenant queries are scoped: another organisation's row is simply not found."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.principal import Principal
from pytake.errors import NotFound

T = TypeVar("T")
S = TypeVar("S", bound=Select[Any])


def scoped(stmt: S, model: Any, principal: Principal) -> S:
    """Restrict a SELECT on a tenant model to the principal's organisation."""
    if principal.sees_all_organizations:
        return stmt
    return stmt.where(model.organization_id == principal.organization_id)


async def get_scoped(
    session: AsyncSession,
    model: type[T],
    row_id: uuid.UUID,
    principal: Principal,
    *,
    what: str | None = None,
    for_update: bool = False,
) -> T:
    """Load one row of the principal's organisation by id, or raise a 404."""
    stmt = scoped(select(model).where(model.id == row_id), model, principal)  # type: ignore[attr-defined]
    if for_update:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is None:
        raise NotFound(f"{what or model.__name__} not found")
    return row
