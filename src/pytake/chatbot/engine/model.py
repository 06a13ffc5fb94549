"""The interpreter's vocabulary: a flow version, a session's state, what happens, what to do.

Plain data only: the runtime (pytake.chatbot.consumer) loads these from rows and turns the
actions back into rows; nothing here knows of a database or of HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Waiting = Literal["input", "timer", "http"]
SessionStatus = Literal["active", "ended", "handed_off", "expired"]
CounterKind = Literal["entered", "completed", "dropped"]


@dataclass(frozen=True, slots=True)
class FlowVersion:
    """A published (frozen) flow: its trigger, entry node and nodes by id."""

    flow_id: str
    version: int
    name: str
    trigger: dict[str, Any]
    entry: str
    nodes: dict[str, dict[str, Any]]
    # Whether a node may read the contact's tags (a condition, a text): the runtime loads
    # them only then. Conservative: any mention of "tags" anywhere in the nodes counts.
    reads_tags: bool = True

    @classmethod
    def of(cls, flow_id: str, version: int, definition: dict[str, Any]) -> FlowVersion:
        nodes = {str(n["id"]): n for n in definition.get("nodes", []) if isinstance(n, dict)}
        return cls(
            flow_id,
            version,
            str(definition.get("name", "")),
            dict(definition.get("trigger") or {}),
            str(definition.get("entry", "")),
            nodes,
            "tags" in json.dumps(list(nodes.values()), default=str),
        )


@dataclass(frozen=True, slots=True)
class BotSettings:
    welcome_message: str | None = None
    fallback_message: str | None = None
    handoff_enabled: bool = True
    # Inactivity after which a session waiting for the customer ends.
    session_timeout_seconds: int = 86_400
    expiry_message: str | None = None
    # Nodes a session may run without waiting for the customer before the loop guard stops it.
    max_steps: int = 50


@dataclass(frozen=True, slots=True)
class Bot:
    """A chatbot as the interpreter sees it: its settings and the current version of each
    active flow (a running session may be on an older version: passed on its own)."""

    settings: BotSettings
    flows: dict[str, FlowVersion]


@dataclass(slots=True)
class SessionState:
    """A conversation's place in a flow. Saved with the replies it caused, in one transaction."""

    flow_id: str
    version: int
    node: str
    variables: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    waiting: Waiting | None = None
    wake_at: datetime | None = None
    status: SessionStatus = "active"
    end_reason: str | None = None
    # Nodes run since the customer last said something (the loop guard's count).
    steps: int = 0
    # The request an `http` node is waiting on (repeated if the worker died meanwhile).
    pending_http: dict[str, Any] | None = None

    @property
    def live(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class Context:
    """What the interpreter may read of the world: the time, the contact, the window."""

    now: datetime
    contact: dict[str, Any] = field(default_factory=dict)
    # The organisation's time zone (IANA name), for time-of-day and weekday conditions.
    timezone: str = "UTC"
    # Whether the 24-hour customer-service window is open (free-form sends allowed).
    window_open: bool = True


# --- what happens ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inbound:
    """A customer's message: its text (or caption) and the id of a button or row tapped."""

    text: str | None = None
    reply_id: str | None = None
    message_type: str = "text"
    new_conversation: bool = False


@dataclass(frozen=True, slots=True)
class Start:
    """A flow started by the API (`manual` trigger), at its entry node."""

    flow_id: str


@dataclass(frozen=True, slots=True)
class Wake:
    """The session's `wake_at` passed: a delay ended, an input wait expired, or an HTTP
    call's lease ran out (the worker that made it died: make it again)."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """The answer to a session's pending HTTP call (`status` None: no answer, see `error`)."""

    status: int | None
    body: Any = None
    error: str | None = None


Event = Inbound | Start | Wake | HttpResponse


# --- what to do ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """Send a message to the customer (Graph `type` and content)."""

    node: str | None
    type: str
    content: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SendTemplate:
    """Send an approved template (allowed outside the 24-hour window)."""

    node: str
    template: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Handoff:
    """Stop the bot in this conversation and pass it to people."""

    node: str | None
    reason: str
    user_id: str | None = None
    team: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpdateContact:
    changes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallHttp:
    """Make this HTTP request and feed the answer back as an `HttpResponse`."""

    node: str
    method: str
    url: str
    headers: dict[str, str]
    body: Any
    timeout: float


@dataclass(frozen=True, slots=True)
class Count:
    """A per-node counter of a flow version: where customers enter, pass and leave."""

    flow_id: str
    version: int
    node: str
    kind: CounterKind


Action = Reply | SendTemplate | Handoff | UpdateContact | CallHttp | Count


@dataclass(slots=True)
class Outcome:
    """The interpreter's answer: the session afterwards (None: there is none) and the actions,
    in order."""

    state: SessionState | None
    actions: list[Action] = field(default_factory=list)
    # Why no flow answered (for the record), when nothing did.
    note: str | None = None
