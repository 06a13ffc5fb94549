"""WS /ws following the documented protocol against a real server on a loopback port."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from pytake.config import Settings
from tests.conftest import TEST_REDIS_URL, Org, add_user, create_api_key, register_org
from tests.events.helpers import (
    eventually,
    inbound_message,
    produce,
    running_app,
    serving,
    status_change,
    wait_until,
)


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/ws"


async def recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(10):  # fail rather than hang if a frame never comes
        return dict(json.loads(await ws.recv(decode=True)))


async def authed(base: str, token: str, **extra: Any) -> ClientConnection:
    ws = await connect(ws_url(base))
    await ws.send(json.dumps({"type": "auth", "token": token, **extra}))
    assert await recv(ws) == {"type": "auth_ok"}
    return ws


async def test_inbound_message_and_status_in_the_documented_shapes(
    app: FastAPI, live_url: str, org: Org
) -> None:
    async with await authed(live_url, org.token) as ws:
        data = inbound_message("Hello!", "+5561999999999")
        await produce(app, org.id, "message.received", data)
        frame = await recv(ws)
        assert frame["type"] == "message"
        assert frame["event"] == "message.received"
        assert {"from", "message", "timestamp"} <= frame["data"].keys()
        assert frame["data"]["from"] == "+5561999999999"
        assert frame["data"]["message"] == "Hello!"
        assert frame["data"]["timestamp"] == "2025-10-03T16:30:00Z"
        assert frame["data"]["conversation"] == data["conversation"]

        await produce(app, org.id, "message.delivered", status_change("wamid.HBgNNTU2"))
        frame = await recv(ws)
        assert frame["type"] == "status"
        assert {k: frame["data"][k] for k in ("message_id", "status", "timestamp")} == {
            "message_id": "wamid.HBgNNTU2",
            "status": "delivered",
            "timestamp": "2025-01-07T10:00:05Z",
        }

        await produce(app, org.id, "conversation.assigned", {"conversation": {"id": "c1"}})
        frame = await recv(ws)
        assert frame["type"] == "conversation" and frame["event"] == "conversation.assigned"
        assert frame["data"] == {"conversation": {"id": "c1"}}


async def test_ping_is_answered_with_pong(live_url: str, org: Org) -> None:
    async with await authed(live_url, org.token) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv(ws) == {"type": "pong"}


async def test_api_key_authenticates_and_scopes_filter_events(
    app: FastAPI, live_url: str, client: httpx.AsyncClient, org: Org
) -> None:
    key = await create_api_key(client, org, ["contacts:read"])
    async with await authed(live_url, key) as ws:
        await produce(app, org.id, "message.received", inbound_message())
        await produce(app, org.id, "contact.created", {"contact": {"id": "k1"}})
        frame = await recv(ws)
        # The message event went out first but this key may not read messages.
        assert frame["type"] == "contact" and frame["data"] == {"contact": {"id": "k1"}}


async def test_viewer_and_agent_receive_what_their_role_reads(
    app: FastAPI, live_url: str, client: httpx.AsyncClient, org: Org
) -> None:
    for role in ("viewer", "agent"):
        _, token = await add_user(client, org, role)
        async with await authed(live_url, token) as ws:
            await produce(app, org.id, "message.received", inbound_message(role))
            assert (await recv(ws))["data"]["message"] == role


@pytest.mark.parametrize("token", ["not-a-jwt", "pytake_live_doesnotexist0000000000"])
async def test_bad_token_closes_with_a_clear_code(live_url: str, token: str) -> None:
    async with connect(ws_url(live_url)) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4001
    assert ws.close_reason is not None and ws.close_reason.startswith("authentication failed")


async def test_a_first_message_that_is_not_auth_closes(live_url: str) -> None:
    async with connect(ws_url(live_url)) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4000


async def test_no_auth_in_time_closes(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(ws_auth_timeout_seconds=0.2, run_background_loops=False)
    async with running_app(settings) as short, serving(short) as base:
        async with connect(ws_url(base)) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 4002
        assert ws.close_reason == "authentication timeout"


async def test_nothing_is_sent_before_auth(app: FastAPI, live_url: str, org: Org) -> None:
    async with connect(ws_url(live_url)) as waiting, await authed(live_url, org.token) as ready:
        await produce(app, org.id, "contact.created", {"contact": {"id": "before"}})
        first = await recv(ready)  # dispatch reached every connection of the org by now
        await waiting.send(json.dumps({"type": "auth", "token": org.token}))
        assert await recv(waiting) == {"type": "auth_ok"}
        await produce(app, org.id, "contact.created", {"contact": {"id": "after"}})
        assert (await recv(waiting))["data"] == {"contact": {"id": "after"}}
        assert first["data"] == {"contact": {"id": "before"}}


async def test_no_cross_organisation_leaks(
    app: FastAPI, live_url: str, org: Org, other_org: Org
) -> None:
    async with (
        await authed(live_url, org.token) as mine,
        await authed(live_url, other_org.token) as theirs,
    ):
        await produce(app, org.id, "message.received", inbound_message("for org"))
        await produce(app, other_org.id, "message.received", inbound_message("for other"))
        assert (await recv(theirs))["data"]["message"] == "for other"
        assert (await recv(mine))["data"]["message"] == "for org"


async def test_missed_events_are_replayed_after_last_event_id(
    app: FastAPI, live_url: str, org: Org
) -> None:
    async with await authed(live_url, org.token) as ws:
        await produce(app, org.id, "contact.created", {"contact": {"id": "seen"}})
        seen = await recv(ws)
    await produce(app, org.id, "contact.updated", {"contact": {"id": "missed-1"}})
    await produce(app, org.id, "contact.updated", {"contact": {"id": "missed-2"}})
    async with await authed(live_url, org.token, last_event_id=seen["id"]) as ws:
        replayed = [await recv(ws), await recv(ws)]
    assert [f["data"]["contact"]["id"] for f in replayed] == ["missed-1", "missed-2"]


async def test_stats_for_org_admins(
    live_url: str, client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    async with await authed(live_url, org.token), await authed(live_url, org.token):
        resp = await client.get("/api/v1/ws/stats", headers=org.headers)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body.keys() == {
            "total_connections",
            "active_connections",
            "authenticated_connections",
            "uptime_seconds",
            "messages_sent",
            "messages_received",
        }
        assert body["authenticated_connections"] == 2 and body["active_connections"] == 2
        assert body["messages_sent"] >= 2 and body["messages_received"] >= 2
        other = (await client.get("/api/v1/ws/stats", headers=other_org.headers)).json()
        assert other["authenticated_connections"] == 0
    _, agent = await add_user(client, org, "agent")
    resp = await client.get("/api/v1/ws/stats", headers={"Authorization": f"Bearer {agent}"})
    assert resp.status_code == 403
    assert resp.json()["error"] == "insufficient_permissions"


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def stalled_client(
    port: int, token: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client that authenticates and then never reads its socket again."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1024)
    writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    payload = json.dumps({"type": "auth", "token": token}).encode()
    mask = os.urandom(4)
    header = bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(payload)) + mask
    writer.write(header + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    await writer.drain()
    return reader, writer


async def test_a_stalled_client_is_disconnected_while_another_keeps_receiving(
    make_settings: Callable[..., Settings], client: httpx.AsyncClient
) -> None:
    settings = make_settings(ws_send_queue_size=8, run_background_loops=False)
    async with running_app(settings) as small, serving(small) as base:
        org = await register_org(client)
        port = int(base.rsplit(":", 1)[1])
        _, stalled = await stalled_client(port, org.token)
        try:
            await _outlive_a_stalled_client(small, base, org)
        finally:
            stalled.transport.abort()


async def _outlive_a_stalled_client(small: FastAPI, base: str, org: Org) -> None:
    registry = small.state.realtime
    async with await authed(base, org.token) as healthy:
        await wait_until(lambda: registry.connections_of(org.id) == 2)
        blob = "x" * 100_000
        sent = 0
        while registry.connections_of(org.id) == 2:
            assert sent < 300, "the stalled client was never disconnected"
            await produce(small, org.id, "contact.updated", {"contact": {"n": sent}, "b": blob})
            frame = await recv(healthy)
            assert frame["data"]["contact"] == {"n": sent}
            sent += 1
        assert registry.slow_disconnects == 1
        # The healthy one still receives.
        await produce(small, org.id, "contact.updated", {"contact": {"n": "last"}})
        assert (await recv(healthy))["data"]["contact"] == {"n": "last"}


@pytest.mark.skipif(
    not TEST_REDIS_URL, reason="fan-out across processes needs PYTAKE_TEST_REDIS_URL"
)
async def test_event_from_one_server_reaches_a_socket_on_another_through_redis(
    app: FastAPI, make_settings: Callable[..., Settings], org: Org
) -> None:
    second = make_settings(run_background_loops=False)
    async with (
        running_app(second) as other,
        serving(other) as base,
        await authed(base, org.token) as ws,
    ):
        await produce(app, org.id, "message.received", inbound_message("via redis"))
        assert (await recv(ws))["data"]["message"] == "via redis"


async def _authenticated_on(base: str, org: Org) -> int:
    async with httpx.AsyncClient(base_url=base) as http:
        resp = await http.get("/api/v1/ws/stats", headers=org.headers)
        assert resp.status_code == 200, resp.text
        return int(resp.json()["authenticated_connections"])


@pytest.mark.skipif(not TEST_REDIS_URL, reason="stats across processes need PYTAKE_TEST_REDIS_URL")
async def test_stats_count_the_sockets_of_every_server_sharing_redis(
    make_settings: Callable[..., Settings], client: httpx.AsyncClient
) -> None:
    org = await register_org(client)
    settings = make_settings(ws_stats_report_seconds=0.05, run_background_loops=False)
    async with (
        running_app(settings) as one,
        serving(one) as first,
        running_app(settings) as two,
        serving(two) as second,
    ):
        async with (
            await authed(first, org.token),
            await authed(second, org.token),
            await authed(second, org.token),
        ):
            # Either server answers for all three sockets once the other has reported.
            await eventually(lambda: _equals(_authenticated_on(first, org), 3))
            await eventually(lambda: _equals(_authenticated_on(second, org), 3))
        await eventually(lambda: _equals(_authenticated_on(first, org), 0))
