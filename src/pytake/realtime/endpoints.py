"""WS /ws (auth by first message, then pushed events) and GET /api/v1/ws/stats.

Protocol: connect, send `{"type": "auth", "token": "<JWT or API key>"}` (optionally with
`"last_event_id"` to replay what was missed) within settings.ws_auth_timeout_seconds; the server
answers `{"type": "auth_ok"}` and then pushes events. `{"type": "ping"}` is answered with
`{"type": "pong"}`. Close codes: 4000 malformed or unexpected first message, 4001 authentication
failed, 4002 no authentication in time, 4008 the client could not keep up (send queue full).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel
from sqlalchemy import select

from pytake.auth.dependencies import SignedIn, resolve_token
from pytake.auth.principal import Principal
from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.errors import PermissionDenied, PyTakeError
from pytake.events.types import CommittedEvent, iso
from pytake.models.event import OutboxEvent
from pytake.realtime.frames import frame_for, required_scope
from pytake.realtime.registry import Connection, Registry, may_receive
from pytake.realtime.stats import shared_stats

log = logging.getLogger(__name__)

CLOSE_BAD_MESSAGE = 4000
CLOSE_AUTH_FAILED = 4001
CLOSE_AUTH_TIMEOUT = 4002
REPLAY_LIMIT = 1000

ws_router = APIRouter()
stats_router = APIRouter(prefix="/ws", tags=["realtime"])


class AuthRefused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason[:120]  # a close reason is at most 123 bytes


@ws_router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    registry: Registry = websocket.app.state.realtime
    shared_stats(websocket.app)  # this process now has sockets to report
    await websocket.accept()
    conn = registry.open(websocket)
    try:
        try:
            principal, last_event_id = await _authenticate(websocket, conn)
        except AuthRefused as refused:
            await _close(websocket, refused.code, refused.reason)
            return
        registry.authenticate(conn, principal)
        await conn.send_now({"type": "auth_ok"})
        if last_event_id is not None:
            await _replay(websocket, conn, principal, last_event_id)
        await _serve(websocket, conn)
    except WebSocketDisconnect:
        pass
    finally:
        registry.close(conn)


async def _authenticate(websocket: WebSocket, conn: Connection) -> tuple[Principal, int | None]:
    settings: Settings = websocket.app.state.settings
    try:
        raw = await asyncio.wait_for(websocket.receive_text(), settings.ws_auth_timeout_seconds)
    except TimeoutError:
        raise AuthRefused(CLOSE_AUTH_TIMEOUT, "authentication timeout") from None
    conn.registry.count_received(conn)
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise AuthRefused(CLOSE_BAD_MESSAGE, "first message must be JSON") from None
    if not isinstance(message, dict):
        raise AuthRefused(CLOSE_BAD_MESSAGE, 'expected {"type": "auth", "token": "..."}')
    token = message.get("token")
    if message.get("type") != "auth" or not isinstance(token, str) or not token:
        raise AuthRefused(CLOSE_BAD_MESSAGE, 'expected {"type": "auth", "token": "..."}')
    last_event_id = message.get("last_event_id")
    factory = websocket.app.state.session_factory
    try:
        async with unit_of_work(factory) as session:
            principal = await resolve_token(session, settings, token, websocket.app.state.key_usage)
    except PyTakeError as exc:
        raise AuthRefused(CLOSE_AUTH_FAILED, f"authentication failed: {exc.message}") from None
    return principal, last_event_id if isinstance(last_event_id, int) else None


async def _replay(
    websocket: WebSocket, conn: Connection, principal: Principal, after_id: int
) -> None:
    """Send committed events after `after_id` (live ones may arrive twice: dedupe by `id`)."""
    async with websocket.app.state.session_factory() as session:
        rows = await session.scalars(
            select(OutboxEvent)
            .where(
                OutboxEvent.organization_id == principal.organization_id, OutboxEvent.id > after_id
            )
            .order_by(OutboxEvent.id)
            .limit(REPLAY_LIMIT)
        )
        for row in rows:
            if may_receive(principal, required_scope(row.type)):
                event = CommittedEvent(
                    row.id, str(row.organization_id), row.type, row.payload, iso(row.created_at)
                )
                await conn.send_now(frame_for(event))


async def _serve(websocket: WebSocket, conn: Connection) -> None:
    sender = conn.sender = asyncio.create_task(conn.send_loop())
    reader = asyncio.create_task(_read_loop(websocket, conn))
    try:
        await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, reader):
            task.cancel()
        for task in (sender, reader):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task
    if conn.kicked is not None:
        log.info("websocket %s disconnected: %s", conn.id, conn.kicked[1])
        await _close(websocket, *conn.kicked)
        # The peer is not reading: a graceful close would wait on its full buffers forever.
        _abort_transport(websocket)


async def _read_loop(websocket: WebSocket, conn: Connection) -> None:
    while True:
        raw = await websocket.receive_text()
        conn.registry.count_received(conn)
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            if orjson.loads(raw).get("type") == "ping":
                conn.offer('{"type":"pong"}')


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    # A stalled client may never read the close frame; don't wait on it for long.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code, reason), 1.0)


def _abort_transport(websocket: WebSocket) -> None:
    """Best effort: find the server's transport behind the ASGI `send` and abort it.

    ASGI offers no way to drop a connection whose peer stopped reading; uvicorn's protocol
    object (the `send` callable's owner, behind Starlette's wrappers) holds the transport.
    """
    candidates: list[Any] = [websocket._send]
    for _ in range(8):
        if not candidates:
            return
        fn = candidates.pop(0)
        transport = getattr(getattr(fn, "__self__", None), "transport", None)
        if transport is not None and hasattr(transport, "abort"):
            transport.abort()
            return
        for cell in getattr(fn, "__closure__", None) or ():
            with contextlib.suppress(ValueError):
                if callable(cell.cell_contents):
                    candidates.append(cell.cell_contents)


class WsStatsOut(BaseModel):
    total_connections: int
    active_connections: int
    authenticated_connections: int
    uptime_seconds: int
    messages_sent: int
    messages_received: int


@stats_router.get("/stats", response_model=WsStatsOut)
async def ws_stats(request: Request, principal: SignedIn) -> dict[str, Any]:
    """WebSocket figures of every serve process (with Redis; else this one's): an org admin's
    organisation, or (super admin) all connections including those not yet authenticated."""
    if not principal.is_org_admin:
        raise PermissionDenied("Only organisation admins can read WebSocket statistics")
    scope = None if principal.sees_all_organizations else principal.organization_id
    shared = shared_stats(request.app)
    if shared is not None:
        return await shared.stats(scope)
    registry: Registry = request.app.state.realtime
    return registry.stats(scope)
