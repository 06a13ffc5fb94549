"""Inbound ingest: normalised provider events → contacts, conversations, messages, statuses.

The hot path of every webhook, written as a few multi-row Core statements per body. Called
inside the request's transaction; duplicates, replays and reordering are harmless:
- messages are deduplicated by (channel, provider message id) with INSERT … ON CONFLICT DO NOTHING,
  and counters move only for rows actually inserted;
- statuses only move forward (see pytake.message.statuses).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, bindparam, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.config import Settings
from pytake.events import record_many
from pytake.kit.phone import from_wa_id, match_key
from pytake.message.ingest.events import Stored as _Stored
from pytake.message.ingest.events import contact_brief, ingest_events_of, without_nul
from pytake.message.statuses import apply_pending_statuses, apply_statuses
from pytake.message.tables import (
    BatchSource,
    among,
    channel_events,
    contacts,
    conversations,
    dialect_name,
    insert_for,
    later,
    messages,
    statement,
    whatsapp_configs,
)
from pytake.models.base import UTCDateTime, utcnow
from pytake.models.conversation import LIVE_CONVERSATION_STATUSES
from pytake.whatsapp.events import (
    ConnectionUpdate,
    Event,
    InboundMessage,
    MessageEcho,
    QrCodeUpdate,
    StatusUpdate,
    TemplateStatusUpdate,
)

log = logging.getLogger("pytake.message.ingest")

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
QR_LIFETIME = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Channel:
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
class _Row:
    """A message about to be stored, with the party (customer wa_id) it belongs to and the
    part (webhook body) of the batch it came in."""

    event: InboundMessage | MessageEcho
    party: str
    key: str
    inbound: bool
    part: int = 0


async def ingest_events(
    session: AsyncSession, settings: Settings, channel: Channel, events: list[Event]
) -> IngestResult:
    """Store every event of one webhook body for one channel (flushes, never commits)."""
    [result] = await ingest_parts(session, settings, channel, [events])
    return result


async def ingest_parts(
    session: AsyncSession, settings: Settings, channel: Channel, parts: list[list[Event]]
) -> list[IngestResult]:
    """Store the events of several webhook bodies for one channel with one set of multi-row
    statements; returns what each body changed, in order (flushes, never commits).

    Bodies are merged in order, so a message carried by two bodies is stored for the first
    and counted as a duplicate of the second, and one customer gets one contact and one
    conversation however many bodies mention them."""
    results = [IngestResult() for _ in parts]
    rows: list[_Row] = []
    statuses: list[tuple[int, StatusUpdate]] = []
    for part, events in enumerate(parts):
        for event in events:
            if isinstance(event, InboundMessage | MessageEcho):
                row = _as_row(event, part)
                if row is None:
                    await _record_event(session, channel, "unresolved_sender", event.raw)
                    results[part].events += 1
                else:
                    rows.append(row)
            elif isinstance(event, StatusUpdate):
                statuses.append((part, event))
            else:
                await _apply_channel_event(session, channel, event)
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


def _as_row(event: InboundMessage | MessageEcho, part: int) -> _Row | None:
    if isinstance(event, InboundMessage):
        party, inbound = event.sender, True
    else:
        party, inbound = event.recipient, False
    digits = "".join(ch for ch in party or "" if ch.isdigit())
    if not digits:
        return None
    return _Row(event, digits, match_key(digits), inbound, part)


async def _store_messages(
    session: AsyncSession,
    settings: Settings,
    channel: Channel,
    rows: list[_Row],
    results: list[IngestResult],
) -> None:
    new_contacts: set[uuid.UUID] = set()
    new_conversations: set[uuid.UUID] = set()
    people: dict[uuid.UUID, dict[str, Any]] = {}
    contact_ids = await _contacts_for(session, channel, rows, new_contacts, people)
    if dialect_name(session) != "postgresql":
        await _lock_contacts(session, sorted(set(contact_ids.values())))
    fresh = await _without_known(session, channel, rows)
    conversation_ids = (
        await _conversations_for(session, channel, fresh, contact_ids, new_conversations)
        if fresh
        else {}
    )
    inserted = (
        await _insert_messages(session, channel, fresh, contact_ids, conversation_ids)
        if fresh
        else {}
    )
    stored = [row for row in fresh if row.event.provider_message_id in inserted]
    _attribute(rows, stored, inserted, results)
    if not stored:
        return
    profiles = await _touch(session, stored, contact_ids, conversation_ids)
    opted = set(await _apply_opt_outs(session, settings, stored, contact_ids))
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
    await record_many(
        session,
        ingest_events_of(
            channel,
            _Stored(stored, inserted, contact_ids, conversation_ids),
            {contact_id: contact_brief(person) for contact_id, person in people.items()},
            new_contacts,
            new_conversations,
            opted,
        ),
    )


def _attribute(
    rows: list[_Row],
    stored: list[_Row],
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


async def _contacts_for(
    session: AsyncSession,
    channel: Channel,
    rows: list[_Row],
    created: set[uuid.UUID],
    people: dict[uuid.UUID, dict[str, Any]],
) -> dict[str, uuid.UUID]:
    """Contact id per match key, creating missing contacts (one live contact per WhatsApp user);
    the ids of contacts this call created are added to `created`, and every contact's fields
    the events show to `people`.

    On PostgreSQL the contacts come back locked: that serialises concurrent ingests of one
    customer (deduplication, the choice of conversation). Existing ones are locked in id
    order, then missing ones inserted in key order, so two batches never wait on each other
    in a circle."""
    wanted = {row.key: row for row in rows}
    found = await _select_contacts(session, channel.organization_id, set(wanted))
    missing = sorted(key for key in wanted if key not in found)
    if missing:
        now = utcnow()
        values = [_new_contact(channel, wanted[key], now) for key in missing]
        await session.execute(insert_for(session, contacts).on_conflict_do_nothing(), values)
        found.update(await _select_contacts(session, channel.organization_id, set(missing)))
        # A concurrent ingest may have won the insert: only our own ids count as created.
        created.update(v["id"] for v in values if found[v["match_key"]].id == v["id"])
    people.update({row.id: row._asdict() for row in found.values()})
    return {key: row.id for key, row in found.items()}


def _new_contact(channel: Channel, row: _Row, now: datetime) -> dict[str, Any]:
    profile = without_nul(row.event.profile_name) if isinstance(row.event, InboundMessage) else None
    return {
        "id": uuid.uuid4(),
        "organization_id": channel.organization_id,
        "whatsapp_id": from_wa_id(row.party),
        "match_key": row.key,
        "wa_id": row.party,
        "name": None,
        "profile_name": profile,
        "email": None,
        "attributes": {},
        "whatsapp_profile_pic_url": None,
        "opt_in": True,
        "opt_in_changed_at": None,
        "opt_in_source": None,
        "is_blocked": False,
        "blocked_at": None,
        "last_inbound_at": None,
        "last_message_at": None,
        "deleted_at": None,
        "created_at": now,
        "updated_at": now,
    }


async def _select_contacts(
    session: AsyncSession, organization_id: uuid.UUID, keys: set[str]
) -> dict[str, Any]:
    """The live contacts with these match keys (locked, in id order, on PostgreSQL)."""
    c = contacts.c

    def build() -> Any:
        stmt = select(c.match_key, c.id, c.name, c.profile_name, c.whatsapp_id, c.opt_in).where(
            c.organization_id == bindparam("org"),
            among(session, c.match_key, "keys"),
            c.deleted_at.is_(None),
        )
        if dialect_name(session) == "postgresql":
            stmt = stmt.order_by(c.id).with_for_update()
        return stmt

    stmt = statement(session, "select_contacts", build)
    result = await session.execute(stmt, {"org": organization_id, "keys": list(keys)})
    return {row.match_key: row for row in result.all()}


async def _lock_contacts(session: AsyncSession, contact_ids: list[uuid.UUID]) -> None:
    """SQLite: take the database's one write lock now, so that the reads below are current
    (on PostgreSQL `_select_contacts` locked the contacts themselves)."""
    c = contacts.c
    stmt = statement(
        session,
        "lock_contacts",
        lambda: update(contacts).where(among(session, c.id, "ids")).values(updated_at=c.updated_at),
    )
    await session.execute(stmt, {"ids": contact_ids})


async def _without_known(session: AsyncSession, channel: Channel, rows: list[_Row]) -> list[_Row]:
    m = messages.c
    stmt = statement(
        session,
        "known_messages",
        lambda: select(m.provider_message_id).where(
            m.channel_id == bindparam("channel"), among(session, m.provider_message_id, "ids")
        ),
    )
    ids = list({row.event.provider_message_id for row in rows})
    known = set(await session.scalars(stmt, {"channel": channel.id, "ids": ids}))
    fresh: list[_Row] = []
    for row in rows:
        pid = row.event.provider_message_id
        if pid not in known:
            known.add(pid)  # a body may carry the same message twice
            fresh.append(row)
    return fresh


async def _conversations_for(
    session: AsyncSession,
    channel: Channel,
    rows: list[_Row],
    contact_ids: dict[str, uuid.UUID],
    created: set[uuid.UUID],
) -> dict[uuid.UUID, uuid.UUID]:
    """Conversation id per contact: the newest live or resolved one on this channel (a resolved
    one reopens when the customer writes again), else a new one (added to `created`)."""
    wanted = {contact_ids[row.key] for row in rows}
    c = conversations.c
    stmt = statement(
        session,
        "select_conversations",
        lambda: (
            select(c.contact_id, c.id, c.status)
            .where(
                c.organization_id == bindparam("org"),
                c.channel_id == bindparam("channel"),
                among(session, c.contact_id, "contacts"),
                c.status.in_((*LIVE_CONVERSATION_STATUSES, "resolved")),
            )
            .order_by(c.created_at)
        ),
    )
    result = await session.execute(
        stmt, {"org": channel.organization_id, "channel": channel.id, "contacts": list(wanted)}
    )
    newest = {
        contact_id: (conversation_id, status) for contact_id, conversation_id, status in result
    }
    found = {contact_id: conversation_id for contact_id, (conversation_id, _) in newest.items()}
    writing = {contact_ids[row.key] for row in rows if row.inbound}
    reopen = sorted(
        conv
        for contact, (conv, status) in newest.items()
        if status == "resolved" and contact in writing
    )
    if reopen:
        await session.execute(
            update(conversations)
            .where(c.id.in_(reopen), c.status == "resolved")
            .values(status="open", resolved_at=None, updated_at=utcnow())
        )
    missing = [contact_id for contact_id in wanted if contact_id not in found]
    if missing:
        now = utcnow()
        values = [_new_conversation(channel, contact_id, now) for contact_id in missing]
        await session.execute(insert_for(session, conversations), values)
        found.update({v["contact_id"]: v["id"] for v in values})
        created.update(v["id"] for v in values)
    return found


def _new_conversation(channel: Channel, contact_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "organization_id": channel.organization_id,
        "contact_id": contact_id,
        "channel_id": channel.id,
        "status": "open",
        "assigned_to_id": None,
        "is_bot_active": True,
        "window_expires_at": None,
        "last_message_at": None,
        "last_inbound_at": None,
        "message_count": 0,
        "unread_count": 0,
        "tags": [],
        "resolved_at": None,
        "created_at": now,
        "updated_at": now,
    }


def _message_values(
    channel: Channel, row: _Row, contact_id: uuid.UUID, conversation_id: uuid.UUID, now: datetime
) -> dict[str, Any]:
    event = row.event
    content = without_nul(dict(event.content))
    error = None
    if isinstance(event, InboundMessage):
        if event.forwarded:
            content["forwarded"] = True
        if event.referral:
            content["referral"] = event.referral
        error = event.errors[0] if event.errors else None
    return {
        "id": uuid.uuid4(),
        "organization_id": channel.organization_id,
        "conversation_id": conversation_id,
        "contact_id": contact_id,
        "channel_id": channel.id,
        "direction": "inbound" if row.inbound else "outbound",
        "type": event.type[:30],
        "content": content,
        "status": "received" if row.inbound else "sent",
        "provider_message_id": event.provider_message_id,
        "context_provider_message_id": event.context_message_id,
        "callback_data": None,
        "provider_timestamp": event.timestamp,
        "sent_at": None if row.inbound else event.timestamp,
        "delivered_at": None,
        "read_at": None,
        "failed_at": None,
        "error_code": error.code if error else None,
        "error_title": (error.title or error.message) if error else None,
        "error_details": (error.details or error.plain_explanation) if error else None,
        "created_at": now,
        "updated_at": now,
    }


_MESSAGE_COLUMNS = [
    "id", "organization_id", "conversation_id", "contact_id", "channel_id", "direction", "type",
    "content", "status", "provider_message_id", "context_provider_message_id", "callback_data",
    "provider_timestamp", "sent_at", "delivered_at", "read_at", "failed_at", "error_code",
    "error_title", "error_details", "created_at", "updated_at",
]  # fmt: skip


async def _insert_messages(
    session: AsyncSession,
    channel: Channel,
    rows: list[_Row],
    contact_ids: dict[str, uuid.UUID],
    conversation_ids: dict[uuid.UUID, uuid.UUID],
) -> dict[str, uuid.UUID]:
    """Insert new messages; returns provider id → row id of those actually inserted."""
    now = utcnow()
    values = []
    # In provider id order: concurrent batches then meet on the unique index in one order.
    for row in sorted(rows, key=lambda r: r.event.provider_message_id):
        contact_id = contact_ids[row.key]
        values.append(_message_values(channel, row, contact_id, conversation_ids[contact_id], now))
    m = messages.c
    source = BatchSource(session, "new", **{name: m[name].type for name in _MESSAGE_COLUMNS})

    def build() -> Any:
        stmt = insert_for(session, messages)
        if source.unnest:
            columns = select(*(source.c[n] for n in _MESSAGE_COLUMNS))
            stmt = stmt.from_select(_MESSAGE_COLUMNS, columns)
        return stmt.on_conflict_do_nothing().returning(m.provider_message_id, m.id)

    # SQLite: an executemany of VALUES, which SQLAlchemy sends as multi-row INSERTs.
    params = source.params(values) if source.unnest else values
    stmt = statement(session, "insert_messages", build)
    return {pid: mid for pid, mid in (await session.execute(stmt, params)).all()}


def _latest(times: list[datetime]) -> datetime | None:
    return max(times) if times else None


def _conversation_source(session: AsyncSession) -> BatchSource:
    ts = UTCDateTime()
    return BatchSource(
        session, "conversation_touch", id=conversations.c.id.type, count=Integer(),
        unread=Integer(), last=ts, last_in=ts, window=ts,
    )  # fmt: skip


def _contact_source(session: AsyncSession) -> BatchSource:
    # Its own names: on PostgreSQL both sources bind in one statement (see `_touch`).
    ts = UTCDateTime()
    return BatchSource(
        session, "contact_touch", contact=contacts.c.id.type, profile=String(), wa=String(),
        contact_last=ts, contact_last_in=ts,
    )  # fmt: skip


def _touch_conversations_stmt(touch: Any) -> Any:
    c = conversations.c
    return (
        update(conversations)
        .where(c.id == touch.id)
        .values(
            message_count=c.message_count + touch.count,
            unread_count=c.unread_count + touch.unread,
            last_message_at=later(c.last_message_at, touch.last),
            last_inbound_at=later(c.last_inbound_at, touch.last_in),
            window_expires_at=later(c.window_expires_at, touch.window),
            updated_at=bindparam("b_now", type_=UTCDateTime()),
        )
    )


def _touch_contacts_stmt(touch: Any) -> Any:
    c = contacts.c
    return (
        update(contacts)
        .where(c.id == touch.contact)
        .values(
            profile_name=func.coalesce(touch.profile, c.profile_name),
            wa_id=func.coalesce(touch.wa, c.wa_id),
            last_message_at=later(c.last_message_at, touch.contact_last),
            last_inbound_at=later(c.last_inbound_at, touch.contact_last_in),
            updated_at=bindparam("b_now", type_=UTCDateTime()),
        )
    )


def _touch_both_stmt(session: AsyncSession) -> Any:
    """PostgreSQL: both UPDATEs in one statement (a round trip fewer per batch; a batch costs
    its statements whatever its size, see docs/benchmarks.md). The contacts are already
    locked by this transaction, so the order PostgreSQL runs the two in does not matter."""
    touched = _touch_conversations_stmt(_conversation_source(session).c)
    touched = touched.returning(conversations.c.id).cte("conversations_touched")
    bumped = _touch_contacts_stmt(_contact_source(session).c)
    bumped = bumped.returning(contacts.c.id).cte("contacts_touched")
    return select(
        select(func.count()).select_from(touched).scalar_subquery(),
        select(func.count()).select_from(bumped).scalar_subquery(),
    )


async def _touch(
    session: AsyncSession,
    rows: list[_Row],
    contact_ids: dict[str, uuid.UUID],
    conversation_ids: dict[uuid.UUID, uuid.UUID],
) -> dict[uuid.UUID, str | None]:
    """Count the stored messages on their conversations (and the customer-service window) and
    bump their contacts' activity, keeping each contact's newest WhatsApp profile name;
    returns that name (None: unchanged) per contact."""
    by_conversation: dict[uuid.UUID, list[_Row]] = {}
    by_contact: dict[uuid.UUID, list[_Row]] = {}
    for row in rows:
        contact_id = contact_ids[row.key]
        by_conversation.setdefault(conversation_ids[contact_id], []).append(row)
        by_contact.setdefault(contact_id, []).append(row)
    conversation_rows = []
    for conversation_id, group in sorted(by_conversation.items()):
        last_in = _latest([r.event.timestamp for r in group if r.inbound])
        conversation_rows.append(
            {
                "id": conversation_id,
                "count": len(group),
                "unread": sum(1 for r in group if r.inbound),
                "last": _latest([r.event.timestamp for r in group]),
                "last_in": last_in,
                "window": last_in + CUSTOMER_SERVICE_WINDOW if last_in else None,
            }
        )
    contact_rows: list[dict[str, Any]] = []
    newest: dict[uuid.UUID, str | None] = {}
    for contact_id, group in sorted(by_contact.items()):
        inbound = [r for r in group if r.inbound]
        profiles = [
            without_nul(r.event.profile_name)
            for r in inbound
            if isinstance(r.event, InboundMessage)
        ]
        newest[contact_id] = next((p for p in reversed(profiles) if p), None)
        contact_rows.append(
            {
                "contact": contact_id,
                "profile": newest[contact_id],
                "wa": inbound[-1].party if inbound else None,
                "contact_last": _latest([r.event.timestamp for r in group]),
                "contact_last_in": _latest([r.event.timestamp for r in inbound]),
            }
        )
    now = utcnow()
    conversation_source, contact_source = _conversation_source(session), _contact_source(session)
    if dialect_name(session) == "postgresql":
        stmt = statement(session, "touch_both", lambda: _touch_both_stmt(session))
        params = {
            **conversation_source.params(conversation_rows, now=now),
            **contact_source.params(contact_rows, now=now),
        }
        await session.execute(stmt, params)
        return newest
    stmt = statement(
        session,
        "touch_conversations",
        lambda: _touch_conversations_stmt(conversation_source.c),
    )
    await session.execute(stmt, conversation_source.params(conversation_rows, now=now))
    stmt = statement(session, "touch_contacts", lambda: _touch_contacts_stmt(contact_source.c))
    await session.execute(stmt, contact_source.params(contact_rows, now=now))
    return newest


def is_opt_out(text: Any, keywords: list[str]) -> bool:
    """Whether a message text is exactly an opt-out keyword (trimmed, case-insensitive)."""
    if not isinstance(text, str):
        return False
    word = text.strip().casefold()
    return any(word == keyword.strip().casefold() for keyword in keywords)


async def _apply_opt_outs(
    session: AsyncSession, settings: Settings, rows: list[_Row], contact_ids: dict[str, uuid.UUID]
) -> list[uuid.UUID]:
    opted = sorted(
        {
            contact_ids[r.key]
            for r in rows
            if r.inbound
            and r.event.type == "text"
            and is_opt_out(r.event.content.get("text"), settings.opt_out_keywords)
        }
    )
    if opted:
        now = utcnow()
        await session.execute(
            update(contacts)
            .where(contacts.c.id.in_(opted), contacts.c.opt_in.is_(True))
            .values(opt_in=False, opt_in_changed_at=now, opt_in_source="keyword", updated_at=now)
        )
    return opted


async def _record_event(
    session: AsyncSession, channel: Channel, kind: str, payload: dict[str, Any]
) -> None:
    await session.execute(
        insert_for(session, channel_events).values(
            id=uuid.uuid4(),
            organization_id=channel.organization_id,
            channel_id=channel.id,
            kind=kind,
            payload=payload,
            created_at=utcnow(),
        )
    )


async def _apply_channel_event(session: AsyncSession, channel: Channel, event: Event) -> None:
    """Connection and QR code changes are kept on the config; everything is recorded."""
    if isinstance(event, ConnectionUpdate):
        await _apply_connection(session, channel, event)
        await _record_event(
            session,
            channel,
            "connection.update",
            {"state": event.state, "status_reason": event.status_reason, "wuid": event.wuid},
        )
    elif isinstance(event, QrCodeUpdate):
        now = utcnow()
        await session.execute(
            update(whatsapp_configs)
            .where(whatsapp_configs.c.id == channel.id)
            .values(
                qr_code=event.base64 or event.code,
                qr_code_expires_at=now + QR_LIFETIME if (event.base64 or event.code) else None,
                connection_state="refused"
                if event.code is None and event.base64 is None
                else "connecting",
                updated_at=now,
            )
        )
        await _record_event(session, channel, "qrcode.updated", {"message": event.message})
    elif isinstance(event, TemplateStatusUpdate):
        await _record_event(
            session,
            channel,
            "template_status",
            {
                "template_id": event.template_id,
                "template_name": event.template_name,
                "language": event.language,
                "event": event.event,
                "reason": event.reason,
                "raw": event.raw,
            },
        )


async def _apply_connection(
    session: AsyncSession, channel: Channel, event: ConnectionUpdate
) -> None:
    cfg = whatsapp_configs.c
    now = utcnow()
    health = "healthy" if event.state == "open" else "unhealthy"
    values: dict[str, Any] = {
        "connection_state": event.state,
        "health_status": case((cfg.is_active.is_(True), health), else_="inactive"),
        "last_health_check": now,
        "updated_at": now,
    }
    if event.state == "open":
        values.update(qr_code=None, qr_code_expires_at=None, connected_at=now)
        if event.wuid:
            values["display_phone_number"] = "+" + event.wuid
        if event.profile_name:
            values["verified_name"] = event.profile_name
    await session.execute(update(whatsapp_configs).where(cfg.id == channel.id).values(**values))
