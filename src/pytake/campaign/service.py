"""Campaigns as a resource: create (template, audience and schedule checked), read with
metrics, list, edit while draft or scheduled, delete a draft, and the start / pause / resume /
cancel actions. The engine that sends them is pytake.campaign.dispatch."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.principal import Principal
from pytake.campaign import lifecycle
from pytake.campaign.audience import count_audience
from pytake.campaign.metrics import Metrics, campaign_metrics
from pytake.campaign.pacing import running_rates
from pytake.campaign.schemas import (
    CampaignCreateIn,
    CampaignOut,
    CampaignUpdateIn,
    MessageContent,
    TargetFilters,
)
from pytake.config import Settings
from pytake.errors import FieldError, NotFound, ValidationFailed
from pytake.events import wake_after_commit
from pytake.kit.pagination import PageParams
from pytake.message.sending.enqueue import resolve_channel
from pytake.models import Channel, MessageTemplate
from pytake.models.base import utcnow
from pytake.models.campaign import Campaign, campaigns_table
from pytake.template.parameters import missing_variables
from pytake.template.service import TemplateNotApproved
from pytake.tenancy import get_scoped, scoped

LOOP = "campaigns"


# -- checks -------------------------------------------------------------------------------


def _check_target(target_type: str, filters: TargetFilters) -> None:
    if target_type == "tags" and not filters.tags:
        raise ValidationFailed.on("target_filters.tags", "Give at least one tag")
    if target_type == "contacts" and not filters.contact_ids:
        raise ValidationFailed.on("target_filters.contact_ids", "Give at least one contact id")
    if target_type == "contacts" and filters.contact_ids and len(filters.contact_ids) > 10_000:
        raise ValidationFailed.on(
            "target_filters.contact_ids", "At most 10,000 ids; target a tag or a segment instead"
        )


def _check_schedule(scheduled_at: datetime | None) -> None:
    if scheduled_at is not None and scheduled_at <= utcnow():
        raise ValidationFailed.on("scheduled_at", "Must be in the future")


async def _template(
    session: AsyncSession,
    organization_id: uuid.UUID,
    template_id: uuid.UUID | None,
    content: MessageContent,
    channel: Channel,
) -> MessageTemplate:
    """The APPROVED template the campaign names, covering its variables (422 naming each)."""
    if template_id is not None:
        field = "template_id"
        template = await session.scalar(
            select(MessageTemplate).where(
                MessageTemplate.id == template_id,
                MessageTemplate.organization_id == organization_id,
            )
        )
        if template is None:
            raise ValidationFailed.on(field, "No such template in this organisation")
    elif content.template:
        field = "message_content.template"
        template = await _template_by_name(session, organization_id, content, channel)
    else:
        raise ValidationFailed.on(
            "template_id", "Give template_id or the template's name in message_content.template"
        )
    if template.status != "APPROVED":
        raise TemplateNotApproved(
            f"Template '{template.name}' ({template.language}) is {template.status}; "
            "only APPROVED templates can be sent",
            details=[FieldError(field, f"The template is {template.status}, not APPROVED")],
        )
    if channel.business_account_id and template.business_account_id != (
        channel.business_account_id
    ):
        raise ValidationFailed.on(
            "channel_id", "The template belongs to another WhatsApp Business Account"
        )
    missing = missing_variables(template, content.variables)
    if missing:
        raise ValidationFailed(
            "The variables do not cover the template's parameters: " + ", ".join(missing),
            details=[
                FieldError(f"message_content.variables.{key}", "Required by the template")
                for key in missing
            ],
        )
    return template


async def _template_by_name(
    session: AsyncSession,
    organization_id: uuid.UUID,
    content: MessageContent,
    channel: Channel,
) -> MessageTemplate:
    stmt = select(MessageTemplate).where(
        MessageTemplate.organization_id == organization_id,
        MessageTemplate.name == content.template,
    )
    if channel.business_account_id:
        stmt = stmt.where(MessageTemplate.business_account_id == channel.business_account_id)
    if content.language:
        stmt = stmt.where(func.lower(MessageTemplate.language) == content.language.lower())
    found = list(await session.scalars(stmt.order_by(MessageTemplate.created_at)))
    if not found:
        raise ValidationFailed.on(
            "message_content.template", f"No template named '{content.template}'"
        )
    approved = [t for t in found if t.status == "APPROVED"]
    if len({t.language for t in approved}) > 1:
        raise ValidationFailed.on(
            "message_content.language",
            "The template exists in several languages ("
            + ", ".join(sorted({t.language for t in approved}))
            + "); say which",
        )
    return (approved or found)[0]


async def _channel(
    session: AsyncSession, principal: Principal, channel_id: uuid.UUID | None
) -> Channel:
    channel = await resolve_channel(session, principal, channel_id)
    if channel.provider != "official":
        raise ValidationFailed.on(
            "channel_id", "Campaigns send Meta templates: use a Cloud API number"
        )
    return channel


async def _audience_total(
    session: AsyncSession, organization_id: uuid.UUID, target_type: str, filters: dict[str, Any]
) -> tuple[int, dict[str, int]]:
    counted = await count_audience(session, organization_id, target_type, filters)
    if counted.reachable == 0:
        left_out = ", ".join(f"{n} {why}" for why, n in sorted(counted.skipped.items()))
        raise ValidationFailed.on(
            "target_filters",
            "The audience is empty" + (f" ({left_out})" if left_out else ""),
        )
    return counted.reachable, counted.skipped


# -- the resource -------------------------------------------------------------------------


async def create_campaign(
    session: AsyncSession, principal: Principal, body: CampaignCreateIn
) -> Campaign:
    """Check the template, variables, schedule and audience; store a draft or scheduled one."""
    _check_target(body.target_type, body.target_filters)
    _check_schedule(body.scheduled_at)
    channel = await _channel(session, principal, body.channel_id)
    template = await _template(
        session, principal.organization_id, body.template_id, body.message_content, channel
    )
    filters = body.target_filters.model_dump(mode="json", exclude_none=True)
    total, skipped = await _audience_total(
        session, principal.organization_id, body.target_type, filters
    )
    campaign = Campaign(
        organization_id=principal.organization_id,
        name=body.name,
        description=body.description,
        status="scheduled" if body.scheduled_at else "draft",
        target_type=body.target_type,
        target_filters=filters,
        template_id=template.id,
        template_name=template.name,
        template_language=template.language,
        message_content=body.message_content.model_dump(mode="json", exclude_none=True),
        channel_id=channel.id,
        send_rate_limit=body.send_rate_limit,
        scheduled_at=body.scheduled_at,
        total_recipients=total,
        skipped=skipped,
        created_by_id=principal.user_id,
        policy_error_streak=0,
    )
    session.add(campaign)
    await session.flush()
    if campaign.status == "scheduled":
        wake_after_commit(session, LOOP)
    return campaign


async def get_campaign(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID
) -> Campaign:
    return await get_scoped(session, Campaign, campaign_id, principal, what="Campaign")


async def list_campaigns(
    session: AsyncSession, principal: Principal, params: PageParams, status: str | None
) -> tuple[list[Campaign], int]:
    stmt = scoped(select(Campaign), Campaign, principal)
    if status:
        stmt = stmt.where(Campaign.status == status)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = await session.scalars(
        stmt.order_by(Campaign.created_at.desc(), Campaign.id.desc())
        .offset(params.offset)
        .limit(params.limit)
    )
    return list(rows), int(total or 0)


async def update_campaign(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID, body: CampaignUpdateIn
) -> Campaign:
    """Edit a draft or scheduled campaign; the template, variables and audience are checked
    again as on creation."""
    campaign = await lock(session, principal, campaign_id)
    lifecycle.check_allowed(campaign, "update")
    given = body.model_fields_set
    for name in ("name", "description", "send_rate_limit"):
        if name in given:
            if name == "name" and body.name is None:
                raise ValidationFailed.on("name", "Cannot be null")
            setattr(campaign, name, getattr(body, name))
    if "scheduled_at" in given:
        _check_schedule(body.scheduled_at)
        campaign.scheduled_at = body.scheduled_at
        campaign.status = "scheduled" if body.scheduled_at else "draft"
    target_type = body.target_type or campaign.target_type
    filters_in = (
        body.target_filters
        if body.target_filters is not None
        else TargetFilters.model_validate(campaign.target_filters)
    )
    _check_target(target_type, filters_in)
    channel = await _channel(
        session, principal, body.channel_id if "channel_id" in given else campaign.channel_id
    )
    content = body.message_content or MessageContent.model_validate(campaign.message_content)
    template_id = body.template_id if "template_id" in given else campaign.template_id
    if body.message_content is not None and "template_id" not in given and content.template:
        template_id = None  # a new template name replaces the one chosen by id
    template = await _template(session, principal.organization_id, template_id, content, channel)
    filters = filters_in.model_dump(mode="json", exclude_none=True)
    campaign.total_recipients, campaign.skipped = await _audience_total(
        session, principal.organization_id, target_type, filters
    )
    campaign.target_type, campaign.target_filters = target_type, filters
    campaign.channel_id = channel.id
    campaign.template_id, campaign.template_name = template.id, template.name
    campaign.template_language = template.language
    campaign.message_content = content.model_dump(mode="json", exclude_none=True)
    campaign.updated_at = utcnow()
    await session.flush()
    wake_after_commit(session, LOOP)
    return campaign


async def delete_campaign(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID
) -> None:
    campaign = await lock(session, principal, campaign_id)
    lifecycle.check_allowed(campaign, "delete")
    await session.delete(campaign)
    await session.flush()


async def lock(session: AsyncSession, principal: Principal, campaign_id: uuid.UUID) -> Campaign:
    """The campaign, its row held until the transaction ends (a write first: on SQLite that
    takes the write lock, so the state read next is current); another organisation's: 404."""
    c = campaigns_table.c
    stmt = update(campaigns_table).where(c.id == campaign_id)
    if not principal.sees_all_organizations:
        stmt = stmt.where(c.organization_id == principal.organization_id)
    touched = await session.execute(stmt.values(updated_at=utcnow()))
    if not touched.rowcount:  # type: ignore[attr-defined]
        raise NotFound("Campaign not found")
    campaign = await session.get(Campaign, campaign_id, populate_existing=True)
    assert campaign is not None
    return campaign


