"""All ORM models; importing this package registers every table on one metadata (for Alembic)."""

from pytake.models.base import Base
from pytake.models.contact import Contact, ContactTag, Tag
from pytake.models.organization import ApiKey, Organization, RefreshToken, User

__all__ = [
    "ApiKey",
    "Base",
    "Contact",
    "ContactTag",
    "Organization",
    "RefreshToken",
    "Tag",
    "User",
]
