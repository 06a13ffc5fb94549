"""One event pipeline: producers `record()` domain events in their transaction; after commit the
realtime bus carries them to WebSockets, and webhook deliveries (rows written by `record`) are
sent by the delivery loop. See docs/events.md."""

from pytake.events import bus as bus  # registers the after-commit publisher
from pytake.events.outbox import DomainEvent, record, record_many, wake_after_commit
from pytake.events.types import EVENT_TYPES, CommittedEvent

__all__ = [
    "EVENT_TYPES",
    "CommittedEvent",
    "DomainEvent",
    "bus",
    "record",
    "record_many",
    "wake_after_commit",
]
