"""The consumer's guarantees: a delay is a durable timer (a restart in between still answers
on time), and any number of workers answer each inbound message exactly once, in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.chatbot.runtime import Step, StepResult
from pytake.chatbot.tasks import ChatbotConsumer
from pytake.config import Settings
from pytake.db import create_engine, create_session_factory, unit_of_work
from pytake.models import ChatbotInbox, ChatbotSession, Contact, Conversation, Message
from pytake.models.base import utcnow
from pytake.whatsapp.simulator import Simulator, SimulatorSettings
from tests.chatbot.support import new_customer, open_shop, own_database, world, world_settings


@pytest.fixture
async def the_sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorSettings.for_tests()) as simulator:
        yield simulator


@pytest.fixture(scope="module")
async def database(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """One database for the module: each test's apps (and loops) run one after another."""
    async with own_database(tmp_path_factory.mktemp("durable")) as url:
        yield url


REMINDER = {
    "name": "Reminder", "trigger": {"type": "keyword", "keywords": ["remind me"]}, "entry": "ok",
    "nodes": [
        {"id": "ok", "type": "message", "text": "I will remind you in 2 seconds", "next": "wait"},
        {"id": "wait", "type": "delay", "seconds": 2, "next": "ping"},
        {"id": "ping", "type": "end", "text": "Reminder!"},
    ],
}  # fmt: skip


def _consumer(factory: Any, url: str) -> ChatbotConsumer:
    """The consumer as a worker runs it, on this test's database (for `run_once` by hand)."""
    return ChatbotConsumer(factory, None, allow_private=True, postgres=url.startswith("postgresql"))


async def _answers(s: AsyncSession, customer: str) -> list[str]:
    """The texts the bot sent this customer, in order."""
    answers = await s.scalars(
        select(Message.content)
        .where(Message.direction == "outbound", Message.recipient == f"+{customer}")
        .order_by(Message.created_at, Message.id)
    )
    return [a["body"] for a in answers]


async def test_a_delay_survives_a_server_restart(
    the_sim: Simulator, make_settings: Callable[..., Settings], database: str
) -> None:
    url = database
    settings = world_settings(make_settings, url, the_sim)
    customer = new_customer()
    async with world(settings, the_sim) as first:
        shop = await open_shop(first)
        await shop.bot(REMINDER)
        await shop.says(customer, "Remind me")
        assert await shop.receives(customer, 1) == ["I will remind you in 2 seconds"]
    # The server is down when the delay ends; the one started later sends on its own.
    stopped = the_sim.state.clock()
    assert len(shop.received(customer)) == 1
    async with world(settings, the_sim) as second:
        started = the_sim.state.clock()
        shop.w = second
        got = await shop.receives(customer, 2, timeout=10)
    assert got == ["I will remind you in 2 seconds", "Reminder!"]
    [asked] = [m for m in the_sim.state.received if m.sender == customer]
    first_at, reminder_at = (m.created_at for m in the_sim.state.sent_messages(to=customer))
    assert reminder_at - asked.created_at >= 2.0  # never early
    assert reminder_at > stopped
    # and promptly once a worker is back (the machine may be busy: a generous bound)
    assert reminder_at - max(first_at + 2.0, started) < 5.0


PING = {
    "name": "Ping", "trigger": {"type": "keyword", "keywords": ["ping"], "match": "contains"},
    "entry": "pong", "nodes": [{"id": "pong", "type": "end", "text": "pong {{last_input}}"}],
}  # fmt: skip


