"""Operator tasks run from the command line."""

from __future__ import annotations

import uuid

from pytake.auth.scopes import Role
from pytake.auth.service import create_user
from pytake.config import Settings
from pytake.db import create_engine, create_session_factory, unit_of_work
from pytake.migrate import upgrade_to_head
from pytake.organization.service import create_organization


async def create_admin(
    settings: Settings, email: str, password: str, name: str, org_name: str, super_admin: bool
) -> uuid.UUID:
    """Create an organisation with one admin (migrating the database first if needed)."""
    engine = create_engine(settings.database_url)
    try:
        await upgrade_to_head(engine)
        async with unit_of_work(create_session_factory(engine)) as session:
            org = await create_organization(session, org_name)
            role = Role.SUPER_ADMIN if super_admin else Role.ORG_ADMIN
            user = await create_user(session, settings, org.id, email, password, name, role)
            return user.id
    finally:
        await engine.dispose()
