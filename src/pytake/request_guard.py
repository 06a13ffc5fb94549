"""The request guard: bounded bodies and no NUL characters, before any route reads a byte.

Every request body is limited (settings.max_request_body_bytes, 1 MiB by default; contact
imports have their own, larger limit): a declared Content-Length above it is refused before
reading, and a streamed body is cut off as it crosses it, so nothing too large is parsed or
stored. The provider webhooks read their bodies with their own limit and are left alone.

NUL characters (`\\u0000` in JSON, `%00` in a URL) are refused with a 422 naming the field:
PostgreSQL cannot store them in text, SQLite would, and the same request must get the same
answer on either engine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pytake.errors import PayloadTooLarge, PyTakeError, RateLimited, ValidationFailed, render
from pytake.observability import request_id_var

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NUL_MESSAGE = "must not contain NUL characters (\\u0000)"


class RequestGuard:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        default_limit: int,
        limits: dict[str, int],
        exempt_prefixes: tuple[str, ...] = (),
        count: Callable[[Request], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = limits  # exact path -> its own limit
        self.exempt_prefixes = exempt_prefixes
        # A refusal here is answered before the route's rate limit runs: `count` applies the
        # surface's policy (its state becomes the response's X-RateLimit-* headers; raising
        # RateLimited answers 429 instead), so these refusals are throttled and labelled too.
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        try:
            _refuse_nul_in_url(scope)
            if scope["method"] in _BODY_METHODS:
                receive = await self._bounded(scope, receive)
        except PyTakeError as err:
            answer = err
            if self.count is not None:
                try:
                    await self.count(Request(scope))
                except RateLimited as limited:
                    answer = limited
            await _send_error(scope, send, answer)
            return
        await self.app(scope, receive, send)

    async def _bounded(self, scope: Scope, receive: Receive) -> Receive:
        limit = self.limits.get(scope["path"], self.default_limit)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        if b"json" in headers.get(b"content-type", b""):
            body = await _read_all(receive, limit)
            if b"\\u0000" in body:
                _refuse_nul_in_json(body)
            return _replay(body, receive)
        return _counting(receive, limit)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Request bodies on this route are limited to {limit} bytes")


async def _read_all(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # a disconnect: the app sees an empty body and nobody reads the answer
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect as usual

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    """Pass the body through, raising 413 as it crosses `limit`. The route is then parsing it
    (a multipart form): FastAPI lets an HTTPException through as it is (anything else would
    become a 400), the app's handler renders the envelope, and nothing of the body is kept."""
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise HTTPException(413, _too_large(limit).message)
        return message

    return counted


def _refuse_nul_in_url(scope: Scope) -> None:
    if "\x00" in scope["path"]:
        raise ValidationFailed.on("path", _NUL_MESSAGE)
    query: bytes = scope.get("query_string", b"")
    if b"%00" not in query and b"\x00" not in query:
        return
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            raise ValidationFailed.on(name.replace("\x00", "") or "query", _NUL_MESSAGE)


def _refuse_nul_in_json(body: bytes) -> None:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return  # the route answers 400 for a body that is not JSON
    for field in _nul_fields(document, ()):
        raise ValidationFailed.on(field or "body", _NUL_MESSAGE)


def _nul_fields(value: Any, at: tuple[str, ...]) -> Iterator[str]:
    """Where NUL characters are, as `a.b.0` field names (keys count as their value's field)."""
    if isinstance(value, str):
        if "\x00" in value:
            yield ".".join(at)
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                yield ".".join((*at, key.replace("\x00", "")))
            yield from _nul_fields(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_fields(item, (*at, str(index)))


async def _send_error(scope: Scope, send: Send, err: PyTakeError) -> None:
    body = orjson.dumps(render(err, scope["path"], request_id_var.get()))
    await send(
        {
            "type": "http.response.start",
            "status": err.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in (err.headers or {}).items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
