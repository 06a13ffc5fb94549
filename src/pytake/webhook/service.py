"""Outgoing webhook endpoints: CRUD, delivery history, redelivery and the test ping."""

from __future__ import annotations

import secrets
import uuid
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.principal import Principal
from pytake.config import Settings
from pytake.errors import ValidationFailed
from pytake.events import wake_after_commit
from pytake.events.types import iso
from pytake.kit.crypto import secret_box
from pytake.kit.pagination import PageParams
from pytake.kit.ssrf import UnsafeUrl, check_url
from pytake.models.base import utcnow
from pytake.models.webhook import WebhookDelivery, WebhookEndpoint
from pytake.tenancy import get_scoped, scoped
from pytake.webhook.schemas import WebhookCreateIn, WebhookUpdateIn


async def _checked_url(settings: Settings, url: str) -> str:
    url = url.strip()
    scheme = urlsplit(url).scheme.lower()
    if scheme != "https" and not (scheme == "http" and settings.allow_private_urls):
        raise ValidationFailed.on("url", "must be an https:// URL")
    try:
        await check_url(url, allow_private=settings.allow_private_urls)
    except UnsafeUrl as exc:
        raise ValidationFailed.on("url", str(exc)) from exc
    return url


def _unique(events: list[str]) -> list[str]:
    return list(dict.fromkeys(events))


async def create_endpoint(
    session: AsyncSession, settings: Settings, principal: Principal, data: WebhookCreateIn
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it with its plaintext secret (shown this once)."""
    url = await _checked_url(settings, data.url)
    secret = data.secret or "whsec_" + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(
        organization_id=principal.organization_id,
        url=url,
        description=data.description,
        events=_unique(list(data.events)),
        secret_encrypted=secret_box(settings).encrypt(secret),
        is_active=data.is_active,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def list_endpoints(
    session: AsyncSession, principal: Principal, params: PageParams
) -> tuple[list[WebhookEndpoint], int]:
    stmt = scoped(select(WebhookEndpoint), WebhookEndpoint, principal)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await session.scalars(
        stmt.order_by(WebhookEndpoint.created_at.desc(), WebhookEndpoint.id)
        .offset(params.offset)
        .limit(params.limit)
    )
    return list(rows), total


async def get_endpoint(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    return await get_scoped(session, WebhookEndpoint, endpoint_id, principal, what="Webhook")


async def update_endpoint(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    endpoint_id: uuid.UUID,
    data: WebhookUpdateIn,
) -> WebhookEndpoint:
    """Change URL, events, secret, description or active state (re-enabling clears failures)."""
    endpoint = await get_endpoint(session, principal, endpoint_id)
    if data.url is not None:
        endpoint.url = await _checked_url(settings, data.url)
    if data.events is not None:
        endpoint.events = _unique(list(data.events))
    if data.secret is not None:
        endpoint.secret_encrypted = secret_box(settings).encrypt(data.secret)
    if "description" in data.model_fields_set:
        endpoint.description = data.description
    if data.is_active is not None and data.is_active != endpoint.is_active:
        endpoint.is_active = data.is_active
        if data.is_active:
            endpoint.disabled_reason = None
            endpoint.disabled_at = None
            endpoint.failing_since = None
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint


async def delete_endpoint(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID
) -> None:
    """Delete an endpoint and its delivery history."""
    endpoint = await get_endpoint(session, principal, endpoint_id)
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    await session.delete(endpoint)
    await session.flush()


async def list_deliveries(
    session: AsyncSession,
    principal: Principal,
    endpoint_id: uuid.UUID,
    params: PageParams,
    status: str | None,
) -> tuple[list[WebhookDelivery], int]:
    endpoint = await get_endpoint(session, principal, endpoint_id)
    stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await session.scalars(
        stmt.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .offset(params.offset)
        .limit(params.limit)
    )
    return list(rows), total


async def redeliver(
    session: AsyncSession, principal: Principal, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """Queue a new delivery (its own id) of the same event to the same endpoint."""
    original = await get_scoped(session, WebhookDelivery, delivery_id, principal, what="Delivery")
    copy = _new_delivery(
        original.organization_id,
        original.endpoint_id,
        original.event_type,
        event_id=original.event_id,
        payload=original.payload,
    )
    copy.redelivery_of_id = original.id
    session.add(copy)
    await session.flush()
    wake_after_commit(session, "webhooks")
    return copy


async def send_test(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID
) -> WebhookDelivery:
    """Queue a `ping` to the endpoint (sent even when it is disabled, to check a fix)."""
    endpoint = await get_endpoint(session, principal, endpoint_id)
    now = utcnow()
    payload: dict[str, object] = {
        "event": "ping",
        "timestamp": iso(now),
        "organization_id": str(endpoint.organization_id),
        "data": {"webhook_id": str(endpoint.id), "message": "PyTake webhook test"},
    }
    delivery = _new_delivery(endpoint.organization_id, endpoint.id, "ping", payload=payload)
    session.add(delivery)
    await session.flush()
    wake_after_commit(session, "webhooks")
    return delivery


def _new_delivery(
    organization_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    event_type: str,
    *,
    event_id: int | None = None,
    payload: dict[str, object] | None = None,
) -> WebhookDelivery:
    now = utcnow()
    return WebhookDelivery(
        id=uuid.uuid4(),
        organization_id=organization_id,
        endpoint_id=endpoint_id,
        event_id=event_id,
        event_type=event_type,
        payload=payload,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        attempt_log=[],
        created_at=now,
    )