async def act(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID, action: str
) -> Campaign:
    """start | pause | resume | cancel."""
    campaign = await lock(session, principal, campaign_id)
    lifecycle.check_allowed(campaign, action)
    if action == "start":
        await lifecycle.start(session, campaign)
    elif action == "pause":
        await lifecycle.pause(session, campaign, "paused by request")
    elif action == "resume":
        await lifecycle.resume(session, campaign)
    else:
        await lifecycle.cancel(session, campaign)
    if action in ("start", "resume"):
        wake_after_commit(session, LOOP)
    return campaign


# -- views --------------------------------------------------------------------------------


async def views(
    session: AsyncSession, settings: Settings, campaigns: list[Campaign]
) -> list[CampaignOut]:
    """The campaigns with their metrics (one query for all of them)."""
    hours = settings.campaign_reply_window_hours
    metrics = await campaign_metrics(session, [c.id for c in campaigns], hours)
    numbers = {c.channel_id for c in campaigns if c.status == "running" and c.channel_id}
    rates = await running_rates(session, numbers) if numbers else {}
    return [_view(c, metrics[c.id], settings, rates.get(c.id)) for c in campaigns]


def _view(
    campaign: Campaign, metrics: Metrics, settings: Settings, rate: float | None
) -> CampaignOut:
    skipped = dict(metrics.skipped) if campaign.started_at else {}
    for reason, n in (campaign.skipped or {}).items():
        skipped[reason] = skipped.get(reason, 0) + int(n)
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        description=campaign.description,
        status=campaign.status,
        target_type=campaign.target_type,
        target_filters=campaign.target_filters or {},
        template_id=campaign.template_id,
        template_name=campaign.template_name,
        template_language=campaign.template_language,
        message_content=campaign.message_content or {},
        channel_id=campaign.channel_id,
        send_rate_limit=campaign.send_rate_limit,
        scheduled_at=campaign.scheduled_at,
        total_recipients=campaign.total_recipients,
        pending_count=metrics.pending if campaign.started_at else campaign.total_recipients,
        sent_count=metrics.sent,
        delivered_count=metrics.delivered,
        read_count=metrics.read,
        failed_count=metrics.failed,
        replied_count=metrics.replied,
        skipped_count=sum(skipped.values()),
        skipped_reasons=skipped,
        delivery_rate=metrics.rate(metrics.delivered),
        read_rate=metrics.rate(metrics.read),
        reply_rate=metrics.rate(metrics.replied),
        reply_window_hours=settings.campaign_reply_window_hours,
        current_rate=round(rate, 1) if rate is not None and campaign.status == "running" else None,
        pause_reason=campaign.pause_reason,
        started_at=campaign.started_at,
        completed_at=campaign.completed_at,
        paused_at=campaign.paused_at,
        cancelled_at=campaign.cancelled_at,
        created_at=campaign.created_at,
        updated_at=campaign.updated_at,
    )
