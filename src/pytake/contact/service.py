"""Contacts: the CRM's people, their consent and blocking, and the lookups other domains use."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    cast,
    delete,
    exists,
    func,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from pytake.auth.principal import Principal
from pytake.contact import tags as tag_service
from pytake.contact.events import record_contact_event
from pytake.contact.schemas import ContactCreateIn, ContactUpdateIn
from pytake.contact.search import contact_search_text, digit_grams, search_pattern
from pytake.errors import Conflict, NotFound, ValidationFailed
from pytake.kit.phone import InvalidPhoneNumber, match_key, normalise_e164
from pytake.kit.sql import is_postgresql
from pytake.models.base import utcnow
from pytake.models.contact import Contact, ContactTag
from pytake.models.conversation import Conversation, Message
from pytake.tenancy import get_scoped, scoped


@dataclass
class ContactFilter:
    """List / export / bulk criteria; all given criteria must hold."""

    search: str | None = None
    tags: list[str] = field(default_factory=list)
    opt_in: bool | None = None
    ids: list[uuid.UUID] | None = None


@dataclass
class ContactActivity:
    total_conversations: int
    total_messages: int
    last_message_at: datetime | None


def valid_whatsapp_id(raw: str, field_name: str = "whatsapp_id") -> str:
    """The E.164 form of a number, or a 422 naming the field."""
    try:
        return normalise_e164(raw)
    except InvalidPhoneNumber as exc:
        raise ValidationFailed.on(field_name, "Phone number must be in E.164 format") from exc


# --- lookups and queries other domains use -------------------------------------------------


def reachable_clause() -> ColumnElement[bool]:
    """Contacts that may be messaged by campaigns: live, opted in, not blocked."""
    return and_(
        Contact.deleted_at.is_(None), Contact.opt_in.is_(True), Contact.is_blocked.is_(False)
    )


def reachable_contacts(
    organization_id: uuid.UUID, tag_ids: list[uuid.UUID] | None = None
) -> Select[Any]:
    """SELECT of the ids of an organisation's reachable contacts, optionally having all tags."""
    stmt = select(Contact.id).where(Contact.organization_id == organization_id, reachable_clause())
    for tag_id in tag_ids or []:
        stmt = stmt.where(has_tag(tag_id))
    return stmt


async def find_by_phone(
    session: AsyncSession, organization_id: uuid.UUID, number: str
) -> Contact | None:
    """The live contact for a number in any spelling (with or without '+', Brazil's ninth digit)."""
    return await session.scalar(
        select(Contact).where(
            Contact.organization_id == organization_id,
            Contact.match_key == match_key(number),
            Contact.deleted_at.is_(None),
        )
    )


def set_opt_in(contact: Contact, opt_in: bool, source: str) -> None:
    """Record consent given or withdrawn, when and how (e.g. 'api', 'keyword', 'import')."""
    if contact.opt_in != opt_in or contact.opt_in_changed_at is None:
        contact.opt_in = opt_in
        contact.opt_in_changed_at = utcnow()
        contact.opt_in_source = source[:50]


def set_blocked(contact: Contact, blocked: bool) -> None:
    """Block (never message) or unblock a contact."""
    if contact.is_blocked != blocked:
        contact.is_blocked = blocked
        contact.blocked_at = utcnow() if blocked else None


def refresh_search_text(contact: Contact) -> None:
    """Recompute `search_text` after name, e-mail or number changed (ingest calls this too)."""
    contact.search_text = contact_search_text(contact.name, contact.email, contact.whatsapp_id)


async def contact_activity(session: AsyncSession, contact: Contact) -> ContactActivity:
    """Conversation and message totals of a contact, and the time of its latest message."""
    of_contact = and_(
        Conversation.organization_id == contact.organization_id,
        Conversation.contact_id == contact.id,
    )
    total_conversations = await session.scalar(
        select(func.count()).select_from(Conversation).where(of_contact)
    )
    # Through its conversations: messages are indexed by (conversation_id, created_at).
    total_messages, latest = (
        await session.execute(
            select(func.count(), func.max(Message.created_at)).where(
                Message.conversation_id.in_(select(Conversation.id).where(of_contact))
            )
        )
    ).one()
    last_message_at = contact.last_message_at
    if latest is not None and (last_message_at is None or latest > last_message_at):
        last_message_at = latest
    return ContactActivity(total_conversations or 0, total_messages or 0, last_message_at)


