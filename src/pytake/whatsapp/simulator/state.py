"""The simulator's in-memory world: business numbers, templates, customers' windows, messages,
Evolution instances and injected faults. Plain data; the HTTP layers act on it."""

from __future__ import annotations

import base64
import os
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

WINDOW_SECONDS = 24 * 3600
_PLACEHOLDER = re.compile(r"\{\{\s*([\w]+)\s*\}\}")


def new_wamid() -> str:
    """A Cloud API style message id."""
    return "wamid." + base64.b64encode(os.urandom(30)).decode()


def new_evolution_id() -> str:
    """A Baileys style message id."""
    return "3EB0" + secrets.token_hex(8).upper()


def new_numeric_id() -> str:
    """A Graph style numeric id (media, templates)."""
    return str(secrets.randbelow(9 * 10**14) + 10**14)


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    """How the simulator behaves; `for_tests()` removes every delay."""

    status_delays: tuple[float, float, float] = (0.3, 0.8, 1.5)  # before sent, delivered, read
    auto_read: bool = True
    webhook_retries: int = 3
    retry_backoff: float = 1.0
    webhook_timeout: float = 10.0
    # Webhook requests in flight at once (the client pool). Meta delivers with far more than
    # aiohttp's default 100: with 100, each waiting its receiver's commit (group commit: ~0.1-
    # 0.5 s on a loaded machine), a number sending 1,000/s with three statuses each queued
    # its webhooks in the pool until they timed out, were retried, and were dropped.
    webhook_connections: int = 1000
    # 0: one webhook per status, as Meta sends them. Above 0: a number's statuses are gathered
    # for up to this many seconds (at most `status_coalesce_max`) and posted in one webhook's
    # `statuses` array — a shape Meta's payloads allow — so a load test's stand-in spends its
    # CPU per webhook, not per status. A message's statuses still go out one after the other.
    status_coalesce_seconds: float = 0.0
    status_coalesce_max: int = 100
    window_mode: Literal["sync", "async"] = "sync"  # how 131047 surfaces
    default_mps: int = 80
    mps_period: float = 1.0
    pair_limit: tuple[int, float] | None = None  # (messages, seconds) per business↔customer
    not_on_whatsapp: frozenset[str] = frozenset()
    evolution_api_key: str = "sim-evolution-key"
    qrcode_limit: int = 30
    latency_ms: int = 0
    # Template review (simulator/templates.py): the delay before the verdict's webhook, whether
    # it comes at all, and the words that get a template rejected.
    template_review_seconds: float = 3.0
    template_auto_review: bool = True
    template_banned_words: tuple[str, ...] = ("scam", "forbidden")

    @classmethod
    def for_tests(cls, **overrides: Any) -> SimulatorSettings:
        """Settings with no delays, so tests wait on `Simulator.idle()` instead of clocks."""
        base: dict[str, Any] = {
            "status_delays": (0.0, 0.0, 0.0),
            "retry_backoff": 0.0,
            "template_review_seconds": 0.0,
        }
        base.update(overrides)
        return cls(**base)


@dataclass(slots=True)
class BusinessNumber:
    """A Cloud API phone number registered with the fake Graph API."""

    phone_number_id: str
    display_phone_number: str
    access_token: str
    app_secret: str
    waba_id: str
    webhook_url: str | None = None
    verified_name: str = "Simulated Business"
    verify_token: str | None = None
    quality_rating: str = "GREEN"
    mps: int | None = None

    def public(self) -> dict[str, Any]:
        """The number without its secrets."""
        data = asdict(self)
        for secret in ("access_token", "app_secret", "verify_token"):
            data.pop(secret)
        return data


