"""Fan-out: a delivery row for each active endpoint subscribed to a recorded event.

The outbox (pytake.events.record) calls this in the producer's transaction, so a committed
change always has its deliveries. Endpoints are read on every call (they change in other
processes; nothing is cached). On PostgreSQL the fan-out is part of the outbox's own INSERT
(`deliveries_from`, one round trip per batch whatever its size); elsewhere it runs as its own
statements (`fan_out`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Boolean, Table, Uuid, and_, bindparam, func, insert, literal, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.models.webhook import WebhookDelivery, WebhookEndpoint

_DELIVERIES = cast(Table, WebhookDelivery.__table__)
_ENDPOINTS = cast(Table, WebhookEndpoint.__table__)

_INSERT_DELIVERIES = insert(_DELIVERIES)
# Built once (bench/realtime.py: building the SELECT took a third of its own cost).
_SUBSCRIBED_ENDPOINTS = select(
    WebhookEndpoint.id, WebhookEndpoint.organization_id, WebhookEndpoint.events
).where(
    WebhookEndpoint.organization_id.in_(bindparam("organizations", expanding=True)),
    WebhookEndpoint.is_active.is_(True),
)


def deliveries_from(events: Any, now: Any) -> Any:
    """PostgreSQL: the deliveries INSERT as a CTE over `events` (a CTE of the inserted outbox
    rows with `id`, `organization_id` and `type`), returning each new delivery's id."""
    w = _ENDPOINTS.c
    subscribed = and_(
        w.organization_id == events.c.organization_id,
        w.is_active.is_(True),
        w.events.op("@>", return_type=Boolean())(func.jsonb_build_array(events.c.type)),
    )
    return (
        insert(_DELIVERIES)
        .from_select(
            [
                "id", "organization_id", "endpoint_id", "event_id", "event_type", "status",
                "attempts", "next_attempt_at", "attempt_log", "created_at",
            ],
            select(
                func.gen_random_uuid(type_=Uuid()), events.c.organization_id, w.id, events.c.id,
                events.c.type, literal("pending"), literal(0), now,
                sql_cast(literal("[]"), JSONB()), now,
            ).select_from(events.join(_ENDPOINTS, subscribed)),
        )
        .returning(_DELIVERIES.c.id)
        .cte("deliveries")
    )  # fmt: skip


async def fan_out(
    session: AsyncSession,
    events: Sequence[tuple[uuid.UUID, str]],
    event_ids: Sequence[int],
    now: datetime,
) -> int:
    """Deliveries for recorded events ((organisation, type) each, with their outbox ids);
    returns how many were created."""
    organizations = list({org for org, _ in events})
    endpoints = await session.execute(_SUBSCRIBED_ENDPOINTS, {"organizations": organizations})
    by_org: dict[uuid.UUID, list[tuple[uuid.UUID, list[str]]]] = {}
    for endpoint_id, org_id, subscribed in endpoints:
        by_org.setdefault(org_id, []).append((endpoint_id, subscribed))
    rows = [
        {
            "id": uuid.uuid4(),
            "organization_id": org,
            "endpoint_id": endpoint_id,
            "event_id": event_id,
            "event_type": type,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "attempt_log": [],
            "created_at": now,
        }
        for (org, type), event_id in zip(events, event_ids, strict=True)
        for endpoint_id, subscribed in by_org.get(org, ())
        if type in subscribed
    ]
    if rows:
        await session.execute(_INSERT_DELIVERIES, rows)
    return len(rows)
