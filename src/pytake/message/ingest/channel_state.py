"""Ingest's channel state: connection and QR code changes kept on the WhatsApp number, and
every event that is not a message or a status recorded as a channel event."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import case, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.kit.sql import insert_for
from pytake.message.ingest.batch import ChannelRef
from pytake.message.tables import channel_events, whatsapp_configs
from pytake.models.base import utcnow
from pytake.template.updates import apply_account_update
from pytake.whatsapp.events import (
    ConnectionUpdate,
    ProviderEvent,
    QrCodeUpdate,
    TemplateStatusUpdate,
)

QR_LIFETIME = timedelta(seconds=60)


async def record_channel_event(
    session: AsyncSession, channel: ChannelRef, kind: str, payload: dict[str, Any]
) -> None:
    """Keep a provider event of the number for the record (channel_events)."""
    await session.execute(
        insert_for(session, channel_events).values(
            id=uuid.uuid4(),
            organization_id=channel.organization_id,
            channel_id=channel.id,
            kind=kind,
            payload=payload,
            created_at=utcnow(),
        )
    )


async def apply_channel_event(
    session: AsyncSession, channel: ChannelRef, event: ProviderEvent
) -> None:
    """Connection and QR code changes are kept on the config, template changes on the
    template (pytake.template.updates); everything is recorded."""
    if isinstance(event, ConnectionUpdate):
        await _apply_connection(session, channel, event)
        await record_channel_event(
            session,
            channel,
            "connection.update",
            {"state": event.state, "status_reason": event.status_reason, "wuid": event.wuid},
        )
    elif isinstance(event, QrCodeUpdate):
        await _apply_qr_code(session, channel, event)
        await record_channel_event(session, channel, "qrcode.updated", {"message": event.message})
    elif isinstance(event, TemplateStatusUpdate):
        await apply_account_update(session, channel.organization_id, event)
        await record_channel_event(
            session,
            channel,
            "template_status",
            {
                "template_id": event.template_id,
                "template_name": event.template_name,
                "language": event.language,
                "event": event.event,
                "reason": event.reason,
                "raw": event.raw,
            },
        )


async def _apply_qr_code(session: AsyncSession, channel: ChannelRef, event: QrCodeUpdate) -> None:
    now = utcnow()
    code = event.base64 or event.code
    await session.execute(
        update(whatsapp_configs)
        .where(whatsapp_configs.c.id == channel.id)
        .values(
            qr_code=code,
            qr_code_expires_at=now + QR_LIFETIME if code else None,
            connection_state="refused"
            if event.code is None and event.base64 is None
            else "connecting",
            updated_at=now,
        )
    )


async def _apply_connection(
    session: AsyncSession, channel: ChannelRef, event: ConnectionUpdate
) -> None:
    cfg = whatsapp_configs.c
    now = utcnow()
    health = "healthy" if event.state == "open" else "unhealthy"
    values: dict[str, Any] = {
        "connection_state": event.state,
        "health_status": case((cfg.is_active.is_(True), health), else_="inactive"),
        "last_health_check": now,
        "updated_at": now,
    }
    if event.state == "open":
        values.update(qr_code=None, qr_code_expires_at=None, connected_at=now)
        if event.wuid:
            values["display_phone_number"] = "+" + event.wuid
        if event.profile_name:
            values["verified_name"] = event.profile_name
    await session.execute(update(whatsapp_configs).where(cfg.id == channel.id).values(**values))
