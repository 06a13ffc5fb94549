"""Inbound provider webhook routes (never rate limited: Meta's traffic must not be throttled).

Every POST answers 200 only once its events are committed. Meta bodies are stored by the
process's group-commit writer (pytake.message.writer), many requests per transaction; Evolution
bodies in the request's own unit of work.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.dependencies import Session
from pytake.config import Settings
from pytake.errors import PermissionDenied
from pytake.message import receive
from pytake.message.ingest import IngestResult
from pytake.message.writer import IngestWriter
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
async def meta_verify(request: Request, session: AsyncSession = Session) -> PlainTextResponse:
    """Meta's subscription handshake: echo `hub.challenge` when `hub.verify_token` is known."""
    answer = await receive.meta_challenge(session, request.query_params)
    if answer is None:
        raise PermissionDenied("Webhook verification failed: unknown hub.verify_token")
    return PlainTextResponse(answer)


def _writer(request: Request) -> IngestWriter:
    # Made on first use rather than in the lifespan: the writer only runs a task while bodies
    # wait, so there is nothing to start or stop.
    state = request.app.state
    writer: IngestWriter | None = getattr(state, "ingest_writer", None)
    if writer is None:
        writer = state.ingest_writer = IngestWriter(state.session_factory, state.settings)
    return writer


@router.post("/webhook", response_model=WebhookAck, responses=_BODY_DOC)
async def meta_webhook(request: Request) -> WebhookAck:
    """Meta Cloud API notifications (messages, statuses, echoes, template status), signed
    with `X-Hub-Signature-256` over the raw body."""
    raw = await receive.read_body(request, _settings(request).max_webhook_body_bytes)
    result = await receive.receive_meta(
        _writer(request), raw, request.headers.get(SIGNATURE_HEADER)
    )
    return _ack(result)


@router.post("/webhook/evolution/{config_id}", response_model=WebhookAck, responses=_BODY_DOC)
async def evolution_webhook(
    config_id: uuid.UUID, request: Request, session: AsyncSession = Session
) -> WebhookAck:
    """Evolution API events for one configuration, authenticated by the
    `X-PyTake-Webhook-Secret` header PyTake registers with `webhook/set`."""
    settings = _settings(request)
    raw = await receive.read_body(request, settings.max_webhook_body_bytes)
    result = await receive.receive_evolution(session, settings, config_id, raw, request.headers)
    return _ack(result)
