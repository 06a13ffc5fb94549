"""All ORM models; importing this package registers every table on one metadata (for Alembic)."""

from pytake.models.base import Base
from pytake.models.campaign import Campaign, CampaignRecipient
from pytake.models.channel import Channel, ChannelEvent
from pytake.models.chatbot import (
    Chatbot,
    ChatbotFlow,
    ChatbotFlowVersion,
    ChatbotInbox,
    ChatbotNodeStat,
    ChatbotSession,
)
from pytake.models.contact import Contact, ContactTag, Tag
from pytake.models.conversation import Conversation, Message, PendingStatus
from pytake.models.event import OutboxEvent as OutboxEvent
from pytake.models.event import UnpublishedEvents as UnpublishedEvents
from pytake.models.idempotency import IdempotencyKey as IdempotencyKey
from pytake.models.media import Media, MediaUpload
from pytake.models.organization import ApiKey, Organization, RefreshToken, User
from pytake.models.team import Team, TeamMember
from pytake.models.template import MessageTemplate, TemplateSyncState
from pytake.models.webhook import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "Base",
    "Campaign",
    "CampaignRecipient",
    "Channel",
    "ChannelEvent",
    "Chatbot",
    "ChatbotFlow",
    "ChatbotFlowVersion",
    "ChatbotInbox",
    "ChatbotNodeStat",
    "ChatbotSession",
    "Contact",
    "ContactTag",
    "Conversation",
    "Media",
    "MediaUpload",
    "Message",
    "MessageTemplate",
    "Organization",
    "PendingStatus",
    "RefreshToken",
    "Tag",
    "Team",
    "TeamMember",
    "TemplateSyncState",
    "User",
    "WebhookDelivery",
    "WebhookEndpoint",
]
