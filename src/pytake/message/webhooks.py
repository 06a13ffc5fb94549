"""Inbound provider webhook routes (never rate limited: Meta's traffic must not be throttled).

Every POST answers 200 only once its events are committed. Meta bodies are stored by the
process's group-commit writer (pytake.message.writer), many requests per transaction; Evolution
bodies in the request's own unit of work.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from pytake.auth.dependencies import DbSession
from pytake.config import Settings
from pytake.errors import PermissionDenied, PyTakeError, render
from pytake.message import receive
from pytake.message.ingest import IngestResult
from pytake.message.writer import IngestWriter
from pytake.observability import request_id_var
from pytake.whatsapp.cloud import SIGNATURE_HEADER

router = APIRouter(prefix="/whatsapp", tags=["whatsapp webhooks"])

_BODY_DOC: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed body (not JSON, or not a webhook of this provider)"},
    401: {"description": "Missing or wrong signature / secret header; nothing is stored"},
    404: {"description": "No configuration for this number / id"},
    413: {"description": "Body above settings.max_webhook_body_bytes"},
}


class WebhookAck(BaseModel):
    """What one webhook changed; duplicates and replays count as duplicates, not errors."""

    status: str = "received"
    messages: int
    duplicates: int
    statuses: int
    pending_statuses: int
    events: int


def _ack(result: IngestResult) -> WebhookAck:
    return WebhookAck(
        messages=result.messages,
        duplicates=result.duplicates,
        statuses=result.statuses,
        pending_statuses=result.pending_statuses,
        events=result.events,
    )


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.get(
    "/webhook",
    response_class=PlainTextResponse,
    responses={403: {"description": "hub.verify_token matches no configuration"}},
)
async def meta_verify(request: Request, session: DbSession) -> PlainTextResponse:
    """Meta's subscription handshake: echo `hub.challenge` when `hub.verify_token` is known."""
    answer = await receive.meta_challenge(session, request.query_params)
    if answer is None:
        raise PermissionDenied("Webhook verification failed: unknown hub.verify_token")
    return PlainTextResponse(answer)


def _writer(app: Any) -> IngestWriter:
    # Made on first use rather than in the lifespan: the writer only runs a task while bodies
    # wait, so there is nothing to start or stop.
    state = app.state
    writer: IngestWriter | None = getattr(state, "ingest_writer", None)
    if writer is None:
        writer = state.ingest_writer = IngestWriter(state.session_factory, state.settings)
    return writer


@router.post("/webhook", response_model=WebhookAck, responses=_BODY_DOC)
async def meta_webhook(request: Request) -> WebhookAck:
    """Meta Cloud API notifications (messages, statuses, echoes, template status), signed
    with `X-Hub-Signature-256` over the raw body."""
    result = await receive.handle_meta_webhook(
        _writer(request.app),
        _settings(request),
        request.stream(),
        request.headers.get("content-length", ""),
        request.headers.get(SIGNATURE_HEADER),
    )
    return _ack(result)


@router.post("/webhook/evolution/{config_id}", response_model=WebhookAck, responses=_BODY_DOC)
async def evolution_webhook(
    config_id: uuid.UUID, request: Request, session: DbSession
) -> WebhookAck:
    """Evolution API events for one configuration, authenticated by the
    `X-PyTake-Webhook-Secret` header PyTake registers with `webhook/set`."""
    result = await receive.handle_evolution_webhook(
        session, _settings(request), config_id, request.stream(), request.headers
    )
    return _ack(result)


class MetaWebhookFastPath:
    """Serves `POST {path}` (Meta's notifications) in front of the framework's router.

    Meta's webhook is by far the busiest route, and profiles of ingest showed the router (which
    walks every included router to match a path) and FastAPI's request handling costing about a
    fifth of the server's CPU per body. This pure-ASGI layer, inside the observability
    middleware (request id, metrics, last-resort 500), answers that one route directly with the
    same handler as `meta_webhook` above (`receive.handle_meta_webhook`), which stays for the
    schema and for any other caller.
    """

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, asgi_receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, asgi_receive, send)
            return
        scope["route"] = self  # the metrics label is the path itself (no parameters)
        headers = dict(scope["headers"])
        signature = headers.get(SIGNATURE_HEADER.lower().encode())
        app = scope["app"]
        status, extra = 200, []
        try:
            result = await receive.handle_meta_webhook(
                _writer(app),
                app.state.settings,
                _chunks(asgi_receive),
                headers.get(b"content-length", b"").decode("latin-1"),
                signature.decode("latin-1") if signature else None,
            )
            body = orjson.dumps(_ack(result).model_dump())
        except PyTakeError as err:
            status = err.status
            extra = [(k.lower().encode(), v.encode()) for k, v in (err.headers or {}).items()]
            body = orjson.dumps(render(err, self.path, request_id_var.get()))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _chunks(asgi_receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await asgi_receive()
        if message["type"] == "http.disconnect":
            # Nobody is left to answer; whatever was read is not stored.
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