async def test_two_workers_never_answer_one_message_twice(
    the_sim: Simulator, make_settings: Callable[..., Settings], database: str
) -> None:
    url = database
    # The app ingests but runs no loops: two separate consumers (each with its own engine,
    # as two `pytake worker` processes would have) share the work.
    settings = make_settings(
        database_url=url, meta_graph_url=the_sim.graph_url, run_background_loops=False
    )
    async with world(settings, the_sim) as w:
        shop = await open_shop(w)
        await shop.bot(PING)
        customers = [new_customer() for _ in range(12)]
        for round_ in range(3):
            await asyncio.gather(*(shop.says(c, f"ping {c}-{round_}") for c in customers))
        engines = [create_engine(url), create_engine(url)]
        workers = [
            ChatbotConsumer(
                create_session_factory(e), None, allow_private=True,
                postgres=e.dialect.name == "postgresql", batch=5, concurrency=4,
            )
            for e in engines
        ]  # fmt: skip
        try:
            factory = w.app.state.session_factory
            for _ in range(200):
                await asyncio.gather(*(worker.run_once() for worker in workers))
                async with factory() as s:
                    if not await s.scalar(select(func.count()).select_from(ChatbotInbox)):
                        break
            async with factory() as s:
                rows = (
                    await s.execute(
                        select(Message.recipient, Message.content)
                        .where(Message.direction == "outbound")
                        .order_by(Message.created_at, Message.id)
                    )
                ).all()
        finally:
            for e in engines:
                await e.dispose()
    for c in customers:
        answers = [content["body"] for to, content in rows if to.lstrip("+") == c]
        assert answers == [f"pong ping {c}-{r}" for r in range(3)]
    assert sum(w.steps for w in workers) == len(customers) * 3


