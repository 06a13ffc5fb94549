"""What flows through one ingest batch: the number, the messages to store, the results."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from pytake.kit.phone import match_key
from pytake.whatsapp.events import InboundMessage, MessageEcho


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """What ingest needs to know of the WhatsApp number the events arrived on."""

    id: uuid.UUID
    organization_id: uuid.UUID
    provider: str


@dataclass
class IngestResult:
    """What one webhook body changed (for the response and the callers that react to it)."""

    messages: int = 0
    duplicates: int = 0
    statuses: int = 0
    pending_statuses: int = 0
    events: int = 0
    new_message_ids: list[uuid.UUID] = field(default_factory=list)
    opted_out_contact_ids: list[uuid.UUID] = field(default_factory=list)

    def merge(self, other: IngestResult) -> None:
        self.messages += other.messages
        self.duplicates += other.duplicates
        self.statuses += other.statuses
        self.pending_statuses += other.pending_statuses
        self.events += other.events
        self.new_message_ids += other.new_message_ids
        self.opted_out_contact_ids += other.opted_out_contact_ids


@dataclass(slots=True)
class BatchMessage:
    """A message about to be stored, with the party (customer wa_id) it belongs to, that
    party's match key, and the part (webhook body) of the batch it came in."""

    event: InboundMessage | MessageEcho
    party: str
    key: str
    inbound: bool
    part: int = 0

    @classmethod
    def of(cls, event: InboundMessage | MessageEcho, part: int) -> BatchMessage | None:
        """None when the event names no customer number to file it under."""
        if isinstance(event, InboundMessage):
            party, inbound = event.sender, True
        else:
            party, inbound = event.recipient, False
        digits = "".join(ch for ch in party or "" if ch.isdigit())
        if not digits:
            return None
        return cls(event, digits, match_key(digits), inbound, part)


@dataclass(frozen=True, slots=True)
class Stored:
    """What a batch stored: its messages and the ids they (and their parties) were given."""

    rows: list[BatchMessage]
    message_ids: dict[str, uuid.UUID]
    contact_ids: dict[str, uuid.UUID]
    conversation_ids: dict[uuid.UUID, uuid.UUID]
