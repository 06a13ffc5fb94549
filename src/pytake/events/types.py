"""The domain events producers record, and the shape they travel in once committed."""

from __future__ import annotations

from typing import Any

import orjson

MESSAGE_EVENTS = (
    "message.received",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "message.media_updated",
)
CONVERSATION_EVENTS = ("conversation.created", "conversation.assigned", "conversation.resolved")
CONTACT_EVENTS = ("contact.created", "contact.updated")
CAMPAIGN_EVENTS = ("campaign.started", "campaign.paused", "campaign.completed")
TEMPLATE_EVENTS = ("template.updated",)
EVENT_TYPES: tuple[str, ...] = (
    MESSAGE_EVENTS + CONVERSATION_EVENTS + CONTACT_EVENTS + CAMPAIGN_EVENTS + TEMPLATE_EVENTS
)


class CommittedEvent:
    """An outbox row as the bus carries it (all values JSON-safe).

    A producer builds it from the payload's JSON text (`data_json`), which the bus then
    carries as is, and a receiver builds it from the bytes it received: `data` parses that
    text on first use, so a process with no subscriber for an event never parses it.
    """

    __slots__ = ("_data", "_json", "id", "organization_id", "timestamp", "type")

    def __init__(
        self,
        id: int,
        organization_id: str,
        type: str,
        data: dict[str, Any] | None,
        timestamp: str,  # ISO 8601 UTC with a Z, when the change was recorded
        *,
        data_json: bytes | None = None,
    ) -> None:
        if data is None and data_json is None:
            raise ValueError("an event needs its data or their JSON")
        self.id = id
        self.organization_id = organization_id
        self.type = type
        self.timestamp = timestamp
        self._data = data
        self._json = data_json

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            assert self._json is not None
            self._data = orjson.loads(self._json)
        return self._data

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "organization_id": self.organization_id,
            "type": self.type,
            "data": self.data,
            "timestamp": self.timestamp,
        }

    def data_json(self) -> bytes:
        """The payload as JSON: the recorded text when the event has it."""
        if self._json is None:
            self._json = orjson.dumps(self._data)
        return self._json

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CommittedEvent:
        return cls(
            int(raw["id"]),
            str(raw["organization_id"]),
            str(raw["type"]),
            dict(raw["data"]),
            str(raw["timestamp"]),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CommittedEvent):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable cache inside; compared by value

    def __repr__(self) -> str:
        return f"CommittedEvent(id={self.id}, type={self.type!r})"


def dumps(value: Any) -> bytes:
    """JSON, with UUIDs and datetimes (UTC, `Z`) as strings."""
    # `default=str` covers UUID look-alikes such as asyncpg's own UUID type from Core queries.
    return orjson.dumps(value, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS, default=str)


def jsonable(value: Any) -> Any:
    """UUIDs, datetimes (UTC, `Z`) and nested containers as plain JSON values."""
    return orjson.loads(dumps(value))


def iso(dt: Any) -> str:
    return str(jsonable(dt))