# --- filtering ---------------------------------------------------------------------------------


def has_tag(tag_id: uuid.UUID) -> ColumnElement[bool]:
    # An alias: the list may already join contact_tags (see listing), which would correlate.
    link = aliased(ContactTag)
    return exists().where(link.contact_id == Contact.id, link.tag_id == tag_id)


def live_contacts(principal: Principal) -> Select[Any]:
    """The principal's organisation's contacts that are not deleted."""
    return scoped(select(Contact).where(Contact.deleted_at.is_(None)), Contact, principal)


def search_clauses(session: AsyncSession, query: str) -> list[ColumnElement[bool]]:
    """WHERE clauses of a search: a substring of `search_text` (see contact.search)."""
    pattern = search_pattern(query)
    if pattern is None:
        return []
    like = Contact.search_text.like(pattern, escape="\\")
    grams = digit_grams(query)
    if grams is None or not is_postgresql(session):
        return [like]
    # The digit n-gram GIN index (migration 0007) finds the few candidates; LIKE keeps the exact
    # meaning. The cast: the index expression is int4[] and `@>` wants both sides alike.
    indexed = func.contact_digit_grams(Contact.search_text)
    wanted = cast(postgresql.array([literal(g, Integer) for g in grams]), postgresql.ARRAY(Integer))
    return [indexed.op("@>")(wanted), like]


@dataclass
class Criteria:
    """A filter as WHERE clauses on contacts, plus the ids of the tags contacts must all have."""

    clauses: list[ColumnElement[bool]]
    tag_ids: list[uuid.UUID]

    def all_clauses(self) -> list[ColumnElement[bool]]:
        return [*self.clauses, *(has_tag(t) for t in self.tag_ids)]


async def criteria(
    session: AsyncSession, principal: Principal, filt: ContactFilter
) -> Criteria | None:
    """The filter's criteria; None when it cannot match anything (an unknown tag, no ids)."""
    clauses: list[ColumnElement[bool]] = []
    if filt.search:
        clauses.extend(search_clauses(session, filt.search))
    if filt.opt_in is not None:
        clauses.append(Contact.opt_in.is_(filt.opt_in))
    if filt.ids is not None:
        if not filt.ids:
            return None
        clauses.append(Contact.id.in_(filt.ids))
    tag_ids: list[uuid.UUID] = []
    if filt.tags:
        ids = await tag_service.tag_ids(session, principal.organization_id, filt.tags)
        if len(ids) < len(set(filt.tags)):
            return None
        tag_ids = list(dict.fromkeys(ids[name] for name in filt.tags))
    return Criteria(clauses, tag_ids)


async def filter_clauses(
    session: AsyncSession, principal: Principal, filt: ContactFilter
) -> list[ColumnElement[bool]] | None:
    """WHERE clauses for a filter; None when it cannot match anything (an unknown tag)."""
    found = await criteria(session, principal, filt)
    return None if found is None else found.all_clauses()


def newest_first(stmt: Select[Any]) -> Select[Any]:
    return stmt.order_by(Contact.created_at.desc(), Contact.id.desc())


# --- the contact resource --------------------------------------------------------------------


async def get_contact(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID
) -> Contact:
    """A live contact of the principal's organisation, or a 404."""
    contact = await get_scoped(session, Contact, contact_id, principal, what="Contact")
    if contact.deleted_at is not None:
        raise NotFound("Contact not found")
    return contact


async def _ensure_number_free(
    session: AsyncSession, organization_id: uuid.UUID, key: str, contact_id: uuid.UUID | None
) -> None:
    existing = await session.scalar(
        select(Contact.id).where(
            Contact.organization_id == organization_id,
            Contact.match_key == key,
            Contact.deleted_at.is_(None),
        )
    )
    if existing is not None and existing != contact_id:
        raise Conflict(
            "A contact with this WhatsApp number already exists",
            extra={"contact_id": str(existing)},
        )


