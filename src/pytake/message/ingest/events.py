"""The domain events an ingest batch records: message.received, conversation.created,
contact.created and contact.updated (opt-outs), in the batch's own transaction."""

from __future__ import annotations

import uuid
from typing import Any

from pytake.events import DomainEvent
from pytake.events.payloads import (
    contact_brief,
    contact_event,
    conversation_event,
    conversation_view,
    message_received,
)
from pytake.kit.text import without_nul
from pytake.media.views import pending_inbound
from pytake.message.ingest.batch import BatchMessage, ChannelRef, Stored
from pytake.whatsapp.provider import MEDIA_TYPES


def ingest_events_of(
    channel: ChannelRef,
    stored: Stored,
    people: dict[uuid.UUID, dict[str, Any]],
    new_contacts: set[uuid.UUID],
    new_conversations: set[uuid.UUID],
    opted_out: set[uuid.UUID],
) -> list[DomainEvent]:
    """The events for one stored batch, contacts and conversations before their messages.
    `people`: each contact's columns (as `contacts_for` reads them) as the batch leaves it."""
    org = channel.organization_id
    briefs = {contact_id: _brief(person) for contact_id, person in people.items()}
    events = [
        _contact_event(org, "contact.created", people[c], briefs[c]) for c in sorted(new_contacts)
    ]
    seen: set[uuid.UUID] = set()
    for row in stored.rows:
        contact_id = stored.contact_ids[row.key]
        conversation_id = stored.conversation_ids[contact_id]
        if conversation_id in new_conversations and conversation_id not in seen:
            seen.add(conversation_id)
            conversation = conversation_view(conversation_id, "open", contact_id, channel.id, None)
            events.append(
                conversation_event(org, "conversation.created", conversation, briefs[contact_id])
            )
        if row.inbound:
            events.append(_message_received(org, row, stored, briefs[contact_id], conversation_id))
    events += [
        _contact_event(org, "contact.updated", people[c], briefs[c], ["opt_in"])
        for c in sorted(opted_out)
    ]
    return events


def _brief(person: dict[str, Any]) -> dict[str, Any]:
    return contact_brief(
        person["id"],
        person["name"],
        person["profile_name"],
        person["whatsapp_id"],
        person["opt_in"],
    )


def _contact_event(
    org: uuid.UUID,
    type: str,
    person: dict[str, Any],
    brief: dict[str, Any],
    changes: list[str] | None = None,
) -> DomainEvent:
    return contact_event(
        org,
        type,
        brief,
        email=person["email"],
        is_blocked=person["is_blocked"],
        attributes=person["attributes"],
        changes=changes,
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
    if event.type in MEDIA_TYPES:  # its fetch is queued in this transaction (pytake.media)
        message["media"] = pending_inbound(message["id"], event.content)
    return message_received(org, message, conversation_id, contact)
