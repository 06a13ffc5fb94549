"""Scopes (what a credential may do) and the scopes each role carries."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    SUPER_ADMIN = "super_admin"
    ORG_ADMIN = "org_admin"
    AGENT = "agent"
    VIEWER = "viewer"


# The /v1 document's scopes first, then the ones later resources need.
SCOPES: dict[str, str] = {
    "contacts:read": "Read contacts and tags",
    "contacts:write": "Create, edit, import and delete contacts and tags",
    "messages:send": "Send messages",
    "conversations:read": "Read conversations and their messages",
    "chatbots:read": "Read chatbots and flows",
    "chatbots:write": "Create and edit chatbots and flows",
    "campaigns:write": "Create and run campaigns",
    "analytics:read": "Read reports and metrics",
    "messages:read": "Read messages and their delivery status",
    "conversations:write": "Assign, tag and resolve conversations",
    "campaigns:read": "Read campaigns and their metrics",
    "webhooks:read": "Read outgoing webhook endpoints and deliveries",
    "webhooks:write": "Manage outgoing webhook endpoints",
    "whatsapp:read": "Read WhatsApp number configurations",
    "whatsapp:write": "Manage WhatsApp number configurations and instances",
    "users:read": "Read the organisation's team",
    "templates:read": "Read message templates and preview them",
    "templates:write": "Create, delete and sync message templates",
    "teams:read": "Read teams and their members",
    "teams:write": "Create, rename and delete teams; add and remove members",
}

_READ = frozenset(s for s in SCOPES if s.endswith(":read"))
_AGENT = _READ | {"contacts:write", "messages:send", "conversations:write"}
_ALL = frozenset(SCOPES)

ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.VIEWER: _READ,
    Role.AGENT: frozenset(_AGENT),
    Role.ORG_ADMIN: _ALL,
    Role.SUPER_ADMIN: _ALL,
}
