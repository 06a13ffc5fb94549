"""Bot steps: for a batch of conversations in one transaction (the consumer's way), or for one
conversation with an event (a manual start, an HTTP answer). A step takes the conversation's
next piece of work (a due timer, else its oldest inbound message), runs the interpreter, and
saves the session together with what it caused (queued replies, handoff, contact changes,
counters) while deleting the inbox row it answered.

Exactly once: the inbox row is deleted in the transaction that saves the answer, so a crash
before the commit leaves both undone and the message is answered later; after the commit
the row is gone. In order: the transaction holds the conversation's lock (see
pytake.chatbot.loading) and a conversation's steps only ever take its oldest row, one after
the other, so no two workers run one conversation at once and a later message never
overtakes an earlier one — within a batch too, where one conversation may take several steps.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.chatbot.actions import change_contact, hand_off
from pytake.chatbot.bots import BotRow, BotsCache, answering_bots, flow_version
from pytake.chatbot.engine import (
    DEFERRED,
    RESTARTED,
    Bot,
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
from pytake.chatbot.loading import (
    INBOX,
    ContactRow,
    ConversationRow,
    InboxItem,
    Loaded,
    SessionRow,
    load,
    lock_conversation,
    lock_conversations,
)
from pytake.chatbot.writes import Writes
from pytake.contact.tags import tag_names_of
from pytake.errors import PyTakeError
from pytake.models import Contact, Conversation
from pytake.models.base import utcnow
from pytake.template.service import check_send_parameters, sendable_template, template_message

log = logging.getLogger(__name__)


@dataclass
class StepResult:
    """What a step did: whether there was work, and an HTTP call to make after commit."""

    worked: bool
    http: dict[str, Any] | None = None
    session_id: uuid.UUID | None = None


def state_of(row: SessionRow) -> SessionState:
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


def _save_state(row: SessionRow, state: SessionState, now: datetime) -> None:
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


def _reads_tags(bots: list[tuple[BotRow, Bot]], pinned: FlowVersion | None) -> bool:
    versions = [v for _, view in bots for v in view.flows.values()]
    return any(v.reads_tags for v in [*versions, *([pinned] if pinned else [])])


def window_open(conversation: ConversationRow, provider: str | None, now: datetime) -> bool:
    """Free-form messages are allowed within 24 h of the customer's last message (Cloud API;
    an Evolution gateway has no such window)."""
    if provider == "evolution":
        return True
    expires = conversation.window_expires_at
    return expires is not None and expires > now


async def contact_view(
    session: AsyncSession, contact: ContactRow, *, with_tags: bool = True
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
    """A conversation's steps inside the caller's transaction: alone (`run`), or as one of
    the conversations of a batch (`take`, from what the batch read and into its writes)."""

    def __init__(
        self,
        session: AsyncSession,
        conversation_id: uuid.UUID,
        now: datetime,
        bots: BotsCache | None = None,
        *,
        loaded: Loaded | None = None,
        writes: Writes | None = None,
    ) -> None:
        self.session = session
        self.bots: BotsCache = {} if bots is None else bots
        self.conversation_id = conversation_id
        self.now = now
        self.loaded = loaded or Loaded()
        self.writes = writes or Writes()
        self.inbox: InboxItem | None = None
        self.only_bot: uuid.UUID | None = None
        self._expected: tuple[uuid.UUID, dict[str, Any]] | None = None

    def expect(self, session_id: uuid.UUID, request: dict[str, Any]) -> None:
        """Run the event only if this session still waits on this HTTP call."""
        self._expected = (session_id, request)

    async def run(self, event: Event | None = None) -> StepResult:
        """One step alone: lock the conversation, read, run its next work (or `event`: a
        manual start, an HTTP answer), write."""
        s = self.session
        if not await lock_conversation(s, self.conversation_id, wait=event is not None):
            return StepResult(False)
        self.loaded = (await load(s, [self.conversation_id], per_conversation=1))[
            self.conversation_id
        ]
        result = await self.take(event)
        await self.writes.flush(s)
        return result

    async def take(self, event: Event | None = None) -> StepResult:
        """The conversation's next step from what is loaded (locked by the caller)."""
        # The clock is read under the lock (on SQLite a step may have waited for it), and it
        # moves on between one conversation's steps: the replies' times follow their order.
        self.now = max(utcnow(), self.now + timedelta(microseconds=1))
        loaded, live = self.loaded, self.loaded.live
        if self._expected is not None and (
            live is None
            or live.id != self._expected[0]
            or live.waiting != "http"
            or live.pending_http != self._expected[1]
        ):
            return StepResult(False)  # answered already (a lease ran out), or moved on
        if event is None:
            event = self._next_work(live)
            if event is None:
                return StepResult(False)
        conversation, contact = loaded.conversation, loaded.contact
        if conversation is None or contact is None:
            self._consume()
            return StepResult(True)
        if isinstance(event, Inbound) and not await self._bot_may_answer(
            conversation, contact, event, loaded.named
        ):
            if live is not None:
                self._end(live, "bot_paused")
                loaded.live = None
            self._consume()
            return StepResult(True)
        return await self._interpret(conversation, contact, live, event)

    def _next_work(self, live: SessionRow | None) -> Event | None:
        if live is not None and live.wake_at is not None and live.wake_at <= self.now:
            return Wake()
        waiting = self.loaded.inbox
        if not waiting or waiting[0].due_at > self.now:
            return None
        self.inbox = item = waiting[0]
        return inbound_event(item.kind, item.content, item.new_conversation)

    def _consume(self) -> None:
        if self.inbox is not None:
            self.writes.consume(self.inbox.id)
            self.loaded.inbox.remove(self.inbox)
            self.inbox = None

    async def _bot_may_answer(
        self, conversation: ConversationRow, contact: ContactRow, event: Inbound, named: Any
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
                (await self._conversation_entity()).is_bot_active = True
                conversation.is_bot_active = True
                return True
        return False

    async def _interpret(
        self,
        conversation: ConversationRow,
        contact: ContactRow,
        live: SessionRow | None,
        event: Event,
    ) -> StepResult:
        s, loaded = self.session, self.loaded
        bots = await answering_bots(
            s, conversation, self.only_bot, named=loaded.named, cache=self.bots
        )
        by_id = {bot.id: (bot, view) for bot, view in bots}
        if live is not None and live.chatbot_id not in by_id:
            self._end(live, "chatbot_inactive")
            live = loaded.live = None
        pinned = await flow_version(s, live.flow_id, live.version) if live is not None else None
        timezone = str(((bots[0][0].settings or {}).get("timezone")) or "UTC") if bots else "UTC"
        ctx = Context(
            now=self.now,
            contact=await contact_view(s, contact, with_tags=_reads_tags(bots, pinned)),
            timezone=timezone,
            window_open=window_open(conversation, loaded.provider, self.now),
        )
        outcome, chosen = self._choose(bots, by_id, live, pinned, event, ctx)
        if outcome is None or chosen is None:
            self._consume()
            return StepResult(True)
        if outcome.note == DEFERRED and self.inbox is not None and live is not None:
            await self._put_off(self.inbox, live.wake_at or self.now)
            return StepResult(True)
        return await self._apply(conversation, contact, chosen, live, event, outcome)

    async def _put_off(self, item: InboxItem, until: datetime) -> None:
        """The message waits for the session's timer or HTTP call (the ones behind it wait
        behind it: the conversation's next work is this row again)."""
        await self.session.execute(update(INBOX).where(INBOX.c.id == item.id).values(due_at=until))
        item.due_at, self.inbox = until, None

    async def _release_put_off(self, conversation_id: uuid.UUID) -> None:
        """Messages put off during the delay or the call are due now, in their order."""
        now = self.now
        await self.session.execute(
            update(INBOX)
            .where(INBOX.c.conversation_id == conversation_id, INBOX.c.due_at > now)
            .values(due_at=now)
        )
        for item in self.loaded.inbox:
            item.due_at = min(item.due_at, now)

    def _choose(
        self,
        bots: list[tuple[BotRow, Bot]],
        by_id: dict[uuid.UUID, tuple[BotRow, Bot]],
        live: SessionRow | None,
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
        conversation: ConversationRow,
        contact: ContactRow,
        bot: BotRow,
        live: SessionRow | None,
        event: Event,
        outcome: Outcome,
    ) -> StepResult:
        s, now = self.session, self.now
        was_waiting = live is not None and live.waiting in ("timer", "http")
        row = await self._session_row(conversation, contact, bot, live, outcome)
        if was_waiting and (row is None or row.waiting not in ("timer", "http")):
            await self._release_put_off(conversation.id)
        replies, refused = await self._resolve_templates(conversation, contact, row, outcome)
        if row is not None:  # before the batch's flush: one write of the session
            row.messages_in += 1 if isinstance(event, Inbound) else 0
            row.messages_out += len(replies) if conversation.channel_id is not None else 0
        self.writes.queue_replies(conversation, contact, replies, now)
        for action in outcome.actions:
            if isinstance(action, UpdateContact):
                await self._change_contact(contact, action)
        handoffs = [a for a in outcome.actions if isinstance(a, Handoff)]
        if refused is not None:
            handoffs.append(refused)
            if row is not None and row.status == "active":
                self._end(row, refused.reason[:200])
                row.status = "handed_off"
        if handoffs:
            await hand_off(s, await self._conversation_entity(), handoffs[-1], now)
            conversation.is_bot_active = False
        self._consume()
        self.writes.count(
            conversation.organization_id, [a for a in outcome.actions if isinstance(a, Count)]
        )
        self.loaded.live = row if row is not None and row.status == "active" else None
        calls = [a for a in outcome.actions if isinstance(a, CallHttp)]
        if calls and row is not None and row.pending_http is not None:
            return StepResult(True, dict(row.pending_http), row.id)
        return StepResult(True)

    async def _resolve_templates(
        self,
        conversation: ConversationRow,
        contact: ContactRow,
        row: SessionRow | None,
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
        conversation: ConversationRow,
        contact: ContactRow,
        bot: BotRow,
        live: SessionRow | None,
        outcome: Outcome,
    ) -> SessionRow | None:
        """Save the session: the running one updated, or a new one (closing a replaced one;
        the batch writes the closed one first)."""
        state = outcome.state
        if live is not None:
            if state is not None and outcome.note != RESTARTED:
                _save_state(live, state, self.now)  # its flow may differ: a jump
                self.writes.save_session(live)
                return live
            if live.status == "active":
                self._end(live, "replaced")
        if state is None:
            return None
        now = self.now
        row = SessionRow(
            id=uuid.uuid4(), organization_id=conversation.organization_id, chatbot_id=bot.id,
            conversation_id=conversation.id, contact_id=contact.id,
            flow_id=uuid.UUID(state.flow_id), version=state.version, node=state.node,
            status="active", variables={}, attempts=0, steps=0, waiting=None, wake_at=None,
            pending_http=None, end_reason=None, ended_at=None, messages_in=0, messages_out=0,
            created_at=now, updated_at=now,
        )  # fmt: skip
        _save_state(row, state, now)
        self.writes.save_session(row, started=True)
        return row

    def _end(self, row: SessionRow, reason: str) -> None:
        _end(row, reason, self.now)
        self.writes.save_session(row)

    async def _conversation_entity(self) -> Conversation:
        """The conversation as an ORM entity, for the rarer changes made through other
        domains' code (a handoff records its event from it); once per transaction."""
        found = await self.session.get(Conversation, self.conversation_id)
        assert found is not None  # locked and read in this transaction
        return found

    async def _change_contact(self, contact: ContactRow, change: UpdateContact) -> None:
        """A contact change through the contact domain's code, on its ORM entity; the
        batch's plain row follows it (the conversation's later steps read it)."""
        entity = await self.session.get(Contact, contact.id)
        assert entity is not None
        await change_contact(self.session, entity, change)
        contact.name, contact.email, contact.opt_in = entity.name, entity.email, entity.opt_in
        contact.attributes = dict(entity.attributes or {})


async def template_send(
    session: AsyncSession,
    conversation: ConversationRow,
    contact: ContactRow,
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


def _end(row: SessionRow, reason: str, now: datetime) -> None:
    row.status, row.end_reason, row.ended_at = "ended", reason, now
    row.waiting, row.wake_at, row.pending_http = None, None, None
    row.updated_at = now


@dataclass
class BatchResult:
    """What a batch did: the steps taken, and the HTTP calls to make after its commit."""

    steps: int = 0
    calls: list[tuple[uuid.UUID, StepResult]] = field(default_factory=list)


async def run_batch(
    session: AsyncSession,
    conversation_ids: list[uuid.UUID],
    bots: BotsCache,
    *,
    per_conversation: int,
) -> BatchResult:
    """The due steps of many conversations in the caller's transaction: the ones it can lock
    (the others are another worker's now), read together, each conversation's steps in its
    order (at most `per_conversation` of its messages), written together."""
    locked = await lock_conversations(session, conversation_ids)
    loaded = await load(session, locked, per_conversation=per_conversation)
    writes, result = Writes(), BatchResult()
    for conversation_id in locked:
        step = Step(
            session, conversation_id, utcnow(), bots, loaded=loaded[conversation_id],
            writes=writes,
        )  # fmt: skip
        for _ in range(per_conversation + 1):  # its messages, and a timer due before them
            done = await step.take()
            if not done.worked:
                break
            result.steps += 1
            if done.http is not None:
                result.calls.append((conversation_id, done))
    await writes.flush(session)
    return result
