"""Schemathesis over the app's own OpenAPI schema: no request gets a 5xx, and every 4xx is in its
surface's error envelope.

Every operation of `create_app()`'s schema is a test of its own (routes added later are fuzzed
without touching this file). Requests go over real HTTP to a server running in a thread of its
own (its own event loop, engine and lifespan) on the suite's database, authenticated in turn with
an org admin's JWT and with an API key holding every scope. Ids the server hands out (a 201's
`id`, any `<name>_id` in a body) are fed back into the path parameters of that name, so item
routes are exercised on rows that exist, not only on 404s.

The example budget is fixed and Hypothesis is derandomised (no example database): the same
schema gives the same requests on every run. Outbound connections from the server under test
are refused unless they go to loopback, so a fuzzed URL never leaves the machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import make_url

from pytake.app import create_app
from pytake.auth.scopes import SCOPES
from pytake.config import Settings
from tests.conftest import TEST_DATABASE_URL

# Per operation and generation phase; with ~75 operations this keeps a run near a minute.
MAX_EXAMPLES = 25

SCHEMA = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi())


def _is_loopback(host: Any) -> bool:
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).strip("[]")).is_loopback
    except ValueError:
        return False


class LoopbackOnlyLoop(asyncio.SelectorEventLoop):
    """The server's event loop: name lookups and connections beyond loopback are refused."""

    async def getaddrinfo(self, host: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if not _is_loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, f"fuzz test: {host!r} is not loopback")
        return await super().getaddrinfo(host, *args, **kwargs)

    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        host = kwargs.get("host", args[1] if len(args) > 1 else None)
        if kwargs.get("sock") is None and not _is_loopback(host):
            raise ConnectionRefusedError(f"fuzz test: {host!r} is not loopback")
        return await super().create_connection(*args, **kwargs)

    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        if not _is_loopback(address[0]):
            raise ConnectionRefusedError(f"fuzz test: {address[0]!r} is not loopback")
        await super().sock_connect(sock, address)


class ThreadedServer:
    """create_app(settings) under uvicorn on a loopback port, in a thread with its own loop."""

    def __init__(self, settings: Settings) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
        )
        self.thread = threading.Thread(target=self._run, name="fuzz-server", daemon=True)

    def _run(self) -> None:
        loop = LoopbackOnlyLoop()
        try:
            loop.run_until_complete(self.server.serve())
        finally:
            loop.close()

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fuzz server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


