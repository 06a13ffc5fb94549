"""Scopes (what a credential may do) and the scopes each role carries."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    SUPER_ADMIN = "super_admin"
    ORG_ADMIN = "org_admin"
    AGENT = "agent"
    VIEWER = "viewer"


class Scope(StrEnum):
    """What a credential may do; a member is its string (`Scope.CONTACTS_READ == "contacts:read"`)."""

    CONTACTS_READ = "contacts:read"
    CONTACTS_WRITE = "contacts:write"
    MESSAGES_SEND = "messages:send"
    CONVERSATIONS_READ = "conversations:read"
    CHATBOTS_READ = "chatbots:read"
    CHATBOTS_WRITE = "chatbots:write"
    CAMPAIGNS_WRITE = "campaigns:write"
    ANALYTICS_READ = "analytics:read"
    MESSAGES_READ = "messages:read"
    CONVERSATIONS_WRITE = "conversations:write"
    CAMPAIGNS_READ = "campaigns:read"
    WEBHOOKS_READ = "webhooks:read"
    WEBHOOKS_WRITE = "webhooks:write"
    WHATSAPP_READ = "whatsapp:read"
    WHATSAPP_WRITE = "whatsapp:write"
    USERS_READ = "users:read"
    TEMPLATES_READ = "templates:read"
    TEMPLATES_WRITE = "templates:write"
    TEAMS_READ = "teams:read"
    TEAMS_WRITE = "teams:write"


# The /v1 document's scopes first, then the ones later resources need.
SCOPES: dict[str, str] = {
    Scope.CONTACTS_READ: "Read contacts and tags",
    Scope.CONTACTS_WRITE: "Create, edit, import and delete contacts and tags",
    Scope.MESSAGES_SEND: "Send messages",
    Scope.CONVERSATIONS_READ: "Read conversations and their messages",
    Scope.CHATBOTS_READ: "Read chatbots and flows",
    Scope.CHATBOTS_WRITE: "Create and edit chatbots and flows",
    Scope.CAMPAIGNS_WRITE: "Create and run campaigns",
    Scope.ANALYTICS_READ: "Read reports and metrics",
    Scope.MESSAGES_READ: "Read messages and their delivery status",
    Scope.CONVERSATIONS_WRITE: "Assign, tag and resolve conversations",
    Scope.CAMPAIGNS_READ: "Read campaigns and their metrics",
    Scope.WEBHOOKS_READ: "Read outgoing webhook endpoints and deliveries",
    Scope.WEBHOOKS_WRITE: "Manage outgoing webhook endpoints",
    Scope.WHATSAPP_READ: "Read WhatsApp number configurations",
    Scope.WHATSAPP_WRITE: "Manage WhatsApp number configurations and instances",
    Scope.USERS_READ: "Read the organisation's team",
    Scope.TEMPLATES_READ: "Read message templates and preview them",
    Scope.TEMPLATES_WRITE: "Create, delete and sync message templates",
    Scope.TEAMS_READ: "Read teams and their members",
    Scope.TEAMS_WRITE: "Create, rename and delete teams; add and remove members",
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
