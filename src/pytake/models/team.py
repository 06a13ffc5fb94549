"""Teams: named groups of an organisation's users that conversations are routed to."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pytake.models.base import Base, IdMixin, TenantMixin, TimestampMixin, utcnow


class Team(IdMixin, TenantMixin, TimestampMixin, Base):
    """A team of agents (sales, tech, billing); a conversation may belong to one."""

    __tablename__ = "teams"
    __table_args__ = (
        Index("uq_teams_organization_name_key", "organization_id", "name_key", unique=True),
    )

    name: Mapped[str] = mapped_column(String(100))
    # The name as handoffs look it up: case- and accent-insensitive, spaces and "-" as "_"
    # ("Tech Support" is `transfer_to_tech_support`); unique in the organisation.
    name_key: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)


class TeamMember(Base):
    """A user's membership of a team (users of the team's organisation only)."""

    __tablename__ = "team_members"
    __table_args__ = (Index("ix_team_members_user", "user_id"),)

    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
