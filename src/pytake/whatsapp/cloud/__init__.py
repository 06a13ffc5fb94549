"""Meta WhatsApp Cloud API: the provider adapter and webhook handling."""

from pytake.whatsapp.cloud.client import CloudProvider, build_send_payload
from pytake.whatsapp.cloud.webhook import (
    SIGNATURE_HEADER,
    parse_webhook,
    sign,
    verify_challenge,
    verify_signature,
)

__all__ = [
    "SIGNATURE_HEADER",
    "CloudProvider",
    "build_send_payload",
    "parse_webhook",
    "sign",
    "verify_challenge",
    "verify_signature",
]
