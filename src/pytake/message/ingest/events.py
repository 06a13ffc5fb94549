"""The domain events an ingest batch records: message.received, conversation.created,
contact.created and contact.updated (opt-outs), in the batch's own transaction."""

from __future__ import annotations

import uuid
from typing import Any

from pytake.events import DomainEvent
from pytake.kit.text import without_nul
from pytake.message.ingest.batch import BatchMessage, Channel, Stored


def ingest_events_of(
    channel: Channel,
    stored: Stored,
    people: dict[uuid.UUID, dict[str, Any]],
    new_contacts: set[uuid.UUID],
    new_conversations: set[uuid.UUID],
    opted_out: set[uuid.UUID],
) -> list[DomainEvent]:
    """The events for one stored batch, contacts and conversations before their messages.
    `people`: each contact's `contact_brief` as the batch leaves it."""
    org = channel.organization_id
    events = [
        DomainEvent(org, "contact.created", {"contact": people[c]}) for c in sorted(new_contacts)
    ]
    seen: set[uuid.UUID] = set()
    for row in stored.rows:
        contact_id = stored.contact_ids[row.key]
        conversation_id = stored.conversation_ids[contact_id]
        if conversation_id in new_conversations and conversation_id not in seen:
            seen.add(conversation_id)
            events.append(
                _conversation_created(org, channel.id, conversation_id, people[contact_id])
            )
        if row.inbound:
            events.append(_message_received(org, row, stored, people[contact_id], conversation_id))
    events += [
        DomainEvent(org, "contact.updated", {"contact": people[c], "changes": ["opt_in"]})
        for c in sorted(opted_out)
    ]
    return events


def contact_brief(contact: dict[str, Any]) -> dict[str, Any]:
    """How events show a contact (from its id, name, profile_name, whatsapp_id and opt_in)."""
    return {
        "id": contact["id"],
        "name": contact["name"] or contact["profile_name"],
        "whatsapp_id": contact["whatsapp_id"],
        "opt_in": contact["opt_in"],
    }


def _conversation_created(
    org: uuid.UUID, channel_id: uuid.UUID, conversation_id: uuid.UUID, contact: dict[str, Any]
) -> DomainEvent:
    conversation = {
        "id": conversation_id,
        "status": "open",
        "contact_id": contact["id"],
        "channel_id": channel_id,
        "assigned_to_id": None,
    }
    return DomainEvent(
        org, "conversation.created", {"conversation": conversation, "contact": contact}
    )


def _message_received(
    org: uuid.UUID,
    row: BatchMessage,
    stored: Stored,
    contact: dict[str, Any],
    conversation_id: uuid.UUID,
) -> DomainEvent:
    event = row.event
    message = {
        "id": stored.message_ids[event.provider_message_id],
        "whatsapp_message_id": event.provider_message_id,
        "type": event.type,
        "content": without_nul(dict(event.content)),
        "context_message_id": event.context_message_id,
        "created_at": event.timestamp,
    }
    data = {
        "message": message,
        "conversation": {"id": conversation_id, "status": "open"},
        "contact": contact,
    }
    return DomainEvent(org, "message.received", data)
