"""contact.created / contact.updated from a contact row (payloads: pytake.events.payloads)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pytake.events import record_many
from pytake.events.payloads import contact_brief, contact_event
from pytake.models import Contact


def contact_brief_of(contact: Contact) -> dict[str, Any]:
    """The contact as message and conversation events show it."""
    return contact_brief(
        contact.id, contact.name, contact.profile_name, contact.whatsapp_id, contact.opt_in
    )


async def record_contact_event(
    session: AsyncSession, contact: Contact, type: str, changes: list[str] | None = None
) -> None:
    """contact.created / contact.updated, in the change's transaction."""
    event = contact_event(
        contact.organization_id,
        type,
        contact_brief_of(contact),
        email=contact.email,
        is_blocked=contact.is_blocked,
        attributes=contact.attributes,
        changes=changes,
    )
    await record_many(session, [event])
