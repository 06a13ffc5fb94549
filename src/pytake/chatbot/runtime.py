"""One bot step for one conversation, in one transaction: lock the conversation, take its next
piece of work (a due timer, else its oldest inbound message), run the interpreter, and save
the session together with what it caused (queued replies, handoff, contact changes,
counters) while deleting the inbox row it answered.

Exactly once: the inbox row is deleted in the transaction that saves the answer, so a crash
before the commit leaves both undone and the message is answered later; after the commit
the row is gone. In order: the step holds the conversation's lock (a transaction-scoped
advisory lock on PostgreSQL, the database's single write lock on SQLite) and only ever takes
the conversation's oldest row, so no two workers run one conversation at once and a later
message never overtakes an earlier one.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.chatbot.actions import change_contact, count_nodes, hand_off, queue_replies
from pytake.chatbot.engine import (
    DEFERRED,
    RESTARTED,
    Bot,
    BotSettings,
    CallHttp,
    Context,
    Count,
    FlowVersion,
    Handoff,
    Inbound,
    Outcome,
    Reply,
    SendTemplate,
    SessionState,
    UpdateContact,
    Wake,
    handle,
)
from pytake.chatbot.engine.model import Event
from pytake.chatbot.engine.text import fold
from pytake.chatbot.service import DEFAULT_MAX_STEPS, DEFAULT_TIMEOUT_MINUTES
from pytake.contact.tags import tag_names_of
from pytake.errors import PyTakeError
from pytake.kit.sql import is_postgresql, statement
from pytake.models import (
    Chatbot,
    ChatbotFlow,
    ChatbotFlowVersion,
    ChatbotInbox,
    ChatbotSession,
    Contact,
    Conversation,
    Message,
    WhatsAppConfig,
)
from pytake.models.base import utcnow
from pytake.template.service import check_send_parameters, sendable_template, template_message

log = logging.getLogger(__name__)

# Published versions never change: kept per process once read.
_VERSIONS: OrderedDict[tuple[str, int], FlowVersion] = OrderedDict()
_VERSIONS_KEPT = 2_000


@dataclass
class StepResult:
    """What a step did: whether there was work, and an HTTP call to make after commit."""

    worked: bool
    http: dict[str, Any] | None = None
    session_id: uuid.UUID | None = None
    # Whether the conversation may have more work now (another inbox row behind this one):
    # without, the consumer moves on instead of opening a transaction to find nothing.
    more: bool = True


def lock_key(conversation_id: uuid.UUID) -> int:
    """A signed 64-bit advisory-lock key for a conversation."""
    digest = hashlib.blake2b(conversation_id.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")
_LOCK = text("SELECT pg_advisory_xact_lock(:key) IS NULL")


async def lock_conversation(
    session: AsyncSession, conversation_id: uuid.UUID, *, wait: bool = False
) -> bool:
    """Take the conversation for this transaction; False: another worker has it now (only
    without `wait`: an HTTP answer or a manual start waits its turn instead)."""
    if is_postgresql(session):
        got = await session.scalar(_LOCK if wait else _TRY_LOCK, {"key": lock_key(conversation_id)})
        return bool(got) or wait
    # SQLite: a write first takes the database's one write lock, so every read after it sees
    # the latest commit (a read-first transaction could not write after another commit).
    result = await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id)
        .values(updated_at=Conversation.updated_at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def active_session(
    session: AsyncSession, conversation_id: uuid.UUID
) -> ChatbotSession | None:
    return await session.scalar(
        select(ChatbotSession).where(
            ChatbotSession.conversation_id == conversation_id, ChatbotSession.status == "active"
        )
    )


def state_of(row: ChatbotSession) -> SessionState:
    return SessionState(
        flow_id=str(row.flow_id),
        version=row.version,
        node=row.node,
        variables=dict(row.variables or {}),
        attempts=row.attempts,
        waiting=row.waiting,  # type: ignore[arg-type]
        wake_at=row.wake_at,
        status=row.status,  # type: ignore[arg-type]
        end_reason=row.end_reason,
        steps=row.steps,
        pending_http=row.pending_http,
    )


def _save_state(row: ChatbotSession, state: SessionState, now: datetime) -> None:
    row.flow_id, row.version, row.node = uuid.UUID(state.flow_id), state.version, state.node
    row.variables, row.attempts, row.steps = dict(state.variables), state.attempts, state.steps
    row.waiting, row.wake_at, row.pending_http = state.waiting, state.wake_at, state.pending_http
    row.status, row.end_reason = state.status, state.end_reason
    if state.status != "active" and row.ended_at is None:
        row.ended_at = now
    row.updated_at = now


def inbound_event(
    kind: str | None, content: dict[str, Any] | None, new_conversation: bool
) -> Inbound:
    """What the interpreter reads of a customer's message (its type and content)."""
    if kind is None:
        return Inbound(new_conversation=new_conversation)
    content = content or {}
    if kind == "interactive":
        return Inbound(content.get("title"), content.get("reply_id"), kind, new_conversation)
    if kind == "button":
        return Inbound(content.get("text"), content.get("payload"), kind, new_conversation)
    body = content.get("text") if kind == "text" else content.get("caption")
    return Inbound(body if isinstance(body, str) else None, None, kind, new_conversation)


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
    return await session.scalar(
        select(WhatsAppConfig.chatbot_id).where(WhatsAppConfig.id == channel_id)
    )


