"""/v1/webhooks: outgoing webhook endpoints, their deliveries, redelivery and test pings."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from pytake.auth.dependencies import DbSession, require_scope
from pytake.auth.principal import Principal
from pytake.auth.scopes import Scope
from pytake.kit.pagination import Page, Paging, page_meta
from pytake.webhook import service
from pytake.webhook.schemas import (
    DeliveryOut,
    DeliveryStatus,
    WebhookCreatedOut,
    WebhookCreateIn,
    WebhookOut,
    WebhookUpdateIn,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

Reader = Annotated[Principal, Depends(require_scope(Scope.WEBHOOKS_READ))]
Writer = Annotated[Principal, Depends(require_scope(Scope.WEBHOOKS_WRITE))]


def _out(endpoint: object) -> WebhookOut:
    return WebhookOut.model_validate(endpoint, from_attributes=True)


@router.post("", status_code=201, response_model=WebhookCreatedOut)
async def create_webhook(
    body: WebhookCreateIn,
    request: Request,
    principal: Writer,
    session: DbSession,
) -> WebhookCreatedOut:
    """Register a URL for events. The secret is returned only in this response."""
    endpoint, secret = await service.create_endpoint(
        session, request.app.state.settings, principal, body
    )
    return WebhookCreatedOut(**_out(endpoint).model_dump(), secret=secret)


@router.get("", response_model=Page[WebhookOut])
async def list_webhooks(
    params: Paging,
    principal: Reader,
    session: DbSession,
) -> Page[WebhookOut]:
    endpoints, total = await service.list_endpoints(session, principal, params)
    return Page[WebhookOut](data=[_out(e) for e in endpoints], meta=page_meta(params, total))


@router.get("/{webhook_id}", response_model=WebhookOut)
async def get_webhook(webhook_id: uuid.UUID, principal: Reader, session: DbSession) -> WebhookOut:
    return _out(await service.get_endpoint(session, principal, webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookOut)
async def update_webhook(
    webhook_id: uuid.UUID,
    body: WebhookUpdateIn,
    request: Request,
    principal: Writer,
    session: DbSession,
) -> WebhookOut:
    """Change the URL, events, secret or description; `is_active: true` re-enables."""
    endpoint = await service.update_endpoint(
        session, request.app.state.settings, principal, webhook_id, body
    )
    return _out(endpoint)


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: uuid.UUID, principal: Writer, session: DbSession) -> Response:
    await service.delete_endpoint(session, principal, webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=Page[DeliveryOut])
async def list_deliveries(
    webhook_id: uuid.UUID,
    params: Paging,
    principal: Reader,
    session: DbSession,
    status: Annotated[DeliveryStatus | None, Query()] = None,
) -> Page[DeliveryOut]:
    """Delivery history, newest first: status, attempts, response code and excerpt, timing."""
    rows, total = await service.list_deliveries(session, principal, webhook_id, params, status)
    return Page[DeliveryOut](data=[DeliveryOut.of(r) for r in rows], meta=page_meta(params, total))


@router.post("/deliveries/{delivery_id}/redeliver", status_code=202, response_model=DeliveryOut)
async def redeliver(delivery_id: uuid.UUID, principal: Writer, session: DbSession) -> DeliveryOut:
    """Send the delivery's event again, as a new delivery (with its own id)."""
    return DeliveryOut.of(await service.redeliver(session, principal, delivery_id))


@router.post("/{webhook_id}/test", status_code=202, response_model=DeliveryOut)
async def test_webhook(webhook_id: uuid.UUID, principal: Writer, session: DbSession) -> DeliveryOut:
    """Queue a signed `ping` event to the endpoint; follow it in the deliveries list."""
    return DeliveryOut.of(await service.send_test(session, principal, webhook_id))