async def test_a_failing_step_is_retried_later_not_in_a_hot_loop(
    the_sim: Simulator,
    make_settings: Callable[..., Settings],
    database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = database
    settings = make_settings(
        database_url=url, meta_graph_url=the_sim.graph_url, run_background_loops=False
    )
    async with world(settings, the_sim) as w:
        shop = await open_shop(w)
        await shop.bot(PING)
        customer = new_customer()
        await shop.says(customer, "ping 1")
        factory = w.app.state.session_factory
        consumer = _consumer(factory, url)

        async def broken(self: Step, event: object = None) -> StepResult:
            raise RuntimeError("a bug")

        with monkeypatch.context() as patch:
            patch.setattr(Step, "take", broken)
            assert await consumer.run_once() == 0
            due_in = await consumer.run_once()  # nothing due now: it waits
            assert due_in is not None and 20 < due_in <= 30
        async with unit_of_work(factory) as s:
            await s.execute(update(ChatbotInbox).values(due_at=utcnow()))
        assert await consumer.run_once() == 0
        async with factory() as s:
            answers = await s.scalars(
                select(Message.content).where(
                    Message.direction == "outbound", Message.recipient == "+" + customer
                )
            )
            assert [a["body"] for a in answers] == ["pong ping 1"]


LONG_DELAY = {
    "name": "Later", "trigger": {"type": "keyword", "keywords": ["later"]}, "entry": "ok",
    "nodes": [
        {"id": "ok", "type": "message", "text": "Back in a minute", "next": "wait"},
        {"id": "wait", "type": "delay", "seconds": 60, "next": "bye"},
        {"id": "bye", "type": "end", "text": "Here I am"},
    ],
}  # fmt: skip


async def test_messages_behind_a_deferred_one_do_not_make_the_worker_spin(
    the_sim: Simulator,
    make_settings: Callable[..., Settings],
    database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(
        database_url=database, meta_graph_url=the_sim.graph_url, run_background_loops=False
    )
    async with world(settings, the_sim) as w:
        shop = await open_shop(w)
        await shop.bot(LONG_DELAY)
        customer = new_customer()
        factory = w.app.state.session_factory
        consumer = _consumer(factory, database)
        await shop.says(customer, "later")
        assert await consumer.run_once() == 0
        # Three messages arrive during the delay: the oldest is put off until the timer, the
        # younger ones wait behind it.
        for text in ("hello?", "anyone?", "hi"):
            await shop.says(customer, text)
        runs = []
        real_take = Step.take

        async def counted(self: Step, event: object = None) -> StepResult:
            result = await real_take(self, event)  # type: ignore[arg-type]
            runs.append(result.worked)
            return result

        monkeypatch.setattr(Step, "take", counted)
        assert await consumer.run_once() == 0
        assert runs == [True, False]  # the oldest deferred; nothing else due
        for _ in range(3):
            due_in = await consumer.run_once()
            assert due_in is not None and 50 < due_in <= 60  # the timer, not "at once"
        assert runs == [True, False]
        async with factory() as s:
            due = list(await s.scalars(select(ChatbotInbox.due_at).order_by(ChatbotInbox.id)))
        now = utcnow()
        assert len(due) == 3 and due[0] > now and due[1] <= now  # only the oldest put off


async def waiting_for(session: AsyncSession, customers: list[str]) -> list[datetime]:
    """When the inbox rows of these customers' conversations are due."""
    return list(
        await session.scalars(
            select(ChatbotInbox.due_at)
            .join(Conversation, Conversation.id == ChatbotInbox.conversation_id)
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(Contact.whatsapp_id.in_([f"+{c}" for c in customers]))
        )
    )


SIGN_UP = {
    "name": "Sign up", "trigger": {"type": "keyword", "keywords": ["join"]}, "entry": "name",
    "nodes": [
        {"id": "name", "type": "question", "text": "Your name?", "variable": "name",
         "next": "email"},
        {"id": "email", "type": "question", "text": "Your e-mail, {{name}}?", "variable": "email",
         "input": {"type": "email"}, "retry_text": "Not an e-mail", "next": "bye"},
        {"id": "bye", "type": "end", "text": "Welcome {{name}} <{{email}}>"},
    ],
}  # fmt: skip


async def test_a_conversations_messages_in_one_batch_are_answered_in_order(
    the_sim: Simulator, make_settings: Callable[..., Settings], database: str
) -> None:
    settings = make_settings(
        database_url=database, meta_graph_url=the_sim.graph_url, run_background_loops=False
    )
    async with world(settings, the_sim) as w:
        shop = await open_shop(w)
        await shop.bot(SIGN_UP)
        customers = [new_customer() for _ in range(3)]
        for c in customers:  # everything waits before the consumer runs once
            for text in ("join", "Ana", "nope", f"{c}@example.com"):
                await shop.says(c, text)
        factory = w.app.state.session_factory
        consumer = _consumer(factory, database)
        assert await consumer.run_once() == 0
        assert consumer.steps == 12  # one round: every message, each conversation's in order
        async with factory() as s:
            assert await waiting_for(s, customers) == []
            rows = (
                await s.execute(
                    select(Message.recipient, Message.content, Message.next_attempt_at)
                    .where(Message.direction == "outbound")
                    .order_by(Message.created_at, Message.id)
                )
            ).all()
    for c in customers:
        mine = [(content["body"], at) for to, content, at in rows if to.lstrip("+") == c]
        assert [body for body, _ in mine] == [
            "Your name?", "Your e-mail, Ana?", "Not an e-mail",
            f"Welcome Ana <{c}@example.com>",
        ]  # fmt: skip
        times = [at for _, at in mine]
        assert times == sorted(times) and len(set(times)) == 4  # sent one after the other


async def test_one_failing_conversation_does_not_hold_up_the_others(
    the_sim: Simulator,
    make_settings: Callable[..., Settings],
    database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(
        database_url=database, meta_graph_url=the_sim.graph_url, run_background_loops=False
    )
    async with world(settings, the_sim) as w:
        shop = await open_shop(w)
        await shop.bot(PING)
        good, bad = [new_customer() for _ in range(3)], new_customer()
        for c in [*good[:2], bad, good[2]]:
            await shop.says(c, f"ping {c}")
        factory = w.app.state.session_factory
        consumer = _consumer(factory, database)
        real_take = Step.take

        async def broken_for_one(self: Step, event: object = None) -> StepResult:
            contact = self.loaded.contact
            if contact is not None and contact.whatsapp_id.lstrip("+") == bad:
                raise RuntimeError("a bug that only this conversation meets")
            return await real_take(self, event)  # type: ignore[arg-type]

        monkeypatch.setattr(Step, "take", broken_for_one)
        assert await consumer.run_once() == 0
        assert consumer.steps == 3
        everyone = [f"+{c}" for c in [*good, bad]]
        async with factory() as s:
            answered = list(
                await s.scalars(
                    select(Message.recipient).where(
                        Message.direction == "outbound", Message.recipient.in_(everyone)
                    )
                )
            )
            waiting = await waiting_for(s, [*good, bad])
        assert sorted(a.lstrip("+") for a in answered) == sorted(good)
        [due] = waiting  # the bad one's message, retried later (not lost, not answered)
        assert (due - utcnow()).total_seconds() > 20


async def test_in_one_batch_a_session_ends_and_the_next_one_starts(
    the_sim: Simulator, make_settings: Callable[..., Settings], database: str
) -> None:
    settings = make_settings(
        database_url=database, meta_graph_url=the_sim.graph_url, run_background_loops=False
    )
    async with world(settings, the_sim) as w:
        shop = await open_shop(w)
        await shop.bot(SIGN_UP)
        customer = new_customer()
        factory = w.app.state.session_factory
        consumer = _consumer(factory, database)
        await shop.says(customer, "join")
        assert await consumer.run_once() == 0  # a session runs, saved
        # One round: the running session ends (written as ended) and a new one starts
        # (inserted after it: one active session per conversation).
        for text in ("Ana", f"{customer}@example.com", "join", "Bia"):
            await shop.says(customer, text)
        assert await consumer.run_once() == 0
        assert consumer.steps == 5
        async with factory() as s:
            sessions = (
                await s.execute(
                    select(ChatbotSession.status, ChatbotSession.node, ChatbotSession.variables)
                    .join(Contact, Contact.id == ChatbotSession.contact_id)
                    .where(Contact.whatsapp_id == f"+{customer}")
                    .order_by(ChatbotSession.created_at)
                )
            ).all()
            bodies = await _answers(s, customer)
    assert bodies == [
        "Your name?", "Your e-mail, Ana?", f"Welcome Ana <{customer}@example.com>",
        "Your name?", "Your e-mail, Bia?",
    ]  # fmt: skip
    assert [(status, node) for status, node, _ in sessions] == [
        ("ended", "bye"), ("active", "email")
    ]  # fmt: skip
    assert sessions[0][2]["email"] == f"{customer}@example.com"
    assert sessions[1][2]["name"] == "Bia"


HELP = {
    "name": "Help", "trigger": {"type": "keyword", "keywords": ["help"]}, "entry": "ask",
    "nodes": [
        {"id": "ask", "type": "question", "text": "Your order number?", "variable": "order",
         "input": {"type": "number"}, "next": "agent"},
        {"id": "agent", "type": "handoff", "text": "An agent will take it from here."},
    ],
}  # fmt: skip


async def test_in_one_batch_a_handoff_pauses_the_bot_and_the_resume_keyword_wakes_it(
    the_sim: Simulator, make_settings: Callable[..., Settings], database: str
) -> None:
    settings = make_settings(
        database_url=database, meta_graph_url=the_sim.graph_url, run_background_loops=False
    )
    async with world(settings, the_sim) as w:
        shop = await open_shop(w)
        await shop.bot(HELP, fallback_message="Say help",
                       settings={"resume_keyword": "Back to bot"})  # fmt: skip
        customer = new_customer()
        for text in ("help", "1234", "hello?", "back to BOT", "help"):
            await shop.says(customer, text)
        factory = w.app.state.session_factory
        consumer = _consumer(factory, database)
        assert await consumer.run_once() == 0
        assert consumer.steps == 5  # one round
        async with factory() as s:
            bodies = await _answers(s, customer)
            conversation = await s.scalar(
                select(Conversation)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(Contact.whatsapp_id == f"+{customer}")
            )
    # "hello?" came while people had the conversation: no answer.
    assert bodies == ["Your order number?", "An agent will take it from here.", "Say help",
                      "Your order number?"]  # fmt: skip
    assert conversation is not None and conversation.is_bot_active
    assert conversation.bot_variables is not None and conversation.bot_variables["order"] == 1234