@dataclass(slots=True)
class SimTemplate:
    """An approved (or not) template of a WABA."""

    waba_id: str
    name: str
    language: str
    components: list[dict[str, Any]]
    status: str = "APPROVED"
    category: str = "UTILITY"
    parameter_format: str = "POSITIONAL"
    id: str = field(default_factory=new_numeric_id)
    reason: str | None = None
    quality_score: str = "UNKNOWN"

    def expected_params(self, component_type: str) -> int:
        """How many parameters a send must give for the HEADER or BODY component."""
        for component in self.components:
            if str(component.get("type", "")).upper() != component_type:
                continue
            if component_type == "HEADER" and component.get("format", "TEXT") != "TEXT":
                return 1  # media and location headers take one parameter
            return len(self.variables(component_type))
        return 0

    def variables(self, component_type: str) -> set[str]:
        """The placeholder names of the HEADER or BODY text."""
        for component in self.components:
            if str(component.get("type", "")).upper() == component_type:
                return set(_PLACEHOLDER.findall(str(component.get("text", ""))))
        return set()

    def graph(self) -> dict[str, Any]:
        """The template as the Graph API lists it."""
        return {
            "id": self.id,
            "name": self.name,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "parameter_format": self.parameter_format,
            "components": self.components,
            "quality_score": {"score": self.quality_score},
            **({"rejected_reason": self.reason} if self.status == "REJECTED" else {}),
        }


@dataclass(slots=True)
class SentMessage:
    """A message the business sent through either fake API (the request body verbatim)."""

    id: str
    provider: Literal["cloud", "evolution"]
    channel: str
    to: str
    type: str
    body: dict[str, Any]
    created_at: float
    statuses: list[str] = field(default_factory=list)
    error_code: int | None = None

    def public(self) -> dict[str, Any]:
        """JSON form for the control API."""
        return asdict(self)


@dataclass(slots=True)
class PhoneEcho:
    """A message the business sent from the WhatsApp Business app on its own phone (a
    coexistence number), echoed to the webhook as `smb_message_echoes`."""

    id: str
    channel: str
    to: str
    type: str
    item: dict[str, Any]
    webhook_status: int | None = None


@dataclass(slots=True)
class CustomerMessage:
    """A message a simulated customer sent (the provider's webhook item verbatim)."""

    id: str
    provider: Literal["cloud", "evolution"]
    channel: str
    sender: str
    type: str
    item: dict[str, Any]
    created_at: float
    webhook_status: int | None = None

    def public(self) -> dict[str, Any]:
        """JSON form for the control API."""
        return asdict(self)


@dataclass(slots=True)
class ErrorFault:
    """Fail the next `remaining` sends with this error."""

    code: int
    http_status: int = 400
    message: str | None = None
    remaining: int = 1
    provider: Literal["cloud", "evolution", "any"] = "any"
    channel: str | None = None

    def matches(self, provider: str, channel: str) -> bool:
        """Whether this fault applies to a send on this provider/channel."""
        return (
            self.remaining > 0
            and self.provider in ("any", provider)
            and self.channel in (None, channel)
        )


@dataclass(slots=True)
class Faults:
    """Injected misbehaviour; cleared by `reset` or the control API."""

    errors: list[ErrorFault] = field(default_factory=list)
    async_errors: list[ErrorFault] = field(default_factory=list)  # 200 now, `failed` later
    latency_ms: int = 0
    duplicate_webhooks: bool = False
    reorder_statuses: bool = False
    drop_statuses: set[str] = field(default_factory=set)
    window_mode: Literal["sync", "async"] | None = None
    # Media downloads: serve altered bytes (same size, so the sha256 check must catch it), and
    # answer the next N downloads 404 as an expired lookaside URL does.
    tamper_media: bool = False
    expire_media_urls: int = 0
    # Answer the next N downloads with this HTTP status (a CDN's 5xx, or a permanent 4xx).
    failing_media_downloads: int = 0
    media_download_status: int = 503
    # Accept the next N sends by media id, then forget the id and report `failed` 131053.
    vanish_sent_media: int = 0

    def take(self, pool: list[ErrorFault], provider: str, channel: str) -> ErrorFault | None:
        """Consume one matching fault from `pool`."""
        for fault in pool:
            if fault.matches(provider, channel):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    pool.remove(fault)
                return fault
        return None

    def public(self) -> dict[str, Any]:
        """JSON form for the control API."""
        data = asdict(self)
        data["drop_statuses"] = sorted(self.drop_statuses)
        return data


