"""Inbound ingest: normalised provider events → contacts, conversations, messages, statuses
(the pipeline is in `pipeline`, one module per table it writes)."""

from pytake.message.ingest.batch import ChannelRef, IngestResult
from pytake.message.ingest.contacts import is_opt_out
from pytake.message.ingest.pipeline import ingest_events, ingest_parts

__all__ = ["ChannelRef", "IngestResult", "ingest_events", "ingest_parts", "is_opt_out"]
