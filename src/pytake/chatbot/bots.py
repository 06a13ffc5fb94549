"""Which chatbots answer a conversation, with their published flows, as plain data a step (or
a batch of steps) reads: the answering bots once per organisation per consumer round, and
published flow versions once per process (they are frozen)."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.chatbot.engine import Bot, BotSettings, FlowVersion
from pytake.chatbot.loading import ConversationRow
from pytake.chatbot.service import DEFAULT_MAX_STEPS, DEFAULT_TIMEOUT_MINUTES
from pytake.kit.sql import statement
from pytake.models import (
    Channel,
    Chatbot,
    ChatbotFlow,
    ChatbotFlowVersion,
)

# Published versions never change: kept per process once read.
_VERSIONS: OrderedDict[tuple[str, int], FlowVersion] = OrderedDict()
_VERSIONS_KEPT = 2_000


@dataclass(frozen=True, slots=True)
class BotRow:
    """What a step needs of a chatbot row (plain data: it may outlive its transaction)."""

    id: uuid.UUID
    settings: dict[str, Any]
    welcome_message: str | None
    fallback_message: str | None
    handoff_enabled: bool


# Answering bots by (organisation, the one bot asked for): one consumer round's memory.
BotsCache = dict[tuple[uuid.UUID, uuid.UUID | None], list[tuple[BotRow, Bot]]]


def bot_settings(bot: BotRow) -> BotSettings:
    extra = bot.settings or {}
    return BotSettings(
        welcome_message=bot.welcome_message,
        fallback_message=bot.fallback_message,
        handoff_enabled=bot.handoff_enabled,
        session_timeout_seconds=int(extra.get("session_timeout_minutes") or DEFAULT_TIMEOUT_MINUTES)
        * 60,
        expiry_message=extra.get("expiry_message"),
        max_steps=int(extra.get("max_steps") or DEFAULT_MAX_STEPS),
    )


async def flow_version(
    session: AsyncSession, flow_id: uuid.UUID | str, version: int
) -> FlowVersion | None:
    key = (str(flow_id), version)
    found = _VERSIONS.get(key)
    if found is not None:
        return found
    definition = await session.scalar(
        select(ChatbotFlowVersion.definition).where(
            ChatbotFlowVersion.flow_id == uuid.UUID(str(flow_id)),
            ChatbotFlowVersion.version == version,
        )
    )
    if definition is None:
        return None
    found = FlowVersion.of(key[0], version, definition)
    _VERSIONS[key] = found
    while len(_VERSIONS) > _VERSIONS_KEPT:
        _VERSIONS.popitem(last=False)
    return found


def _bots_statement(one: bool) -> Any:
    """The organisation's active chatbots (or the one named), oldest first, each with its
    active published flows (one row per flow; a bot without one has a row of NULLs)."""
    stmt = (
        select(
            Chatbot.id,
            Chatbot.settings,
            Chatbot.welcome_message,
            Chatbot.fallback_message,
            Chatbot.handoff_enabled,
            ChatbotFlow.id,
            ChatbotFlow.published_version,
        )
        .outerjoin(
            ChatbotFlow,
            and_(
                ChatbotFlow.chatbot_id == Chatbot.id,
                ChatbotFlow.is_active.is_(True),
                ChatbotFlow.published_version.is_not(None),
            ),
        )
        .where(Chatbot.organization_id == bindparam("org"), Chatbot.is_active.is_(True))
        .order_by(Chatbot.created_at, Chatbot.id)
    )
    return stmt.where(Chatbot.id == bindparam("bot")) if one else stmt


async def named_chatbot(session: AsyncSession, channel_id: uuid.UUID | None) -> uuid.UUID | None:
    """The chatbot a WhatsApp number names to answer on it, if any."""
    if channel_id is None:
        return None
    return await session.scalar(select(Channel.chatbot_id).where(Channel.id == channel_id))


async def answering_bots(
    session: AsyncSession,
    conversation: ConversationRow,
    only: uuid.UUID | None = None,
    *,
    named: uuid.UUID | Literal[False] | None = False,
    cache: BotsCache | None = None,
) -> list[tuple[BotRow, Bot]]:
    """The chatbots that answer on the conversation's number (the one its channel names, else
    every active one of the organisation, oldest first), each with its active flows.
    `named`: the number's chatbot when the caller has read it already; `cache`: the answer
    for the same question earlier in this consumer round (changes to chatbots apply from
    the next round)."""
    if only is None:
        if named is False:
            named = await named_chatbot(session, conversation.channel_id)
        only = named or None
    key = (conversation.organization_id, only)
    if cache is not None and key in cache:
        return cache[key]
    stmt = statement(session, f"chatbot.bots.{only is not None}",
                     lambda: _bots_statement(only is not None))  # fmt: skip
    params: dict[str, Any] = {"org": conversation.organization_id}
    if only is not None:
        params["bot"] = only
    bots: dict[uuid.UUID, tuple[BotRow, dict[str, FlowVersion]]] = {}
    for *columns, flow_id, version in (await session.execute(stmt, params)).all():
        bot = BotRow(columns[0], dict(columns[1] or {}), *columns[2:])
        flows = bots.setdefault(bot.id, (bot, {}))[1]
        if flow_id is not None:
            found = await flow_version(session, flow_id, int(version or 0))
            if found is not None:
                flows[str(flow_id)] = found
    answer = [(bot, Bot(bot_settings(bot), flows)) for bot, flows in bots.values()]
    if cache is not None:
        cache[key] = answer
    return answer
