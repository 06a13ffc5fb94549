"""Sync: PyTake's copies of the templates made current from Meta's list, page by page.

Meta is the truth for what a template is (components, category, status); a template created in
Meta's own tools appears here, one deleted there is marked DELETED here.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, cast

import aiohttp
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.principal import Principal
from pytake.config import Settings
from pytake.errors import ValidationFailed
from pytake.kit.sql import serialise
from pytake.models import Channel, MessageTemplate
from pytake.models.base import utcnow
from pytake.template.rules import normalize_language, normalized
from pytake.template.schemas import SyncOut
from pytake.template.service import meta_refusal, template_channel, template_provider
from pytake.whatsapp.provider import ProviderError, Template

log = logging.getLogger(__name__)

# A row without Meta's id that Meta does not list after this long was never submitted (the
# process stopped between committing it and Meta's answer).
ORPHAN_AFTER = timedelta(minutes=10)


def _second(moment: datetime) -> datetime:
    """Webhook times are whole seconds: so are the status times sync writes."""
    return moment.replace(microsecond=0)


async def account_channels(session: AsyncSession, organization_id: uuid.UUID) -> list[Channel]:
    """One Cloud API number per Business Account of the organisation (the default first)."""
    channels = await session.scalars(
        select(Channel)
        .where(
            Channel.organization_id == organization_id,
            Channel.provider == "official",
            Channel.business_account_id.is_not(None),
            Channel.is_active.is_(True),
        )
        .order_by(Channel.is_default.desc(), Channel.created_at)
    )
    seen: dict[str, Channel] = {}
    for channel in channels:
        seen.setdefault(channel.business_account_id or "", channel)
    return list(seen.values())


async def sync_organization(
    session: AsyncSession,
    settings: Settings,
    http: aiohttp.ClientSession,
    principal: Principal,
    channel_id: uuid.UUID | None = None,
) -> SyncOut:
    """Sync one number's Business Account, or every account of the organisation."""
    if channel_id is not None:
        channels = [await template_channel(session, principal, channel_id)]
    else:
        channels = await account_channels(session, principal.organization_id)
        if not channels:
            raise ValidationFailed.on(
                "channel_id",
                "the organisation has no Cloud API number with a business_account_id to sync",
            )
    result = SyncOut(channels=0, fetched=0, created=0, updated=0, unchanged=0)
    for channel in channels:
        try:
            counts = await sync_channel(session, settings, http, channel)
        except ProviderError as exc:
            if channel_id is not None:
                raise meta_refusal(exc, "list the templates") from exc
            result.errors.append({"channel_id": str(channel.id), "error": exc.plain_explanation})
            continue
        result.channels += 1
        for key, value in counts.items():
            setattr(result, key, getattr(result, key) + value)
    return result


async def sync_channel(
    session: AsyncSession, settings: Settings, http: aiohttp.ClientSession, channel: Channel
) -> dict[str, int]:
    """Read every template of the number's Business Account (all pages) and apply them;
    raises ProviderError when Meta cannot be read (nothing is changed then)."""
    provider = await template_provider(channel, settings, http)
    remote = await provider.list_templates()
    return await apply_listing(session, channel, remote)


async def apply_listing(
    session: AsyncSession, channel: Channel, remote: list[Template]
) -> dict[str, int]:
    """Create or update a copy for each listed template; mark the unlisted ones DELETED.

    One sync of an account at a time (the API's and the worker's may meet): each reads the
    copies only once the previous one has committed, so none inserts a template twice."""
    await serialise(
        session,
        f"template-sync:{channel.organization_id}:{channel.business_account_id}",
        cast(Table, MessageTemplate.__table__),
    )
    now = utcnow()
    rows = list(
        await session.scalars(
            select(MessageTemplate).where(
                MessageTemplate.organization_id == channel.organization_id,
                MessageTemplate.business_account_id == channel.business_account_id,
            )
        )
    )
    by_id = {r.meta_template_id: r for r in rows if r.meta_template_id}
    by_key = {(r.name, r.language): r for r in rows}
    counts = {"fetched": len(remote), "created": 0, "updated": 0, "unchanged": 0}
    listed: set[uuid.UUID] = set()
    for item in remote:
        language = normalize_language(item.language)
        row = by_id.get(item.id) or by_key.get((item.name, language))
        if row is None:
            row = _new_row(channel, item, language, now)
            session.add(row)
            by_key[(item.name, language)] = row
            counts["created"] += 1
        elif _update(row, item, channel, now):
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
        row.last_synced_at = now
        listed.add(row.id)
    for row in rows:
        if row.id not in listed:
            await _unlisted(session, row, now)
    await session.flush()
    return counts


def _new_row(channel: Channel, item: Template, language: str, now: datetime) -> MessageTemplate:
    return MessageTemplate(
        id=uuid.uuid4(),
        organization_id=channel.organization_id,
        channel_id=channel.id,
        business_account_id=channel.business_account_id,
        meta_template_id=item.id or None,
        name=item.name,
        language=language,
        category=(item.category or "UTILITY").upper(),
        previous_category=item.raw.get("previous_category"),
        parameter_format=(item.parameter_format or "POSITIONAL").upper(),
        components=_components(item),
        status=item.status or "PENDING",
        status_reason=_reason(item.raw),
        quality_score=_quality(item.raw),
        status_updated_at=_second(now),
        created_at=now,
        updated_at=now,
    )


def _components(item: Template) -> list[dict[str, Any]]:
    return normalized([c for c in item.components if isinstance(c, dict)])


def _reason(raw: dict[str, Any]) -> str | None:
    reason = raw.get("rejected_reason") or raw.get("reason")
    return None if reason in (None, "", "NONE") else str(reason)


def _quality(raw: dict[str, Any]) -> str | None:
    quality = raw.get("quality_score")
    if isinstance(quality, dict):
        quality = quality.get("score")
    return str(quality) if quality else None


def _update(row: MessageTemplate, item: Template, channel: Channel, now: datetime) -> bool:
    """Apply Meta's view of a template to our copy; True when something changed."""
    wanted: dict[str, Any] = {
        "meta_template_id": item.id or row.meta_template_id,
        "category": (item.category or row.category).upper(),
        "parameter_format": (item.parameter_format or row.parameter_format).upper(),
        "components": _components(item) or row.components,
    }
    if item.raw.get("previous_category"):
        wanted["previous_category"] = item.raw["previous_category"]
    if _quality(item.raw):
        wanted["quality_score"] = _quality(item.raw)
    changed = False
    for key, value in wanted.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    if item.status and item.status != row.status:
        row.status = item.status
        row.status_reason = _reason(item.raw) or (
            row.status_reason if item.status == "REJECTED" else None
        )
        row.status_updated_at = _second(now)
        changed = True
    if row.channel_id is None:
        row.channel_id = channel.id
    if changed:
        row.updated_at = now
    return changed


async def _unlisted(session: AsyncSession, row: MessageTemplate, now: datetime) -> None:
    if row.meta_template_id is None:
        if now - row.created_at > ORPHAN_AFTER:
            log.info("template %s never reached Meta; removed", row.id)
            await session.delete(row)
        return
    if row.status != "DELETED":
        row.status = "DELETED"
        row.status_reason = "no longer listed by Meta"
        row.status_updated_at = _second(now)
        row.updated_at = now
