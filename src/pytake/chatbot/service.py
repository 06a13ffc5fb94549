"""Chatbots and flows: CRUD, validation on save, publishing frozen versions, statistics."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.principal import Principal
from pytake.chatbot.engine import Report, validate_flow
from pytake.chatbot.engine.legacy import LegacyFlowError, convert_steps, legacy_trigger
from pytake.chatbot.schemas import (
    ChatbotCreateIn,
    ChatbotDetailOut,
    ChatbotOut,
    ChatbotSettingsIn,
    ChatbotSettingsOut,
    ChatbotStatistics,
    ChatbotUpdateIn,
    FlowIn,
    FlowOut,
    FlowStatsOut,
    FlowSummary,
    FlowVersionOut,
    FlowWarning,
    LegacyFlowIn,
    LegacyFlowOut,
    NodeStatOut,
    StartFlowOut,
    VersionStatsOut,
)
from pytake.errors import FieldError, NotFound, ValidationFailed
from pytake.models import (
    Chatbot,
    ChatbotFlow,
    ChatbotFlowVersion,
    ChatbotNodeStat,
    ChatbotSession,
    Conversation,
)
from pytake.models.base import utcnow
from pytake.template.service import TemplateNotApproved, find_template, not_approved
from pytake.tenancy import get_scoped, scoped

DEFAULT_TIMEOUT_MINUTES = 24 * 60
DEFAULT_MAX_STEPS = 50
# Keys of `Chatbot.settings` (the rest of the settings are columns).
_EXTRA_SETTINGS = ("session_timeout_minutes", "expiry_message", "max_steps", "resume_keyword",
                   "timezone")  # fmt: skip


# --- chatbots ------------------------------------------------------------------------------


def settings_view(bot: Chatbot) -> ChatbotSettingsOut:
    extra = bot.settings or {}
    return ChatbotSettingsOut(
        welcome_message=bot.welcome_message,
        fallback_message=bot.fallback_message,
        handoff_enabled=bot.handoff_enabled,
        session_timeout_minutes=int(
            extra.get("session_timeout_minutes") or DEFAULT_TIMEOUT_MINUTES
        ),
        expiry_message=extra.get("expiry_message"),
        max_steps=int(extra.get("max_steps") or DEFAULT_MAX_STEPS),
        resume_keyword=extra.get("resume_keyword"),
        timezone=str(extra.get("timezone") or "UTC"),
    )


def _apply_settings(bot: Chatbot, given: ChatbotSettingsIn | None) -> None:
    if given is None:
        return
    changes = given.model_dump(exclude_unset=True)
    for name in ("welcome_message", "fallback_message", "handoff_enabled"):
        if name in changes and (changes[name] is not None or name != "handoff_enabled"):
            setattr(bot, name, changes[name])
    extra = dict(bot.settings or {})
    for name in _EXTRA_SETTINGS:
        if name in changes:
            extra[name] = changes[name]
    if extra.get("timezone"):
        _check_timezone(str(extra["timezone"]))
    bot.settings = extra


def _check_timezone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed.on("settings.timezone", f"Unknown time zone {name!r}") from exc


async def create_chatbot(
    session: AsyncSession, principal: Principal, data: ChatbotCreateIn
) -> Chatbot:
    bot = Chatbot(
        organization_id=principal.organization_id,
        name=data.name,
        description=data.description,
        is_active=data.is_active,
        welcome_message=data.welcome_message,
        fallback_message=data.fallback_message,
        handoff_enabled=data.handoff_enabled,
        settings={},
    )
    _apply_settings(bot, data.settings)
    session.add(bot)
    await session.flush()
    return bot


async def get_chatbot(session: AsyncSession, principal: Principal, bot_id: uuid.UUID) -> Chatbot:
    return await get_scoped(session, Chatbot, bot_id, principal, what="Chatbot")


async def _statistics(
    session: AsyncSession, bot_ids: list[uuid.UUID]
) -> dict[uuid.UUID, ChatbotStatistics]:
    rows = await session.execute(
        select(
            ChatbotSession.chatbot_id,
            func.count(func.distinct(ChatbotSession.conversation_id)),
            func.coalesce(func.sum(ChatbotSession.messages_in + ChatbotSession.messages_out), 0),
        )
        .where(ChatbotSession.chatbot_id.in_(bot_ids))
        .group_by(ChatbotSession.chatbot_id)
    )
    stats = {
        bot_id: ChatbotStatistics(total_conversations=0, total_messages=0) for bot_id in bot_ids
    }
    for bot_id, conversations, messages in rows:
        stats[bot_id] = ChatbotStatistics(
            total_conversations=int(conversations), total_messages=int(messages)
        )
    return stats


async def _published(session: AsyncSession, bot_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    rows = await session.scalars(
        select(ChatbotFlow.chatbot_id)
        .where(ChatbotFlow.chatbot_id.in_(bot_ids), ChatbotFlow.published_version.is_not(None))
        .distinct()
    )
    return set(rows)


def _bot_view(
    bot: Chatbot, stats: dict[uuid.UUID, ChatbotStatistics], published: set[uuid.UUID]
) -> ChatbotOut:
    return ChatbotOut(
        id=bot.id,
        name=bot.name,
        description=bot.description,
        is_active=bot.is_active,
        is_published=bot.id in published,
        statistics=stats[bot.id],
        created_at=bot.created_at,
        updated_at=bot.updated_at,
    )


async def list_chatbots(session: AsyncSession, principal: Principal) -> list[ChatbotOut]:
    bots = list(
        await session.scalars(
            scoped(select(Chatbot), Chatbot, principal).order_by(Chatbot.created_at, Chatbot.id)
        )
    )
    ids = [b.id for b in bots]
    stats, published = await _statistics(session, ids), await _published(session, ids)
    return [_bot_view(b, stats, published) for b in bots]


async def chatbot_detail(
    session: AsyncSession, principal: Principal, bot_id: uuid.UUID
) -> ChatbotDetailOut:
    bot = await get_chatbot(session, principal, bot_id)
    stats, published = await _statistics(session, [bot.id]), await _published(session, [bot.id])
    flows = await session.scalars(
        select(ChatbotFlow)
        .where(ChatbotFlow.chatbot_id == bot.id)
        .order_by(ChatbotFlow.created_at, ChatbotFlow.id)
    )
    return ChatbotDetailOut(
        **_bot_view(bot, stats, published).model_dump(),
        flows=[
            FlowSummary(
                id=f.id,
                name=f.name,
                type=f.type,
                is_active=f.is_active,
                version=f.published_version,
                nodes=list(f.definition.get("nodes") or []),
            )
            for f in flows
        ],
        settings=settings_view(bot),
    )


async def update_chatbot(
    session: AsyncSession, principal: Principal, bot_id: uuid.UUID, data: ChatbotUpdateIn
) -> Chatbot:
    bot = await get_chatbot(session, principal, bot_id)
    changes = data.model_dump(exclude_unset=True, exclude={"settings"})
    if changes.get("name") is None:
        changes.pop("name", None)
    for name in ("is_active", "handoff_enabled"):
        if name in changes and changes[name] is None:
            raise ValidationFailed.on(name, "must be true or false")
    for name, value in changes.items():
        setattr(bot, name, value)
    _apply_settings(bot, data.settings)
    bot.updated_at = utcnow()
    await session.flush()
    return bot


async def delete_chatbot(session: AsyncSession, principal: Principal, bot_id: uuid.UUID) -> None:
    bot = await get_chatbot(session, principal, bot_id)
    await session.delete(bot)
    await session.flush()


async def default_chatbot(session: AsyncSession, organization_id: uuid.UUID) -> Chatbot:
    """The chatbot `/api/v1/flows` belong to, created on first use."""
    bot = await session.scalar(
        select(Chatbot)
        .where(Chatbot.organization_id == organization_id, Chatbot.is_default.is_(True))
        .order_by(Chatbot.created_at)
        .limit(1)
    )
    if bot is None:
        bot = Chatbot(
            organization_id=organization_id,
            name="Default chatbot",
            description="Runs the flows created through /api/v1/flows",
            is_active=True,
            handoff_enabled=True,
            settings={},
            is_default=True,
        )
        session.add(bot)
        await session.flush()
    return bot


# --- flows ---------------------------------------------------------------------------------


def _raise_problems(report: Report, prefix: str = "") -> None:
    if report.errors:
        raise ValidationFailed(
            "The flow is not valid",
            details=[FieldError(prefix + p.field, p.message) for p in report.errors],
        )


async def _refuse_unsendable_templates(
    session: AsyncSession, organization_id: uuid.UUID, definition: dict[str, Any]
) -> None:
    """A flow is not published with a node naming a template PyTake knows is not APPROVED
    (pending, rejected, paused, disabled): 422 `template_not_approved` naming each node and the
    template's status. A template PyTake does not know, or one named through variables, is
    left to run time, where a template that cannot be sent hands the conversation to people."""
    refused: list[FieldError] = []
    for node in definition.get("nodes") or []:
        ref = node.get("template") if isinstance(node, dict) else None
        if not isinstance(ref, dict):
            continue
        language = ref.get("language")
        code = language.get("code") if isinstance(language, dict) else language
        name = ref.get("name")
        if not isinstance(name, str) or not isinstance(code, str) or "{{" in name + code:
            continue
        known = await find_template(session, organization_id, name, code)
        why = not_approved(known) if known is not None else None
        if why is not None:
            node_id = node.get("id")
            refused.append(FieldError(f"nodes.{node_id}.template", f"Node '{node_id}': {why}"))
    if refused:
        raise TemplateNotApproved("The flow sends templates that are not APPROVED", details=refused)


def _warnings(report: Report) -> list[FlowWarning]:
    return [FlowWarning(node=p.node, field=p.field, message=p.message) for p in report.warnings]


async def _flow_ids(session: AsyncSession, bot_id: uuid.UUID) -> set[str]:
    return {str(i) for i in await session.scalars(select(ChatbotFlow.id).where(
        ChatbotFlow.chatbot_id == bot_id))}  # fmt: skip


def flow_view(flow: ChatbotFlow, warnings: list[FlowWarning] | None = None) -> FlowOut:
    definition = dict(flow.definition or {})
    extra = {
        k: v
        for k, v in definition.items()
        if k not in FlowOut.model_fields and k not in ("name", "type", "description")
    }
    published = flow.published_at
    return FlowOut(
        **extra,
        id=flow.id,
        chatbot_id=flow.chatbot_id,
        name=flow.name,
        type=flow.type,
        description=flow.description,
        trigger=definition.get("trigger"),
        entry=definition.get("entry"),
        nodes=list(definition.get("nodes") or []),
        is_active=flow.is_active,
        version=flow.published_version,
        published_at=published,
        has_unpublished_changes=published is None or flow.updated_at > published,
        warnings=warnings or [],
        created_at=flow.created_at,
        updated_at=flow.updated_at,
    )


def _definition(data: FlowIn) -> dict[str, Any]:
    definition = data.model_dump(exclude={"is_active"})
    definition.pop("is_active", None)
    return definition


async def create_flow(
    session: AsyncSession, principal: Principal, bot_id: uuid.UUID, data: FlowIn
) -> FlowOut:
    bot = await get_chatbot(session, principal, bot_id)
    definition = _definition(data)
    report = validate_flow(definition, await _flow_ids(session, bot.id))
    _raise_problems(report)
    flow = ChatbotFlow(
        organization_id=bot.organization_id,
        chatbot_id=bot.id,
        name=data.name,
        type=data.type,
        description=data.description,
        definition=definition,
        is_active=False,
    )
    session.add(flow)
    await session.flush()
    return flow_view(flow, _warnings(report))


async def get_flow(
    session: AsyncSession, principal: Principal, bot_id: uuid.UUID, flow_id: uuid.UUID
) -> ChatbotFlow:
    flow = await get_scoped(session, ChatbotFlow, flow_id, principal, what="Flow")
    if flow.chatbot_id != bot_id:
        raise NotFound("Flow not found")
    return flow


async def list_flows(
    session: AsyncSession, principal: Principal, bot_id: uuid.UUID
) -> list[FlowOut]:
    bot = await get_chatbot(session, principal, bot_id)
    flows = await session.scalars(
        select(ChatbotFlow)
        .where(ChatbotFlow.chatbot_id == bot.id)
        .order_by(ChatbotFlow.created_at, ChatbotFlow.id)
    )
    return [flow_view(f) for f in flows]


async def replace_flow(
    session: AsyncSession,
    principal: Principal,
    bot_id: uuid.UUID,
    flow_id: uuid.UUID,
    data: FlowIn,
) -> FlowOut:
    """Save a new draft (PUT); running sessions and the published version are untouched."""
    flow = await get_flow(session, principal, bot_id, flow_id)
    definition = _definition(data)
    report = validate_flow(definition, await _flow_ids(session, bot_id))
    _raise_problems(report)
    flow.name, flow.type, flow.description = data.name, data.type, data.description
    flow.definition = definition
    active = (data.model_extra or {}).get("is_active")
    if active is False:
        flow.is_active = False
    elif active is True:
        if flow.published_version is None:
            raise ValidationFailed.on("is_active", "Publish the flow to activate it")
        flow.is_active = True
    flow.updated_at = utcnow()
    await session.flush()
    return flow_view(flow, _warnings(report))


async def delete_flow(
    session: AsyncSession, principal: Principal, bot_id: uuid.UUID, flow_id: uuid.UUID
) -> None:
    flow = await get_flow(session, principal, bot_id, flow_id)
    await session.delete(flow)
    await session.flush()


async def publish_flow(
    session: AsyncSession, principal: Principal, bot_id: uuid.UUID, flow_id: uuid.UUID
) -> FlowVersionOut:
    """Freeze the draft as the next version; new sessions start on it, running ones keep
    theirs."""
    flow = await get_scoped(session, ChatbotFlow, flow_id, principal, what="Flow", for_update=True)
    if flow.chatbot_id != bot_id:
        raise NotFound("Flow not found")
    report = validate_flow(flow.definition, await _flow_ids(session, bot_id))
    _raise_problems(report)
    await _refuse_unsendable_templates(session, flow.organization_id, flow.definition)
    latest = await session.scalar(
        select(func.max(ChatbotFlowVersion.version)).where(ChatbotFlowVersion.flow_id == flow.id)
    )
    now = utcnow()
    version = ChatbotFlowVersion(
        organization_id=flow.organization_id,
        flow_id=flow.id,
        version=(latest or 0) + 1,
        definition=dict(flow.definition),
        published_by_id=principal.user_id,
        created_at=now,
    )
    session.add(version)
    await session.execute(
        update(ChatbotFlow)
        .where(ChatbotFlow.id == flow.id)
        .values(is_active=True, published_version=version.version, published_at=now,
                updated_at=now)
    )  # fmt: skip
    await session.flush()
    return version_view(version)


def version_view(version: ChatbotFlowVersion) -> FlowVersionOut:
    definition = version.definition or {}
    return FlowVersionOut(
        flow_id=version.flow_id,
        version=version.version,
        published_at=version.created_at,
        published_by=version.published_by_id,
        trigger=definition.get("trigger"),
        entry=definition.get("entry"),
        nodes=list(definition.get("nodes") or []),
    )


async def list_versions(
    session: AsyncSession, principal: Principal, bot_id: uuid.UUID, flow_id: uuid.UUID
) -> list[FlowVersionOut]:
    flow = await get_flow(session, principal, bot_id, flow_id)
    versions = await session.scalars(
        select(ChatbotFlowVersion)
        .where(ChatbotFlowVersion.flow_id == flow.id)
        .order_by(ChatbotFlowVersion.version.desc())
    )
    return [version_view(v) for v in versions]


async def flow_stats(
    session: AsyncSession,
    principal: Principal,
    bot_id: uuid.UUID,
    flow_id: uuid.UUID,
    version: int | None,
) -> FlowStatsOut:
    """Per node of each published version: sessions that entered, completed and dropped."""
    flow = await get_flow(session, principal, bot_id, flow_id)
    stmt = select(ChatbotNodeStat).where(ChatbotNodeStat.flow_id == flow.id)
    versions_stmt = select(ChatbotFlowVersion).where(ChatbotFlowVersion.flow_id == flow.id)
    if version is not None:
        stmt = stmt.where(ChatbotNodeStat.version == version)
        versions_stmt = versions_stmt.where(ChatbotFlowVersion.version == version)
    counters: dict[tuple[int, str], ChatbotNodeStat] = {
        (s.version, s.node): s for s in await session.scalars(stmt)
    }
    out: list[VersionStatsOut] = []
    for v in await session.scalars(versions_stmt.order_by(ChatbotFlowVersion.version.desc())):
        nodes = []
        for node in v.definition.get("nodes") or []:
            stat = counters.get((v.version, str(node.get("id"))))
            nodes.append(
                NodeStatOut(
                    node=str(node.get("id")),
                    type=node.get("type"),
                    entered=stat.entered if stat else 0,
                    completed=stat.completed if stat else 0,
                    dropped=stat.dropped if stat else 0,
                )
            )
        out.append(VersionStatsOut(version=v.version, nodes=nodes))
    return FlowStatsOut(flow_id=flow.id, versions=out)


# --- /api/v1/flows -------------------------------------------------------------------------


def legacy_view(flow: ChatbotFlow) -> LegacyFlowOut:
    trigger = (flow.definition or {}).get("trigger") or {}
    return LegacyFlowOut(
        id=flow.id,
        name=flow.name,
        description=flow.description,
        category=flow.category,
        is_active=flow.is_active,
        trigger=trigger.get("type"),
        created_at=flow.created_at,
        updated_at=flow.updated_at,
    )


async def legacy_create_flow(
    session: AsyncSession, principal: Principal, data: LegacyFlowIn
) -> ChatbotFlow:
    """Convert the step list into the flow graph, save it in the default chatbot, and
    publish it when `is_active`."""
    try:
        trigger = legacy_trigger(data.trigger, data.trigger_value)
        graph = convert_steps(data.steps)
    except LegacyFlowError as exc:
        raise ValidationFailed(
            "The flow is not valid",
            details=[FieldError(p.field, p.message) for p in exc.problems],
        ) from exc
    bot = await default_chatbot(session, principal.organization_id)
    definition = {"name": data.name, "type": "main", "description": data.description,
                  "trigger": trigger, **graph}  # fmt: skip
    _raise_problems(validate_flow(definition, None), prefix="steps: ")
    flow = ChatbotFlow(
        organization_id=bot.organization_id,
        chatbot_id=bot.id,
        name=data.name,
        type="main",
        description=data.description,
        category=data.category,
        definition=definition,
        legacy_source=data.model_dump(mode="json"),
        is_active=False,
    )
    session.add(flow)
    await session.flush()
    if data.is_active:
        await publish_flow(session, principal, bot.id, flow.id)
        await session.refresh(flow)
    return flow


async def legacy_list_flows(
    session: AsyncSession, principal: Principal, active: bool | None, category: str | None
) -> list[LegacyFlowOut]:
    stmt = scoped(select(ChatbotFlow), ChatbotFlow, principal)
    if active is not None:
        stmt = stmt.where(ChatbotFlow.is_active.is_(active))
    if category is not None:
        stmt = stmt.where(ChatbotFlow.category == category)
    flows = await session.scalars(stmt.order_by(ChatbotFlow.created_at, ChatbotFlow.id))
    return [legacy_view(f) for f in flows]


# --- starting a flow by the API (`manual` trigger) ----------------------------------------


async def start_flow(
    session: AsyncSession, principal: Principal, conversation_id: uuid.UUID, flow_id: uuid.UUID
) -> StartFlowOut:
    """Run a flow in a conversation now, from its entry (a running session is replaced)."""
    from pytake.chatbot.engine import Start
    from pytake.chatbot.runtime import Step
    from pytake.events import wake_after_commit

    conversation = await get_scoped(
        session, Conversation, conversation_id, principal, what="Conversation"
    )
    flow = await session.scalar(
        scoped(select(ChatbotFlow), ChatbotFlow, principal).where(ChatbotFlow.id == flow_id)
    )
    if flow is None:
        raise ValidationFailed.on("flow_id", "No such flow in your organisation")
    if not flow.is_active or flow.published_version is None:
        raise ValidationFailed.on("flow_id", "The flow is not published and active")
    bot = await session.get(Chatbot, flow.chatbot_id)
    if bot is None or not bot.is_active:
        raise ValidationFailed.on("flow_id", "The flow's chatbot is not active")
    conversation.is_bot_active = True
    await session.flush()
    step = Step(session, conversation.id, utcnow())
    step.only_bot = bot.id
    result = await step.run(Start(str(flow.id)))
    row = await session.scalar(
        select(ChatbotSession)
        .where(ChatbotSession.conversation_id == conversation.id)
        .order_by(ChatbotSession.created_at.desc())
        .limit(1)
    )
    if row is None:
        raise ValidationFailed.on("flow_id", "The flow could not start")
    if result.http is not None:
        # The worker makes HTTP calls, not the request: due now, it is made at once.
        row.wake_at = utcnow()
        wake_after_commit(session, "chatbots")
    return StartFlowOut(
        conversation_id=conversation.id,
        flow_id=row.flow_id,
        version=row.version,
        session_id=row.id,
        status=row.status,
        node=row.node,
    )
