"""Teams as /v1/teams shows them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field, field_validator


class TeamMemberOut(BaseModel):
    id: uuid.UUID = Field(description="The user's id.")
    full_name: str
    email: str
    role: str
    is_active: bool
    added_at: datetime


class TeamOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    members: list[TeamMemberOut]
    member_count: int
    created_at: datetime
    updated_at: datetime


def _clean_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = " ".join(name.split())
    if not name:
        raise ValueError("must not be blank")
    return name


_NAME = (
    "Unique in the organisation, compared case- and accent-insensitively, with spaces, `-` "
    "and `_` alike: a chatbot's `transfer_to_tech_support` reaches the team `Tech Support`."
)


class TeamCreateIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, description=_NAME)
    description: str | None = Field(default=None, max_length=1000)
    member_ids: list[uuid.UUID] = Field(
        default_factory=list, max_length=500, description="Users of your organisation."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _clean_name(name) or name


class TeamUpdateIn(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100, description=_NAME)
    description: str | None = Field(default=None, max_length=1000)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str | None) -> str | None:
        return _clean_name(name)


class TeamMemberIn(BaseModel):
    user_id: uuid.UUID = Field(description="A user of your organisation.")


class TeamBriefOut(BaseModel):
    id: uuid.UUID
    name: str
