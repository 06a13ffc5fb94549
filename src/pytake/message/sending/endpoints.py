"""/v1/messages (send, status) and the earlier /api/v1/whatsapp/send."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request

from pytake.auth.dependencies import (
    SCOPE_CHECKS,
    DbSession,
    SignedIn,
    require_scope,
)
from pytake.auth.principal import Principal
from pytake.auth.scopes import Scope
from pytake.errors import PermissionDenied
from pytake.kit.responses import FastJSONResponse
from pytake.message.sending import service, views
from pytake.message.sending.context import sending_context
from pytake.message.sending.draft import Draft, Target, legacy_message
from pytake.message.sending.idempotency import Idempotency
from pytake.message.sending.receipt import SendReceipt
from pytake.message.sending.schemas import (
    LegacySendIn,
    LegacySendOut,
    MessageOut,
    SendMessageIn,
    SendMessageOut,
)

router = APIRouter(prefix="/messages", tags=["messages"])

MessagesSend = Annotated[Principal, Depends(require_scope(Scope.MESSAGES_SEND))]
legacy_router = APIRouter(prefix="/whatsapp", tags=["whatsapp"])

SEND_RESPONSES: dict[int | str, dict[str, object]] = {
    201: {"model": SendMessageOut, "description": "WhatsApp accepted the message"},
    202: {
        "model": SendMessageOut,
        "description": "Queued — accepted and stored, not a failure: the provider was slow or "
        "failing retryably, and PyTake keeps sending it. Do not resend (a resend is a second "
        "message); follow `GET /v1/messages/{id}`, the `message.*` webhooks or `/ws` instead.",
        "content": {
            "application/json": {
                "example": {
                    "id": "0b7e4c1e-6a9f-4a55-9d39-5f0d5c2f7a10",
                    "whatsapp_message_id": None,
                    "conversation_id": "5d1c7f0e-2b7a-4f3e-8a61-0c2e9b1d4a77",
                    "to": "+5511988887777",
                    "status": "queued",
                    "created_at": "2025-10-03T14:01:00Z",
                }
            }
        },
    },
    409: {"description": "Idempotency-Key reused with another body (`idempotency_key_conflict`)"},
    422: {
        "description": "Validation (`validation_error`), `outside_customer_service_window`, "
        "`contact_opted_out`, `contact_blocked`, or WhatsApp refused it (`whatsapp_api_error`)"
    },
    502: {"description": "The provider cannot serve this number (`whatsapp_api_error`)"},
}

IdempotencyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Repeat a request safely: the same key and body return the first result.",
    ),
]


async def can_read_messages(principal: SignedIn) -> Principal:
    """`messages:read`, or `messages:send` (a sender may follow what it sent)."""
    if not (principal.can("messages:read") or principal.can("messages:send")):
        raise PermissionDenied("This credential lacks the 'messages:read' scope")
    return principal


SCOPE_CHECKS[can_read_messages] = "messages:read"


@router.post("", status_code=201, responses=SEND_RESPONSES)
async def send_message(
    request: Request,
    body: SendMessageIn,
    principal: MessagesSend,
    idempotency_key: IdempotencyHeader = None,
) -> FastJSONResponse:
    """Send a message of any type; `{{variables}}` are filled from `variables` and the contact."""
    ctx = sending_context(request.app.state)
    draft = Draft.of(body)
    target = Target(to=body.to, channel_id=body.channel_id)
    idem = Idempotency.of(idempotency_key, "POST /v1/messages", body)
    return send_response(await service.send(ctx, principal, target, draft, idem))


def send_response(receipt: SendReceipt) -> FastJSONResponse:
    """201 when WhatsApp has the message, 202 while it is queued (the dispatcher keeps trying)."""
    return FastJSONResponse(receipt.view, status_code=202 if receipt.queued else 201)


@router.get("/{message_id}", response_model=MessageOut)
async def get_message(
    message_id: uuid.UUID,
    session: DbSession,
    principal: Principal = Depends(can_read_messages),
) -> MessageOut:
    """A message and its delivery status (`sent_at`, `delivered_at`, `read_at`, `failed_at`)."""
    message = await views.get_message(session, principal, message_id)
    [view] = await views.message_views(session, [message])
    return view


@legacy_router.post(
    "/send",
    response_model=LegacySendOut,
    responses={
        202: {
            "model": LegacySendOut,
            "description": "Queued — accepted and stored, not a failure: WhatsApp was slow or "
            "failing retryably, and PyTake keeps sending it. Do not resend; `status` is "
            "`queued` and `message_id` is PyTake's id until WhatsApp assigns one.",
            "content": {
                "application/json": {
                    "example": {
                        "success": True,
                        "message_id": "0b7e4c1e-6a9f-4a55-9d39-5f0d5c2f7a10",
                        "status": "queued",
                        "timestamp": "2025-10-03T14:01:00Z",
                    }
                }
            },
        }
    },
)
async def legacy_send(
    request: Request,
    body: LegacySendIn,
    principal: MessagesSend,
) -> FastJSONResponse:
    """Send a text or a template; `instance_name` picks a number by name (`default`: default)."""
    ctx = sending_context(request.app.state)
    target = Target(to=body.to, instance_name=body.instance_name)
    receipt = await service.send(ctx, principal, target, Draft.of(legacy_message(body)))
    out = LegacySendOut(
        success=True,
        message_id=receipt.view.get("whatsapp_message_id") or receipt.view["id"],
        status=receipt.view["status"],
        timestamp=receipt.view["created_at"],
    )
    return FastJSONResponse(out.model_dump(mode="json"), status_code=202 if receipt.queued else 200)
