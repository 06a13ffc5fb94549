"""Inbound ingest: normalised provider events → contacts, conversations, messages, statuses.

The hot path of every webhook, written as a few multi-row Core statements per batch of bodies.
Called inside the caller's transaction; duplicates, replays and reordering are harmless:
- messages are deduplicated by (channel, provider message id) with INSERT … ON CONFLICT DO NOTHING,
  and counters move only for rows actually inserted;
- statuses only move forward (see pytake.message.statuses).

The steps of a batch, each in its own module: contacts (find or create, lock), messages (drop
known ones, insert), conversations (find, reopen or open), counters (conversation and contact
activity), opt-outs (contacts), channel state (connection, QR code, template status), and the
domain events of what was stored (events).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pytake.chatbot.inbox import enqueue_inbound, inbox_items, phone_replies
from pytake.chatbot.sessions import pause_for_phone_replies
from pytake.config import Settings
from pytake.events import record_many
from pytake.kit.sql import is_postgresql
from pytake.media.inbound import enqueue_fetches
from pytake.message.ingest.batch import BatchMessage, ChannelRef, IngestResult, Stored
from pytake.message.ingest.channel_state import apply_channel_event, record_channel_event
from pytake.message.ingest.contacts import apply_opt_outs, contacts_for, lock_contacts
from pytake.message.ingest.conversations import conversations_for
from pytake.message.ingest.counters import count_messages
from pytake.message.ingest.events import ingest_events_of
from pytake.message.ingest.messages import insert_messages, without_known
from pytake.message.statuses import apply_pending_statuses, apply_statuses
from pytake.whatsapp.events import InboundMessage, MessageEcho, ProviderEvent, StatusUpdate


async def ingest_events(
    session: AsyncSession, settings: Settings, channel: ChannelRef, events: list[ProviderEvent]
) -> IngestResult:
    """Store every event of one webhook body for one channel (flushes, never commits)."""
    [result] = await ingest_parts(session, settings, channel, [events])
    return result


async def ingest_parts(
    session: AsyncSession, settings: Settings, channel: ChannelRef, parts: list[list[ProviderEvent]]
) -> list[IngestResult]:
    """Store the events of several webhook bodies for one channel with one set of multi-row
    statements; returns what each body changed, in order (flushes, never commits).

    Bodies are merged in order, so a message carried by two bodies is stored for the first
    and counted as a duplicate of the second, and one customer gets one contact and one
    conversation however many bodies mention them."""
    results = [IngestResult() for _ in parts]
    rows: list[BatchMessage] = []
    statuses: list[tuple[int, StatusUpdate]] = []
    for part, events in enumerate(parts):
        for event in events:
            if isinstance(event, MessageEcho) and event.source == "api":
                # A gateway's copy of a message sent through its API (Evolution's
                # `send.message`): PyTake's own sends are stored already, and the copy may
                # arrive before the send's answer records its id — stored, it would take
                # that id from the real row (and fail the dispatcher's write).
                results[part].duplicates += 1
                continue
            if isinstance(event, InboundMessage | MessageEcho):
                row = BatchMessage.of(event, part)
                if row is None:
                    await record_channel_event(session, channel, "unresolved_sender", event.raw)
                    results[part].events += 1
                else:
                    rows.append(row)
            elif isinstance(event, StatusUpdate):
                statuses.append((part, event))
            else:
                await apply_channel_event(session, channel, event)
                results[part].events += 1
    if rows:
        await _store_messages(session, settings, channel, rows, results)
    if statuses:
        applied, waiting = await apply_statuses(
            session, channel.organization_id, channel.id, [e for _, e in statuses]
        )
        for part, event in statuses:
            results[part].statuses += event.provider_message_id in applied
            results[part].pending_statuses += event.provider_message_id in waiting
    return results


async def _store_messages(
    session: AsyncSession,
    settings: Settings,
    channel: ChannelRef,
    rows: list[BatchMessage],
    results: list[IngestResult],
) -> None:
    new_contacts: set[uuid.UUID] = set()
    new_conversations: set[uuid.UUID] = set()
    people: dict[uuid.UUID, dict[str, Any]] = {}
    contact_ids = await contacts_for(session, channel, rows, new_contacts, people)
    if not is_postgresql(session):
        await lock_contacts(session, sorted(set(contact_ids.values())))
    fresh = await without_known(session, channel, rows)
    conversation_ids = (
        await conversations_for(session, channel, fresh, contact_ids, new_conversations)
        if fresh
        else {}
    )
    inserted = (
        await insert_messages(session, channel, fresh, contact_ids, conversation_ids)
        if fresh
        else {}
    )
    stored = [row for row in fresh if row.event.provider_message_id in inserted]
    _attribute(rows, stored, inserted, results)
    if not stored:
        return
    profiles = await count_messages(session, stored, contact_ids, conversation_ids)
    opted = set(await apply_opt_outs(session, settings, stored, contact_ids))
    # The contacts as this transaction leaves them, for the events (no need to read them back).
    for contact_id, profile in profiles.items():
        if profile:
            people[contact_id]["profile_name"] = profile
    for contact_id in opted:
        people[contact_id]["opt_in"] = False
    for row in stored:
        contact_id, result = contact_ids[row.key], results[row.part]
        if contact_id in opted and contact_id not in result.opted_out_contact_ids:
            result.opted_out_contact_ids.append(contact_id)
    echoes = [r.event.provider_message_id for r in stored if not r.inbound]
    if echoes:
        await apply_pending_statuses(session, channel.id, echoes)
    batch = Stored(stored, inserted, contact_ids, conversation_ids)
    await record_many(
        session,
        ingest_events_of(
            channel,
            batch,
            people,
            new_contacts,
            new_conversations,
            opted,
        ),
    )
    # In the same transaction: the chatbots' durable queue (pytake.chatbot.inbox) and the
    # fetch of inbound media (pytake.media.inbound).
    await enqueue_inbound(session, channel.organization_id, inbox_items(batch, new_conversations))
    await pause_for_phone_replies(
        session,
        channel.organization_id,
        phone_replies(batch),
        gateway=channel.provider != "official",
    )
    await enqueue_fetches(session, channel, batch)


def _attribute(
    rows: list[BatchMessage],
    stored: list[BatchMessage],
    inserted: dict[str, uuid.UUID],
    results: list[IngestResult],
) -> None:
    """Count each row for its body: stored, or a duplicate (known before, or an earlier row
    of the batch carried the same message)."""
    kept = {id(row) for row in stored}
    for row in rows:
        result = results[row.part]
        if id(row) in kept:
            result.messages += 1
            result.new_message_ids.append(inserted[row.event.provider_message_id])
        else:
            result.duplicates += 1
