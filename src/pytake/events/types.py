"""The domain events producers record, and the shape they travel in once committed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

MESSAGE_EVENTS = (
    "message.received",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
)
CONVERSATION_EVENTS = ("conversation.created", "conversation.assigned", "conversation.resolved")
CONTACT_EVENTS = ("contact.created", "contact.updated")
EVENT_TYPES: tuple[str, ...] = MESSAGE_EVENTS + CONVERSATION_EVENTS + CONTACT_EVENTS


@dataclass(frozen=True, slots=True)
class CommittedEvent:
    """An outbox row as the bus carries it (all values already JSON-safe)."""

    id: int
    organization_id: str
    type: str
    data: dict[str, Any]
    timestamp: str  # ISO 8601 UTC with a Z, when the change was recorded

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "organization_id": self.organization_id,
            "type": self.type,
            "data": self.data,
            "timestamp": self.timestamp,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CommittedEvent:
        return cls(
            int(raw["id"]),
            str(raw["organization_id"]),
            str(raw["type"]),
            dict(raw["data"]),
            str(raw["timestamp"]),
        )


def dumps(value: Any) -> bytes:
    """JSON, with UUIDs and datetimes (UTC, `Z`) as strings."""
    # `default=str` covers UUID look-alikes such as asyncpg's own UUID type from Core queries.
    return orjson.dumps(value, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS, default=str)


def jsonable(value: Any) -> Any:
    """UUIDs, datetimes (UTC, `Z`) and nested containers as plain JSON values."""
    return orjson.loads(dumps(value))


def iso(dt: Any) -> str:
    return str(jsonable(dt))
