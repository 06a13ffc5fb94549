"""Provider adapters built per configuration from its decrypted credentials.

Other domains (sending, campaigns, the dispatcher) call `provider_for(channel, settings, http)`
with `app.state.http` to get a `WhatsAppProvider` for a number.
"""

from __future__ import annotations

import aiohttp

from pytake.config import Settings
from pytake.kit.crypto import SecretUnreadable, secret_box
from pytake.kit.ssrf import check_url
from pytake.models import Channel
from pytake.whatsapp.cloud import CloudProvider
from pytake.whatsapp.evolution import BAILEYS, EvolutionClient, EvolutionProvider
from pytake.whatsapp.provider import WhatsAppProvider

EVOLUTION_SECRET_HEADER = "X-PyTake-Webhook-Secret"


def _header_safe(secret: str, name: str) -> str:
    """A credential stored before the API required visible ASCII cannot go in a header."""
    if not secret.isascii() or not secret.isprintable() or " " in secret:
        raise SecretUnreadable(f"The stored {name} has characters an HTTP header cannot carry")
    return secret


async def evolution_client_for(
    channel: Channel, settings: Settings, http: aiohttp.ClientSession
) -> EvolutionClient:
    """An Evolution API client for the channel's server (after the SSRF guard)."""
    url = channel.evolution_url or ""
    await check_url(url, allow_private=settings.allow_private_urls)
    api_key = secret_box(settings).decrypt(channel.evolution_api_key_encrypted or "")
    _header_safe(api_key, "evolution_api_key")
    return EvolutionClient(http, base_url=url, api_key=api_key)


async def provider_for(
    channel: Channel, settings: Settings, http: aiohttp.ClientSession
) -> WhatsAppProvider:
    """The WhatsAppProvider of a configuration (raises UnsafeUrl / SecretUnreadable)."""
    if channel.provider == "evolution":
        client = await evolution_client_for(channel, settings, http)
        return EvolutionProvider(
            client,
            channel.instance_name or "",
            integration=channel.evolution_integration or BAILEYS,
        )
    token = _header_safe(
        secret_box(settings).decrypt(channel.access_token_encrypted or ""), "access_token"
    )
    return CloudProvider(
        http,
        base_url=settings.meta_graph_url,
        access_token=token,
        phone_number_id=channel.phone_number_id or "",
        waba_id=channel.business_account_id,
    )


def evolution_webhook_url(base_url: str, channel: Channel) -> str:
    """Where the channel's Evolution instance must post its events."""
    return f"{base_url.rstrip('/')}/api/v1/whatsapp/webhook/evolution/{channel.id}"


def evolution_webhook_headers(channel: Channel, settings: Settings) -> dict[str, str]:
    """The secret header Evolution adds to every webhook of this channel."""
    secret = secret_box(settings).decrypt(channel.evolution_webhook_secret_encrypted or "")
    return {EVOLUTION_SECRET_HEADER: secret}
