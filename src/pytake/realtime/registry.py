"""Open WebSocket connections, indexed by organisation, each with a bounded send queue.

Dispatch never awaits a socket: a frame is rendered once per event and offered to each
connection's queue; a connection whose queue is full is a client that cannot keep up, and it
is disconnected (close code 4008) rather than buffered without limit.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import orjson
from starlette.websockets import WebSocket

from pytake.auth.principal import Principal
from pytake.events.types import EVENT_TYPES, CommittedEvent
from pytake.realtime.frames import frame_for, required_scope

CLOSE_SLOW_CONSUMER = 4008

_ids = itertools.count(1)


@dataclass
class Counters:
    total_connections: int = 0
    active_connections: int = 0
    authenticated_connections: int = 0
    messages_sent: int = 0
    messages_received: int = 0

    def as_list(self) -> list[int]:
        return [getattr(self, name) for name in COUNTER_NAMES]


COUNTER_NAMES = (
    "total_connections",
    "active_connections",
    "authenticated_connections",
    "messages_sent",
    "messages_received",
)


class Connection:
    """One socket: its principal once authenticated, its queue, and why it was dropped."""

    __slots__ = (
        "id",
        "kicked",
        "may_receive",
        "org_key",
        "principal",
        "queue",
        "registry",
        "sender",
        "websocket",
    )

    def __init__(self, registry: Registry, websocket: WebSocket, queue_size: int) -> None:
        self.id = next(_ids)
        self.registry = registry
        self.websocket = websocket
        self.principal: Principal | None = None
        self.org_key: str | None = None
        self.may_receive: frozenset[str] = frozenset()  # event types, decided at authentication
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.kicked: tuple[int, str] | None = None
        self.sender: asyncio.Task[None] | None = None

    def offer(self, text: str) -> None:
        if self.kicked is not None:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.kick(CLOSE_SLOW_CONSUMER, "slow consumer: send queue full")

    def kick(self, code: int, reason: str) -> None:
        """Drop the connection: no more events, and the endpoint closes the socket."""
        self.kicked = (code, reason)
        self.registry.slow_disconnects += code == CLOSE_SLOW_CONSUMER
        self.registry.unlisten(self)
        # The sender is likely blocked writing to this very socket; stop it there.
        if self.sender is not None:
            self.sender.cancel()

    async def send_loop(self) -> None:
        """Drain the queue onto the socket until the connection is kicked or closed."""
        while True:
            text = await self.queue.get()
            await self.websocket.send_text(text)
            self.registry.count_sent(self)

    async def send_now(self, payload: dict[str, object]) -> None:
        await self.websocket.send_text(orjson.dumps(payload).decode())
        self.registry.count_sent(self)


@dataclass
class Registry:
    queue_size: int = 256
    started: float = field(default_factory=time.monotonic)
    totals: Counters = field(default_factory=Counters)
    by_org_counters: dict[str, Counters] = field(default_factory=lambda: defaultdict(Counters))
    slow_disconnects: int = 0
    _by_org: dict[str, set[Connection]] = field(default_factory=lambda: defaultdict(set))

    def open(self, websocket: WebSocket) -> Connection:
        self.totals.total_connections += 1
        self.totals.active_connections += 1
        return Connection(self, websocket, self.queue_size)

    def authenticate(self, conn: Connection, principal: Principal) -> None:
        """From now on the connection receives its organisation's events."""
        conn.principal = principal
        conn.org_key = str(principal.organization_id)
        # Decided once: checking scopes per event per socket was a twentieth of dispatch.
        conn.may_receive = frozenset(
            t for t in EVENT_TYPES if may_receive(principal, required_scope(t))
        )
        self._by_org[conn.org_key].add(conn)
        org = self.by_org_counters[conn.org_key]
        org.total_connections += 1
        org.active_connections += 1
        org.authenticated_connections += 1
        org.messages_received += 1  # the auth message, counted in totals on arrival
        self.totals.authenticated_connections += 1

    def unlisten(self, conn: Connection) -> None:
        """Stop offering events to the connection."""
        members = self._by_org.get(conn.org_key or "")
        if members is not None:
            members.discard(conn)
            if not members:
                del self._by_org[conn.org_key or ""]

    def close(self, conn: Connection) -> None:
        self.totals.active_connections -= 1
        if conn.org_key is None:
            return
        self.unlisten(conn)
        org = self.by_org_counters[conn.org_key]
        org.active_connections -= 1
        org.authenticated_connections -= 1
        self.totals.authenticated_connections -= 1

    def count_sent(self, conn: Connection) -> None:
        self.totals.messages_sent += 1
        if conn.org_key is not None:
            self.by_org_counters[conn.org_key].messages_sent += 1

    def count_received(self, conn: Connection) -> None:
        self.totals.messages_received += 1
        if conn.org_key is not None:
            self.by_org_counters[conn.org_key].messages_received += 1

    def dispatch(self, events: list[CommittedEvent]) -> None:
        """Bus subscriber: offer each event to its organisation's permitted connections."""
        for event in events:
            members = self._by_org.get(event.organization_id)
            if not members:
                continue
            text = orjson.dumps(frame_for(event)).decode()  # once per event, for every socket
            for conn in list(members):
                if event.type in conn.may_receive:
                    conn.offer(text)

    def connections_of(self, organization_id: uuid.UUID) -> int:
        return len(self._by_org.get(str(organization_id), ()))

    def organisations(self) -> list[str]:
        """Organisations this process has counters for (any that ever had a connection)."""
        return list(self.by_org_counters)

    def counters_of(self, organization_id: str | None) -> list[int]:
        """The counters in COUNTER_NAMES order: one organisation's, or (None) the totals."""
        if organization_id is None:
            return self.totals.as_list()
        counters = self.by_org_counters.get(organization_id)
        return counters.as_list() if counters is not None else [0] * len(COUNTER_NAMES)

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def stats(self, organization_id: uuid.UUID | None) -> dict[str, int]:
        """The /api/v1/ws/stats body: this process's figures, for one organisation or all."""
        org = None if organization_id is None else str(organization_id)
        figures = dict(zip(COUNTER_NAMES, self.counters_of(org), strict=True))
        figures["uptime_seconds"] = int(self.uptime())
        return figures


def may_receive(principal: Principal | None, scopes: tuple[str, ...]) -> bool:
    return principal is not None and any(principal.can(s) for s in scopes)