async def _flush_or_conflict(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent request took the number between check and write
        raise Conflict("A contact with this WhatsApp number already exists") from exc


async def create_contact(
    session: AsyncSession, principal: Principal, data: ContactCreateIn
) -> Contact:
    """A new contact; its number (in any spelling) must not belong to another live contact."""
    whatsapp_id = valid_whatsapp_id(data.whatsapp_id)
    key = match_key(whatsapp_id)
    await _ensure_number_free(session, principal.organization_id, key, None)
    now = utcnow()
    contact = Contact(
        organization_id=principal.organization_id,
        whatsapp_id=whatsapp_id,
        match_key=key,
        name=(data.name or "").strip() or None,
        email=str(data.email).lower() if data.email else None,
        attributes=_merge_attributes({}, data.attributes),
        whatsapp_profile_pic_url=data.whatsapp_profile_pic_url,
        opt_in=data.opt_in,
        opt_in_changed_at=now,
        opt_in_source="api",
        is_blocked=False,
        created_at=now,
        updated_at=now,
    )
    refresh_search_text(contact)
    session.add(contact)
    await _flush_or_conflict(session)
    await tag_service.replace_contact_tags(session, contact, data.tags)
    await record_contact_event(session, contact, "contact.created")
    return contact


def _merge_attributes(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


async def update_contact(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID, data: ContactUpdateIn
) -> Contact:
    """Change the given fields; attributes merge key by key (null removes); tags are replaced."""
    contact = await get_contact(session, principal, contact_id)
    given = data.model_fields_set
    if "whatsapp_id" in given:
        if data.whatsapp_id is None:
            raise ValidationFailed.on("whatsapp_id", "Phone number must be in E.164 format")
        number = valid_whatsapp_id(data.whatsapp_id)
        await _ensure_number_free(session, contact.organization_id, match_key(number), contact.id)
        contact.whatsapp_id, contact.match_key = number, match_key(number)
    if "name" in given:
        contact.name = (data.name or "").strip() or None
    if "email" in given:
        contact.email = str(data.email).lower() if data.email else None
    if "whatsapp_profile_pic_url" in given:
        contact.whatsapp_profile_pic_url = data.whatsapp_profile_pic_url
    if data.attributes:
        contact.attributes = _merge_attributes(contact.attributes or {}, data.attributes)
    if data.opt_in is not None:
        set_opt_in(contact, data.opt_in, "api")
    if data.is_blocked is not None:
        set_blocked(contact, data.is_blocked)
    if data.tags is not None:
        await tag_service.replace_contact_tags(session, contact, data.tags)
    refresh_search_text(contact)
    contact.updated_at = utcnow()
    await _flush_or_conflict(session)
    changed = sorted(f for f in given if f != "tags" or data.tags is not None)
    await record_contact_event(session, contact, "contact.updated", changed)
    return contact


async def delete_contact(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID
) -> None:
    """Soft delete: gone from lists and lookups, its number free again, its history kept.

    Its tag links go: contact_tags then holds live contacts only, so a tag's contacts are
    counted from its links alone (listing, tag counts), without a probe per contact.
    """
    contact = await get_contact(session, principal, contact_id)
    contact.deleted_at = utcnow()
    await session.execute(delete(ContactTag).where(ContactTag.contact_id == contact.id))
    await session.flush()


async def change_consent(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID, opt_in: bool, source: str
) -> Contact:
    contact = await get_contact(session, principal, contact_id)
    set_opt_in(contact, opt_in, source)
    await session.flush()
    await record_contact_event(session, contact, "contact.updated", ["opt_in"])
    return contact


async def change_blocked(
    session: AsyncSession, principal: Principal, contact_id: uuid.UUID, blocked: bool
) -> Contact:
    contact = await get_contact(session, principal, contact_id)
    set_blocked(contact, blocked)
    await session.flush()
    await record_contact_event(session, contact, "contact.updated", ["is_blocked"])
    return contact
