"""Evolution API v2: instance management, the provider adapter and webhook parsing."""

from pytake.whatsapp.evolution.client import (
    BAILEYS,
    BUSINESS,
    DEFAULT_EVENTS,
    ConnectResult,
    EvolutionClient,
    EvolutionProvider,
    InstanceCreated,
    QrCode,
    WebhookConfig,
)
from pytake.whatsapp.evolution.translate import interactive_as_text, numbered_options
from pytake.whatsapp.evolution.webhook import check_headers, jid_number, parse_evolution_webhook

__all__ = [
    "BAILEYS",
    "BUSINESS",
    "DEFAULT_EVENTS",
    "ConnectResult",
    "EvolutionClient",
    "EvolutionProvider",
    "InstanceCreated",
    "QrCode",
    "WebhookConfig",
    "check_headers",
    "interactive_as_text",
    "jid_number",
    "numbered_options",
    "parse_evolution_webhook",
]