async def answering_bots(
    session: AsyncSession,
    conversation: Conversation,
    only: uuid.UUID | None = None,
    *,
    named: uuid.UUID | Literal[False] | None = False,
    cache: BotsCache | None = None,
) -> list[tuple[BotRow, Bot]]:
    """The chatbots that answer on the conversation's number (the one its config names, else
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


def _inbox_statement() -> Any:
    """The conversation's two oldest inbox rows, with the first's message (the second only
    tells whether more waits)."""
    return (
        select(ChatbotInbox, Message.type, Message.content)
        .outerjoin(Message, Message.id == ChatbotInbox.message_id)
        .where(ChatbotInbox.conversation_id == bindparam("conversation"))
        .order_by(ChatbotInbox.id)
        .limit(2)
    )


def _conversation_statement() -> Any:
    """The conversation, its contact, and its number's provider and named chatbot."""
    return (
        select(Conversation, Contact, WhatsAppConfig.provider, WhatsAppConfig.chatbot_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .outerjoin(WhatsAppConfig, WhatsAppConfig.id == Conversation.channel_id)
        .where(Conversation.id == bindparam("conversation"))
    )


def _reads_tags(bots: list[tuple[BotRow, Bot]], pinned: FlowVersion | None) -> bool:
    versions = [v for _, view in bots for v in view.flows.values()]
    return any(v.reads_tags for v in [*versions, *([pinned] if pinned else [])])


def window_open(conversation: Conversation, provider: str | None, now: datetime) -> bool:
    """Free-form messages are allowed within 24 h of the customer's last message (Cloud API;
    an Evolution gateway has no such window)."""
    if provider == "evolution":
        return True
    expires = conversation.window_expires_at
    return expires is not None and expires > now


async def contact_view(
    session: AsyncSession, contact: Contact, *, with_tags: bool = True
) -> dict[str, Any]:
    """The contact as flows read it; its tags only when a flow reads them (a query)."""
    tags = (await tag_names_of(session, [contact.id]))[contact.id] if with_tags else []
    return {
        "id": str(contact.id),
        "name": contact.name or contact.profile_name,
        "profile_name": contact.profile_name,
        "email": contact.email,
        "whatsapp_id": contact.whatsapp_id,
        "phone": contact.whatsapp_id,
        "attributes": dict(contact.attributes or {}),
        "tags": tags,
        "opt_in": contact.opt_in,
    }


class Step:
    """One step for one conversation, inside the caller's transaction."""

    def __init__(
        self,
        session: AsyncSession,
        conversation_id: uuid.UUID,
        now: datetime,
        bots: BotsCache | None = None,
    ) -> None:
        self.session = session
        self.bots = bots
        self.conversation_id = conversation_id
        self.now = now
        self.inbox: ChatbotInbox | None = None
        self.more = True
        self.only_bot: uuid.UUID | None = None
        self._expected: tuple[uuid.UUID, dict[str, Any]] | None = None

    def expect(self, session_id: uuid.UUID, request: dict[str, Any]) -> None:
        """Run the event only if this session still waits on this HTTP call."""
        self._expected = (session_id, request)

    async def run(self, event: Event | None = None) -> StepResult:
        """Take the next work (or run `event`: a manual start, an HTTP answer)."""
        s = self.session
        if not await lock_conversation(s, self.conversation_id, wait=event is not None):
            return StepResult(False)
        # The clock is read under the lock: on SQLite a step may have waited for it, and the
        # replies' times must follow the order the steps actually ran in.
        self.now = utcnow()
        live = await active_session(s, self.conversation_id)
        if self._expected is not None and (
            live is None
            or live.id != self._expected[0]
            or live.waiting != "http"
            or live.pending_http != self._expected[1]
        ):
            return StepResult(False)  # answered already (a lease ran out), or moved on
        if event is None:
            event = await self._next_work(live)
            if event is None:
                return StepResult(False)
        found = (
            await s.execute(
                statement(s, "chatbot.conversation", _conversation_statement),
                {"conversation": self.conversation_id},
            )
        ).first()
        if found is None:
            await self._consume()
            return self._done()
        conversation, contact, provider, named = found
        if isinstance(event, Inbound) and not await self._bot_may_answer(
            conversation, contact, event, named
        ):
            if live is not None:
                _end(live, "bot_paused", self.now)
            await self._consume()
            return self._done()
        return await self._interpret(conversation, contact, live, event, provider, named)

    def _done(self, http: dict[str, Any] | None = None, session_id: uuid.UUID | None = None
              ) -> StepResult:  # fmt: skip
        return StepResult(True, http, session_id, self.more)

    async def _next_work(self, live: ChatbotSession | None) -> Event | None:
        if live is not None and live.wake_at is not None and live.wake_at <= self.now:
            return Wake()
        s = self.session
        rows = (
            await s.execute(
                statement(s, "chatbot.next_inbox", _inbox_statement),
                {"conversation": self.conversation_id},
            )
        ).all()
        if not rows or rows[0][0].due_at > self.now:
            return None
        self.inbox, kind, content = rows[0]
        self.more = len(rows) > 1
        return inbound_event(kind, content, self.inbox.new_conversation)

    async def _consume(self) -> None:
        if self.inbox is not None:
            await self.session.delete(self.inbox)

    async def _bot_may_answer(
        self, conversation: Conversation, contact: Contact, event: Inbound, named: Any
    ) -> bool:
        """Not while people have the conversation (unless the customer sends the resume
        keyword), nor to a blocked contact."""
        if contact.is_blocked or contact.deleted_at is not None:
            return False
        if conversation.is_bot_active:
            return True
        for bot, _ in await answering_bots(
            self.session, conversation, named=named, cache=self.bots
        ):
            keyword = (bot.settings or {}).get("resume_keyword")
            if keyword and event.text and fold(event.text) == fold(keyword):
                conversation.is_bot_active = True
                return True
        return False

    async def _interpret(
        self,
        conversation: Conversation,
        contact: Contact,
        live: ChatbotSession | None,
        event: Event,
        provider: str | None,
        named: uuid.UUID | None,
    ) -> StepResult:
        s = self.session
        bots = await answering_bots(s, conversation, self.only_bot, named=named, cache=self.bots)
        by_id = {bot.id: (bot, view) for bot, view in bots}
        if live is not None and live.chatbot_id not in by_id:
            _end(live, "chatbot_inactive", self.now)
            live = None
        pinned = await flow_version(s, live.flow_id, live.version) if live is not None else None
        timezone = str(((bots[0][0].settings or {}).get("timezone")) or "UTC") if bots else "UTC"
        ctx = Context(
            now=self.now,
            contact=await contact_view(s, contact, with_tags=_reads_tags(bots, pinned)),
            timezone=timezone,
            window_open=window_open(conversation, provider, self.now),
        )
        outcome, chosen = self._choose(bots, by_id, live, pinned, event, ctx)
        if outcome is None or chosen is None:
            await self._consume()
            return self._done()
        if outcome.note == DEFERRED and self.inbox is not None and live is not None:
            self.inbox.due_at = live.wake_at or self.now
            return self._done()
        return await self._apply(conversation, contact, chosen, live, event, outcome)

    def _choose(
        self,
        bots: list[tuple[BotRow, Bot]],
        by_id: dict[uuid.UUID, tuple[BotRow, Bot]],
        live: ChatbotSession | None,
        pinned: FlowVersion | None,
        event: Event,
        ctx: Context,
    ) -> tuple[Outcome | None, BotRow | None]:
        if live is not None:
            bot, view = by_id[live.chatbot_id]
            return handle(view, pinned, state_of(live), event, ctx), bot
        first: tuple[Outcome, BotRow] | None = None
        for bot, view in bots:
            outcome = handle(view, None, None, event, ctx)
            if outcome.state is not None:
                return outcome, bot
            first = first or (outcome, bot)
        return first if first else (None, None)

    async def _apply(
        self,
        conversation: Conversation,
        contact: Contact,
        bot: BotRow,
        live: ChatbotSession | None,
        event: Event,
        outcome: Outcome,
    ) -> StepResult:
        s, now = self.session, self.now
        was_waiting = live is not None and live.waiting in ("timer", "http")
        row = await self._session_row(conversation, contact, bot, live, outcome)
        if was_waiting and (row is None or row.waiting not in ("timer", "http")):
            # Messages put off during the delay or the call are due now, in their order.
            await s.execute(
                update(ChatbotInbox)
                .where(ChatbotInbox.conversation_id == conversation.id, ChatbotInbox.due_at > now)
                .values(due_at=now)
            )
        replies, refused = await self._resolve_templates(conversation, contact, row, outcome)
        if row is not None:  # before the statements below flush it: one write of the session
            row.messages_in += 1 if isinstance(event, Inbound) else 0
            row.messages_out += len(replies) if conversation.channel_id is not None else 0
        await queue_replies(s, conversation, contact, replies, now)
        for action in outcome.actions:
            if isinstance(action, UpdateContact):
                await change_contact(s, contact, action)
        handoffs = [a for a in outcome.actions if isinstance(a, Handoff)]
        if refused is not None:
            handoffs.append(refused)
            if row is not None and row.status == "active":
                _end(row, refused.reason[:200], now)
                row.status = "handed_off"
        if handoffs:
            await hand_off(s, conversation, handoffs[-1], now)
        await self._consume()
        await s.flush()
        # Last: every conversation in the flow writes these rows, so their lock is held only
        # until the commit that follows.
        await count_nodes(
            s, conversation.organization_id, [a for a in outcome.actions if isinstance(a, Count)]
        )
        calls = [a for a in outcome.actions if isinstance(a, CallHttp)]
        if calls and row is not None and row.pending_http is not None:
            return self._done(dict(row.pending_http), row.id)
        return self._done()

    async def _resolve_templates(
        self,
        conversation: Conversation,
        contact: Contact,
        row: ChatbotSession | None,
        outcome: Outcome,
    ) -> tuple[list[Reply | SendTemplate], Handoff | None]:
        """Template sends through the template service: the organisation's APPROVED template,
        its parameters from the session (or the node's own components, checked). One that
        cannot be sent stops the step there with a handoff (people can still answer)."""
        replies: list[Reply | SendTemplate] = []
        for action in outcome.actions:
            if isinstance(action, Reply):
                replies.append(action)
            elif isinstance(action, SendTemplate):
                variables = dict(row.variables or {}) if row is not None else {}
                try:
                    graph = await template_send(
                        self.session, conversation, contact, action.template, variables
                    )
                except PyTakeError as exc:
                    variables = dict(row.variables or {}) if row is not None else {}
                    reason = f"template_unavailable: {exc.message}"
                    return replies, Handoff(action.node, reason, variables=variables)
                replies.append(SendTemplate(action.node, graph))
        return replies, None

    async def _session_row(
        self,
        conversation: Conversation,
        contact: Contact,
        bot: BotRow,
        live: ChatbotSession | None,
        outcome: Outcome,
    ) -> ChatbotSession | None:
        """Save the session: the running one updated, or a new one (closing a replaced one)."""
        state = outcome.state
        if live is not None:
            if state is not None and outcome.note != RESTARTED:
                _save_state(live, state, self.now)  # its flow may differ: a jump
                return live
            if live.status == "active":
                _end(live, "replaced", self.now)
                await self.session.flush()
        if state is None:
            return None
        row = ChatbotSession(
            id=uuid.uuid4(),
            organization_id=conversation.organization_id,
            chatbot_id=bot.id,
            conversation_id=conversation.id,
            contact_id=contact.id,
            flow_id=uuid.UUID(state.flow_id),
            version=state.version,
            node=state.node,
            messages_in=0,
            messages_out=0,
            created_at=self.now,
        )
        _save_state(row, state, self.now)
        self.session.add(row)  # written with the step's next statement (autoflush)
        return row


async def template_send(
    session: AsyncSession,
    conversation: Conversation,
    contact: Contact,
    node_template: dict[str, Any],
    variables: dict[str, Any],
) -> dict[str, Any]:
    """The Graph `template` object for a template node (404 / 422 PyTakeError when the
    organisation has no such APPROVED template, or its parameters do not fit)."""
    language = node_template.get("language")
    code = language.get("code") if isinstance(language, dict) else language
    template = await sendable_template(
        session,
        conversation.organization_id,
        name=str(node_template.get("name") or ""),
        language=str(code or ""),
        channel_id=conversation.channel_id,
    )
    components = node_template.get("components")
    if components:
        check_send_parameters(template, components)
        return {"name": template.name, "language": {"code": template.language},
                "components": components}  # fmt: skip
    values: dict[str, Any] = {"name": contact.name or contact.profile_name or ""}
    values.update({k: v for k, v in variables.items() if isinstance(v, str | int | float)})
    values.update(node_template.get("variables") or {})
    return template_message(template, {k: str(v) for k, v in values.items()})


def _end(row: ChatbotSession, reason: str, now: datetime) -> None:
    row.status, row.end_reason, row.ended_at = "ended", reason, now
    row.waiting, row.wake_at, row.pending_http = None, None, None
    row.updated_at = now
