"""The WhatsApp provider port: what the rest of PyTake may ask of a WhatsApp number.

Message content is always the Cloud API per-type object (e.g. `{"body": ..., "preview_url": ...}`
for text), so the Cloud adapter is nearly pass-through and other adapters translate from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import IO, Any, Protocol, runtime_checkable

from pytake.whatsapp.errors import ProviderError, explain, is_retryable

__all__ = [
    "MEDIA_TYPES",
    "MESSAGE_TYPES",
    "MediaContent",
    "MediaUrl",
    "OutboundMessage",
    "PhoneNumberInfo",
    "ProviderError",
    "SendResult",
    "Template",
    "WhatsAppProvider",
    "explain",
    "is_retryable",
    "normalize_recipient",
]

MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
MESSAGE_TYPES = MEDIA_TYPES | {
    "text",
    "location",
    "contacts",
    "reaction",
    "interactive",
    "template",
}


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message to a customer.

    `content` is the Cloud API object named like `type`; for `contacts`, whose Cloud object is a
    list, `content` is `{"contacts": [...]}`. `callback_data` travels as `biz_opaque_callback_data`
    and comes back on status updates.
    """

    to: str
    type: str
    content: dict[str, Any]
    context_message_id: str | None = None
    callback_data: str | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """The provider accepted a message; delivery is reported later by status updates."""

    provider_message_id: str
    raw: dict[str, Any]
    wa_id: str | None = None
    message_status: str | None = None


@dataclass(frozen=True, slots=True)
class MediaUrl:
    """A short-lived download location for a media id."""

    url: str
    mime_type: str | None = None
    sha256: str | None = None
    file_size: int | None = None
    media_id: str | None = None


@dataclass(frozen=True, slots=True)
class MediaContent:
    """Downloaded media bytes and their MIME type."""

    data: bytes
    mime_type: str
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class PhoneNumberInfo:
    """What the provider says about the connected number (the "test connection" answer)."""

    id: str
    display_phone_number: str | None = None
    verified_name: str | None = None
    quality_rating: str | None = None
    status: str | None = None
    code_verification_status: str | None = None
    platform_type: str | None = None
    throughput_level: str | None = None
    name_status: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Template:
    """A message template registered with the WhatsApp Business Account."""

    id: str
    name: str
    language: str
    status: str
    category: str | None = None
    components: list[dict[str, Any]] = field(default_factory=list)
    parameter_format: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class WhatsAppProvider(Protocol):
    """A connected WhatsApp number; every method raises ProviderError on failure."""

    name: str

    async def send(self, message: OutboundMessage) -> SendResult:
        """Send one message; a result means accepted, not delivered."""
        ...

    async def mark_read(self, provider_message_id: str, *, sender: str | None = None) -> None:
        """Mark a customer's message read (`sender` is the customer's wa_id; Evolution needs it)."""
        ...

    async def get_media_url(self, media_id: str) -> MediaUrl:
        """Resolve a media id to a short-lived download URL."""
        ...

    async def download_media(self, media_id: str) -> MediaContent:
        """Fetch the bytes of a media id."""
        ...

    async def upload_media(self, data: bytes | IO[bytes], mime_type: str, filename: str) -> str:
        """Upload bytes (or an open file); returns a media id usable in `{"id": ...}` content."""
        ...

    async def phone_number_info(self) -> PhoneNumberInfo:
        """Fetch the number's details; succeeds only if credentials and ids are valid."""
        ...

    async def list_templates(self) -> list[Template]:
        """All templates of the account (every page)."""
        ...

    async def create_template(self, template: dict[str, Any]) -> Template:
        """Submit a template (Meta's creation body) for review; returns its id and status."""
        ...

    async def delete_template(self, name: str, template_id: str | None = None) -> None:
        """Delete a template of the account by name (and id, for one language)."""
        ...


def normalize_recipient(to: str) -> str:
    """`+55 (11) 99999-9999` → `5511999999999`; other ids (JIDs, BSUIDs) pass unchanged."""
    if to[:1] == "+" and to[1:].isdigit():
        return to[1:]  # stored E.164, as every queued message has it (the send path's hot case)
    stripped = to.strip()
    candidate = stripped.lstrip("+")
    for char in " -().":
        candidate = candidate.replace(char, "")
    return candidate if candidate.isdigit() else stripped
