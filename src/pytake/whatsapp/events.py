"""Normalised inbound events, the same for every provider.

Every event carries `channel`: the Meta phone_number_id or the Evolution instance name (for a
template status update, which is account-level, the WABA id). `raw` keeps the provider's item.

Normalised `content` of messages by `type`:
- text: `{"text"}`
- image / video / audio / document / sticker: `{"media_id", "mime_type", "sha256", "caption",
  "filename", "url"}` (+ `voice` for audio, `animated` for stickers, `base64` when inlined)
- location: `{"latitude", "longitude", "name", "address", "url"}`
- contacts: `{"contacts": [Cloud API contact objects]}`
- interactive: `{"kind": "button_reply"|"list_reply"|"nfm_reply"|None, "reply_id", "title",
  "description"}` (nfm_reply: `{"kind", "response_json", "body", "name"}`)
- button (template quick reply): `{"payload", "text"}`
- reaction: `{"message_id", "emoji"}` (emoji `""` = reaction removed)
- order: `{"catalog_id", "text", "product_items"}`
- system: the system object with `type` renamed `system_type` (+ `identity` when present)
- unsupported: `{"unsupported_type"}` and the reason in `errors`
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pytake.whatsapp.errors import explain

DeliveryStatus = Literal["sent", "delivered", "read", "failed"]

# Statuses only move forward; `failed` is terminal and beats everything.
_STATUS_RANK: dict[str, int] = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}


class MalformedWebhook(ValueError):
    """A webhook body is structurally invalid (not just carrying unknown fields)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EventError:
    """An error reported inside a webhook (async failure, unsupported message, ...)."""

    code: int | None
    title: str | None = None
    message: str | None = None
    details: str | None = None
    href: str | None = None

    @property
    def plain_explanation(self) -> str:
        """What went wrong, in words for an operator."""
        return explain(self.code, fallback=self.details or self.message or self.title or "")


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message a customer sent to the business."""

    channel: str
    sender: str | None  # wa_id digits; None only when the provider gives no phone (see below)
    provider_message_id: str
    timestamp: datetime
    type: str
    content: dict[str, Any]
    profile_name: str | None = None
    context_message_id: str | None = None
    forwarded: bool = False
    referral: dict[str, Any] | None = None
    errors: tuple[EventError, ...] = ()
    # Meta's business-scoped user id, or the WhatsApp LID when no phone could be resolved.
    sender_user_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MessageEcho:
    """A message the business itself sent, echoed back (other device, app, or our own API send)."""

    channel: str
    recipient: str | None
    provider_message_id: str
    timestamp: datetime
    type: str
    content: dict[str, Any]
    source: Literal["device", "api"] = "device"
    context_message_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """Delivery progress of a message the business sent."""

    channel: str
    provider_message_id: str
    status: DeliveryStatus
    timestamp: datetime
    recipient: str | None = None
    callback_data: str | None = None
    errors: tuple[EventError, ...] = ()
    provider_status: str | None = None  # the provider's own word, e.g. "played" or "DELIVERY_ACK"
    pricing: dict[str, Any] | None = None
    conversation: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TemplateStatusUpdate:
    """An account-level template change (channel is the WABA id). `kind` says which webhook:
    `status` (Meta approved, rejected, paused... it; `event` is the new status), `quality`
    (`event` is the new quality score, `previous` the old) or `category` (`event` is the new
    category, `previous` the old)."""

    channel: str
    template_id: str | None
    template_name: str | None
    language: str | None
    event: str
    reason: str | None = None
    timestamp: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    kind: Literal["status", "quality", "category"] = "status"
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectionUpdate:
    """An Evolution instance's connection changed (`open`, `close`, `connecting`, `refused`)."""

    channel: str
    state: str
    status_reason: int | None = None
    wuid: str | None = None
    profile_name: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QrCodeUpdate:
    """A new QR code to scan (or, with `code` None, the reason none is coming)."""

    channel: str
    code: str | None
    base64: str | None
    pairing_code: str | None = None
    message: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


ProviderEvent = (
    InboundMessage
    | MessageEcho
    | StatusUpdate
    | TemplateStatusUpdate
    | ConnectionUpdate
    | QrCodeUpdate
)


def by_channel(events: list[ProviderEvent]) -> dict[str, list[ProviderEvent]]:
    """Group events by channel, keeping their order within each channel."""
    grouped: dict[str, list[ProviderEvent]] = defaultdict(list)
    for event in events:
        grouped[event.channel].append(event)
    return dict(grouped)


def status_advances(current: str | None, new: str) -> bool:
    """Whether a message in status `current` should move to `new` (never backwards)."""
    if current == "failed":
        return False
    return _STATUS_RANK.get(new, 0) > _STATUS_RANK.get(current or "", 0)


def unix_to_datetime(value: Any, what: str) -> datetime:
    """Parse a unix-seconds timestamp (string or number) into an aware UTC datetime."""
    if isinstance(value, dict):  # protobuf Long as JSON: {"low": ..., "high": ...}
        value = value.get("low")
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise MalformedWebhook(f"{what}: invalid timestamp {value!r}") from exc


def parse_event_errors(items: Any) -> tuple[EventError, ...]:
    """Read a webhook `errors` array, ignoring entries that are not objects."""
    if not isinstance(items, list):
        return ()
    errors = []
    for item in items:
        if not isinstance(item, dict):
            continue
        data = item.get("error_data")
        details = data.get("details") if isinstance(data, dict) else data
        code = item.get("code")
        errors.append(
            EventError(
                code=code if isinstance(code, int) else None,
                title=item.get("title"),
                message=item.get("message"),
                details=str(details) if details is not None else None,
                href=item.get("href"),
            )
        )
    return tuple(errors)
