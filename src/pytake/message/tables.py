"""Core table handles for the message pipeline's set-based statements (no ORM units).

The SQL helpers that build on them live in `pytake.kit.sql`."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from pytake.models import (
    Channel,
    ChannelEvent,
    Contact,
    Conversation,
    Message,
    PendingStatus,
)

contacts = cast(Table, Contact.__table__)
conversations = cast(Table, Conversation.__table__)
messages = cast(Table, Message.__table__)
pending_statuses = cast(Table, PendingStatus.__table__)
channel_events = cast(Table, ChannelEvent.__table__)
whatsapp_configs = cast(Table, Channel.__table__)
