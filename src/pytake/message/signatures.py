"""Who sent a provider webhook: the edge's authentication step, before anything is stored.

Meta signs each body with the app secret of the app the number belongs to
(`X-Hub-Signature-256`, HMAC-SHA256 over the raw body); the secret is stored with the number,
so the check runs once the body's numbers are known (for group commit, in the batch that loads
them, see pytake.message.writer). Evolution gateways send back the secret header PyTake
registered for the configuration.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from pytake.channel.providers import EVOLUTION_SECRET_HEADER
from pytake.config import Settings
from pytake.errors import AuthenticationFailed
from pytake.kit.crypto import SecretUnreadable, secret_box
from pytake.whatsapp.cloud import verify_signature
from pytake.whatsapp.evolution import check_headers

log = logging.getLogger(__name__)


class MetaSignatures:
    """Checks `X-Hub-Signature-256` against a number's encrypted app secret.

    Decrypted secrets are kept by their ciphertext: a rotated secret is a new ciphertext, so
    this never answers with a stale secret; it only saves the Fernet work per request."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._secrets: dict[str, str] = {}

    def signed_with(
        self,
        number_id: uuid.UUID,
        app_secret_encrypted: str | None,
        raw: bytes,
        signature: str | None,
    ) -> bool:
        """Whether the body carries a valid signature made with the number's app secret."""
        ciphertext = app_secret_encrypted or ""
        try:
            app_secret = self._secrets.get(ciphertext) or self._decrypt(ciphertext)
        except SecretUnreadable:
            log.error("app secret of config %s cannot be decrypted", number_id)
            return False
        return verify_signature(app_secret, raw, signature)

    def _decrypt(self, ciphertext: str) -> str:
        if len(self._secrets) >= 1024:
            self._secrets.clear()
        self._secrets[ciphertext] = secret_box(self._settings).decrypt(ciphertext)
        return self._secrets[ciphertext]


def check_evolution_secret(
    settings: Settings, secret_encrypted: str | None, headers: Mapping[str, str]
) -> None:
    """Refuse (401) an Evolution webhook without the configuration's secret header."""
    try:
        secret = secret_box(settings).decrypt(secret_encrypted or "")
    except SecretUnreadable as exc:
        raise AuthenticationFailed(
            "Webhook secret unavailable; run the configuration test"
        ) from exc
    if not secret or not check_headers(headers, {EVOLUTION_SECRET_HEADER: secret}):
        raise AuthenticationFailed(f"Invalid or missing {EVOLUTION_SECRET_HEADER}")