@dataclass(slots=True)
class EvolutionInstance:
    """An instance on the fake Evolution server."""

    name: str
    token: str
    integration: str
    instance_id: str
    state: str = "close"
    qr_count: int = 0
    webhook: dict[str, Any] | None = None
    owner_number: str | None = None
    profile_name: str | None = None
    number: str | None = None
    created_at: float = field(default_factory=time.time)

    def row(self) -> dict[str, Any]:
        """The instance as `fetchInstances` lists it."""
        return {
            "id": self.instance_id,
            "name": self.name,
            "connectionStatus": self.state,
            "ownerJid": f"{self.owner_number}@s.whatsapp.net" if self.owner_number else None,
            "profileName": self.profile_name,
            "profilePicUrl": None,
            "integration": self.integration,
            "number": self.number,
            "token": self.token,
            "webhook": self.webhook,
        }


class RateWindow:
    """Counts events in a moving window (the throughput and pair-rate limits)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._events: dict[Any, deque[float]] = {}

    def hit(self, key: Any, limit: int, period: float) -> bool:
        """Record an event; False when it would exceed `limit` per `period`."""
        now = self._clock()
        events = self._events.setdefault(key, deque())
        while events and now - events[0] >= period:
            events.popleft()
        if len(events) >= limit:
            return False
        events.append(now)
        return True

    def clear(self) -> None:
        """Forget all counts."""
        self._events.clear()


class SimState:
    """Everything the simulator knows; tests may read it directly in-process."""

    def __init__(self, settings: SimulatorSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget everything (numbers, templates, messages, instances, faults)."""
        self.numbers: dict[str, BusinessNumber] = {}
        self.templates: dict[tuple[str, str, str], SimTemplate] = {}
        # (waba, name) → when a template of that name was deleted (names stay taken 30 days).
        self.deleted_template_names: dict[tuple[str, str], float] = {}
        self.windows: dict[tuple[str, str], float] = {}
        self.sent: list[SentMessage] = []
        self.received: list[CustomerMessage] = []
        self.read_marks: list[dict[str, Any]] = []
        self.media: dict[str, tuple[bytes, str, str]] = {}  # id → (data, mime, owner channel)
        self.media_downloads: dict[str, int] = {}  # id → downloads served
        self.media_lookups: dict[str, int] = {}  # id → `GET /{media_id}` URL lookups answered
        self.instances: dict[str, EvolutionInstance] = {}
        self.faults = Faults(latency_ms=self.settings.latency_ms)
        self.webhook_log: list[dict[str, Any]] = []
        self.rates = RateWindow(self.clock)

    def numbers_for_token(self, token: str) -> list[BusinessNumber]:
        """Numbers the bearer token may act for."""
        return [n for n in self.numbers.values() if secrets.compare_digest(n.access_token, token)]

    def window_open(self, phone_number_id: str, wa_id: str) -> bool:
        """Whether the 24-hour customer service window is open."""
        last = self.windows.get((phone_number_id, wa_id))
        return last is not None and self.clock() - last < WINDOW_SECONDS

    def open_window(self, phone_number_id: str, wa_id: str, at: float | None = None) -> None:
        """Start (or restart) the window as if the customer just wrote."""
        self.windows[(phone_number_id, wa_id)] = self.clock() if at is None else at

    def close_window(self, phone_number_id: str, wa_id: str) -> None:
        """Close the window as if the customer last wrote over 24 hours ago."""
        self.windows.pop((phone_number_id, wa_id), None)

    def sent_messages(
        self, *, channel: str | None = None, to: str | None = None, provider: str | None = None
    ) -> list[SentMessage]:
        """Messages the business sent, oldest first, optionally filtered."""
        return [
            m
            for m in self.sent
            if (channel is None or m.channel == channel)
            and (to is None or m.to == to)
            and (provider is None or m.provider == provider)
        ]

    def find_sent(self, message_id: str) -> SentMessage | None:
        """A sent message by its provider id."""
        return next((m for m in self.sent if m.id == message_id), None)

    def on_whatsapp(self, number: str) -> bool:
        """Whether a number is a (simulated) WhatsApp user."""
        return (
            number.isdigit()
            and 8 <= len(number) <= 15
            and number not in self.settings.not_on_whatsapp
        )
