"""Inbound ingest: normalised provider events → contacts, conversations, messages, statuses."""

from pytake.message.ingest.pipeline import (
    Channel,
    IngestResult,
    _message_values,
    ingest_events,
    ingest_parts,
    is_opt_out,
)

__all__ = [
    "Channel",
    "IngestResult",
    "_message_values",
    "ingest_events",
    "ingest_parts",
    "is_opt_out",
]
