"""Team members as the /v1/users API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, EmailStr, Field

AssignableRole = Literal["org_admin", "agent", "viewer", "super_admin"]


class UserOut(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    email: str
    full_name: str
    role: str
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime


class UserCreateIn(BaseModel):
    email: EmailStr
    password: str = Field(min_length=8, max_length=256, description="At least 8 characters.")
    full_name: str = Field(min_length=1, max_length=200)
    role: AssignableRole = "agent"


class UserUpdateIn(BaseModel):
    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    role: AssignableRole | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=256)
