"""Request and response bodies of the auth endpoints on both surfaces."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, EmailStr, Field, field_validator

from pytake.auth.scopes import SCOPES

PASSWORD_FIELD = Field(min_length=8, max_length=256, description="At least 8 characters.")


class RegisterIn(BaseModel):
    email: EmailStr
    password: str = PASSWORD_FIELD
    name: str = Field(min_length=1, max_length=200)
    organization_name: str | None = Field(
        default=None, max_length=200, description="Defaults to the registrant's name."
    )


class LoginIn(BaseModel):
    email: EmailStr
    password: str = Field(min_length=1, max_length=256)


class LegacyUserOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    roles: list[str]
    organization_id: uuid.UUID
    created_at: datetime | None = None
    last_login: datetime | None = None


class LegacyTokenOut(BaseModel):
    token: str
    user: LegacyUserOut


class UserBrief(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str
    role: str
    organization_id: uuid.UUID


class TokenPairOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user: UserBrief


class RefreshIn(BaseModel):
    # No length rule: an unknown or malformed token is a 401, whatever its length.
    refresh_token: str = Field(description="The refresh token of the last login or refresh.")


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(
        min_length=1, description="Scopes the key may use: " + ", ".join(f"`{s}`" for s in SCOPES)
    )

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: list[str]) -> list[str]:
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown:
            raise ValueError(
                f"unknown scope(s): {', '.join(unknown)}; valid scopes: {', '.join(SCOPES)}"
            )
        return scopes


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="The first characters of the key, to recognise it.")
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    created_by: uuid.UUID | None


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="The full key. Shown only in this response; store it now.")


class ApiKeyListOut(BaseModel):
    data: list[ApiKeyOut]


class ScopeOut(BaseModel):
    name: str = Field(description="The scope, as `scopes` of `POST /v1/api-keys` takes it.")
    description: str


class ScopeListOut(BaseModel):
    data: list[ScopeOut]
