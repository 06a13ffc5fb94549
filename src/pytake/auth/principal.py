"""Who is making a request: a user (by JWT) or an integration (by API key)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pytake.auth.scopes import Role


@dataclass(frozen=True)
class Principal:
    organization_id: uuid.UUID
    role: Role
    scopes: frozenset[str]
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None

    @property
    def sees_all_organizations(self) -> bool:
        return self.role is Role.SUPER_ADMIN and self.user_id is not None

    @property
    def is_user(self) -> bool:
        return self.user_id is not None

    @property
    def is_org_admin(self) -> bool:
        return self.is_user and self.role in (Role.ORG_ADMIN, Role.SUPER_ADMIN)

    def can(self, scope: str) -> bool:
        return scope in self.scopes
