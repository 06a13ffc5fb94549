"""The WhatsApp edge: the provider port, normalised events, Cloud API and Evolution adapters,
and a simulator of both. Knows nothing of contacts, conversations or the database."""

from pytake.whatsapp.events import (
    ConnectionUpdate,
    EventError,
    InboundMessage,
    MalformedWebhook,
    MessageEcho,
    ProviderEvent,
    QrCodeUpdate,
    StatusUpdate,
    TemplateStatusUpdate,
    by_channel,
    status_advances,
)
from pytake.whatsapp.provider import (
    MediaContent,
    MediaUrl,
    OutboundMessage,
    PhoneNumberInfo,
    ProviderError,
    SendResult,
    Template,
    WhatsAppProvider,
)

__all__ = [
    "ConnectionUpdate",
    "EventError",
    "InboundMessage",
    "MalformedWebhook",
    "MediaContent",
    "MediaUrl",
    "MessageEcho",
    "OutboundMessage",
    "PhoneNumberInfo",
    "ProviderError",
    "ProviderEvent",
    "QrCodeUpdate",
    "SendResult",
    "StatusUpdate",
    "Template",
    "TemplateStatusUpdate",
    "WhatsAppProvider",
    "by_channel",
    "status_advances",
]
