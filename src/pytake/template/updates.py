"""Meta's account-level template webhooks applied to PyTake's copies: status
(`message_template_status_update`), quality (`message_template_quality_update`) and category
(`template_category_update`).

Called by message ingest (inside the webhook's transaction) once the body's signature has been
checked with the app secret of a configuration of that Business Account. A status only moves
to a newer one: Meta's `entry[].time` older than the status we hold (a late or replayed
webhook) changes nothing, and a duplicate sets what is already set.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.events import record
from pytake.models import MessageTemplate
from pytake.models.base import utcnow
from pytake.template.rules import normalize_language
from pytake.whatsapp.events import TemplateStatusUpdate

log = logging.getLogger(__name__)

# Events that are not themselves a status: the template is back to APPROVED.
_STATUS_OF_EVENT = {"REINSTATED": "APPROVED", "UNLOCKED": "APPROVED", "UNPAUSED": "APPROVED"}


async def _template_of(
    session: AsyncSession, organization_id: uuid.UUID, update: TemplateStatusUpdate
) -> MessageTemplate | None:
    """By Meta's id; else by name and language (a webhook that overtook Meta's answer to our
    creation, before we stored the id)."""
    base = select(MessageTemplate).where(
        MessageTemplate.organization_id == organization_id,
        MessageTemplate.business_account_id == update.channel,
    )
    if update.template_id:
        found = await session.scalar(
            base.where(MessageTemplate.meta_template_id == update.template_id)
        )
        if found is not None:
            return found
    if not update.template_name or not update.language:
        return None
    return await session.scalar(
        base.where(
            MessageTemplate.name == update.template_name,
            MessageTemplate.language == normalize_language(update.language),
            or_(
                MessageTemplate.meta_template_id.is_(None),
                MessageTemplate.meta_template_id == update.template_id,
            ),
        )
    )


def _is_stale(template: MessageTemplate, at: datetime | None) -> bool:
    held = template.status_updated_at
    return at is not None and held is not None and at < held.replace(microsecond=0)


def _reason(update: TemplateStatusUpdate) -> str | None:
    reason = update.reason
    if reason in (None, "", "NONE"):
        info = update.raw.get("other_info")
        if isinstance(info, dict) and info.get("description"):
            return str(info["description"])[:500]
        return None
    return str(reason)[:500]


def _apply_status(template: MessageTemplate, update: TemplateStatusUpdate) -> None:
    if _is_stale(template, update.timestamp):
        log.info("stale %s for template %s ignored", update.event, template.id)
        return
    status = _STATUS_OF_EVENT.get(update.event.upper(), update.event.upper())
    template.status = status
    template.status_reason = _reason(update)
    info = update.raw.get("rejection_info")
    template.rejection_info = info if isinstance(info, dict) and status == "REJECTED" else None
    template.status_updated_at = update.timestamp or utcnow().replace(microsecond=0)
    category = update.raw.get("message_template_category")
    if isinstance(category, str) and category:
        template.category = category.upper()


async def apply_account_update(
    session: AsyncSession, organization_id: uuid.UUID, update: TemplateStatusUpdate
) -> bool:
    """Apply one account-level template webhook to the organisation's copy; False when PyTake
    does not know the template (the next sync brings it in)."""
    template = await _template_of(session, organization_id, update)
    if template is None:
        log.info(
            "template update for unknown template %s (%s) of account %s",
            update.template_id,
            update.template_name,
            update.channel,
        )
        return False
    if template.meta_template_id is None and update.template_id:
        template.meta_template_id = update.template_id
    before = _watched(template)
    if update.kind == "status":
        _apply_status(template, update)
    elif update.kind == "quality":
        template.quality_score = update.event.upper()
    else:
        new = update.event.upper()
        if new != template.category:
            template.previous_category = update.previous or template.category
            template.category = new
    template.updated_at = utcnow()
    await session.flush()
    if _watched(template) != before:  # a duplicate or a late webhook changes nothing
        await record(
            session, organization_id, "template.updated", event_data(template, update.kind)
        )
    return True


def _watched(template: MessageTemplate) -> tuple[object, ...]:
    return (template.status, template.status_reason, template.quality_score, template.category)


def event_data(template: MessageTemplate, change: str) -> dict[str, object]:
    """The `template.updated` payload: what changed (status, quality or category) and the
    template as it is now."""
    return {
        "change": change,
        "template": {
            "id": str(template.id),
            "name": template.name,
            "language": template.language,
            "category": template.category,
            "previous_category": template.previous_category,
            "status": template.status,
            "status_reason": template.status_reason,
            "quality_score": template.quality_score,
            "meta_template_id": template.meta_template_id,
            "business_account_id": template.business_account_id,
            "channel_id": str(template.channel_id) if template.channel_id else None,
        },
    }
