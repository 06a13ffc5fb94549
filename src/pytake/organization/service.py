"""Organisations: the tenants every other row belongs to."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pytake.models import Organization


async def create_organization(session: AsyncSession, name: str) -> Organization:
    """Create a tenant (flushes to get its id)."""
    org = Organization(name=name.strip() or "My organisation", settings={})
    session.add(org)
    await session.flush()
    return org