class Target:
    """The running server, two credentials, and the ids it has handed out so far."""

    def __init__(self, base_url: str, jwt: str, api_key: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.credentials = itertools.cycle([jwt, api_key])
        self.ids: dict[str, list[str]] = defaultdict(list)
        self.turn = itertools.count()

    def fill_path(self, case: Any) -> None:
        """On every other example, known ids replace the fuzzed path parameters."""
        if next(self.turn) % 2:
            return
        for name in list(case.path_parameters or {}):
            known = self.ids.get(name)
            if known:
                case.path_parameters[name] = known[-1]

    def learn(self, case: Any, response: requests.Response) -> None:
        if case.method == "DELETE" and response.status_code < 300:
            for name, value in (case.path_parameters or {}).items():
                if value in self.ids.get(name, ()):
                    self.ids[name].remove(value)
            return
        if response.status_code >= 300 or "json" not in response.headers.get("content-type", ""):
            return
        try:
            body = response.json()
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        item_param = _ITEM_PARAMS.get(case.path)
        if case.method == "POST" and item_param and isinstance(body.get("id"), str):
            self.ids[item_param].append(body["id"])
        for key, value in body.items():
            is_id = key in _PATH_PARAMS and isinstance(value, str) and _is_uuid(value)
            if is_id and value not in self.ids[key]:
                self.ids[key].append(value)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _item_params(paths: dict[str, Any]) -> dict[str, str]:
    """Collection path → the parameter naming one of its items (`/v1/tags` → `tag_id`)."""
    found: dict[str, str] = {}
    for path in paths:
        head, _, last = path.rpartition("/")
        if last.startswith("{") and last.endswith("}") and "post" in paths.get(head, {}):
            found.setdefault(head, last[1:-1])
    return found


_RAW = SCHEMA.raw_schema
_ITEM_PARAMS = _item_params(_RAW["paths"])
_PATH_PARAMS = {
    p["name"]
    for ops in _RAW["paths"].values()
    for op in ops.values()
    if isinstance(op, dict)
    for p in op.get("parameters", [])
    if p.get("in") == "path"
}


# A provider (a fuzzed Evolution URL, Meta's at a closed port) that cannot be reached is the
# documented 502/503/504 with its envelope: the upstream failed, not PyTake.
_UPSTREAM_STATUSES = {502, 503, 504}
_UPSTREAM = {"whatsapp_api_error", "provider_unavailable", "service_unavailable"}


def _error_code(path: str, response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else error
    return code if isinstance(code, str) else None


def _check_envelope(path: str, response: requests.Response) -> None:
    """An error carries its surface's envelope, with the status as `code` on /api/v1."""
    try:
        body = response.json()
    except ValueError:
        pytest.fail(f"{response.status_code} without a JSON body: {response.text[:200]!r}")
    if path == "/v1" or path.startswith("/v1/"):
        error = body.get("error") if isinstance(body, dict) else None
        assert isinstance(error, dict), body
        assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), body
        details = error.get("details")
        assert details is None or all(
            isinstance(d, dict) and set(d) >= {"field", "message"} for d in details
        ), body
    else:
        assert isinstance(body, dict), body
        assert isinstance(body.get("error"), str), body
        assert isinstance(body.get("message"), str), body
        assert body.get("code") == response.status_code, body


@pytest.fixture(scope="module")
async def fuzz_database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A database of the fuzzer's own: what it leaves behind (half-run imports, thousands of
    rows) never meets another test."""
    if not TEST_DATABASE_URL:
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
        return
    import asyncpg

    url = make_url(TEST_DATABASE_URL)
    name = f"pytake_fuzz_{uuid.uuid4().hex[:10]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(False)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@pytest.fixture(scope="module")
def target(make_settings: Callable[..., Settings], fuzz_database_url: str) -> Iterator[Target]:
    server = ThreadedServer(
        make_settings(
            database_url=fuzz_database_url,
            rate_limit_v1_per_org="10000000/minute",
            rate_limit_v1_anonymous="10000000/minute",
            # Sends go nowhere: a closed loopback port answers at once.
            meta_graph_url="http://127.0.0.1:9/v23.0",
        )
    )
    base_url = server.start()
    try:
        yield _prepare(base_url)
    finally:
        server.stop()


def _prepare(base_url: str) -> Target:
    """An organisation, its admin's JWT, an all-scopes API key and a few rows to point at."""
    http = requests.Session()
    email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
    resp = http.post(
        f"{base_url}/api/v1/auth/register",
        json={"email": email, "password": "correct-horse-battery", "name": "Fuzz"},
    )
    assert resp.status_code == 201, resp.text
    jwt = resp.json()["token"]
    auth = {"Authorization": f"Bearer {jwt}"}
    resp = http.post(
        f"{base_url}/v1/api-keys", json={"name": "fuzz", "scopes": list(SCOPES)}, headers=auth
    )
    assert resp.status_code == 201, resp.text
    target = Target(base_url, jwt, resp.json()["key"])
    seeds = [
        ("/v1/contacts", {"whatsapp_id": "+5511987650001", "name": "Fuzz Contact"}),
        ("/v1/tags", {"name": "fuzz"}),
        ("/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["message.received"]}),
        (
            "/v1/whatsapp-configs",
            {
                "name": "fuzz number",
                "provider": "official",
                "phone_number_id": "100200300",
                "access_token": "fuzz-token",
                "app_secret": "fuzz-secret",
                "is_default": True,
            },
        ),
    ]
    for path, body in seeds:
        resp = http.post(f"{base_url}{path}", json=body, headers=auth)
        assert resp.status_code == 201, (path, resp.text)
        target.learn(_Seed(path), resp)
    return target


class _Seed:
    method = "POST"
    path_parameters: dict[str, str] = {}

    def __init__(self, path: str) -> None:
        self.path = path


@SCHEMA.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_error_and_every_client_error_in_its_envelope(case: Any, target: Target) -> None:
    target.fill_path(case)
    headers = {"Authorization": f"Bearer {next(target.credentials)}"}
    response = case.call(base_url=target.base_url, session=target.http, headers=headers)
    status = response.status_code
    upstream = status in _UPSTREAM_STATUSES and _error_code(case.path, response) in _UPSTREAM
    assert status < 500 or upstream, (
        f"{case.method} {case.formatted_path} -> {status}: {response.text[:500]}"
    )
    if status >= 400:
        _check_envelope(case.path, response)
    target.learn(case, response)
