"""The chatbots' durable consumer: a background loop on the worker runner.

Each round finds conversations with due work (inbox rows ingest wrote, sessions whose timer,
input wait or HTTP lease is due) and runs their steps in batches, many conversations per
transaction (pytake.chatbot.runtime.run_batch): a few statements read and write a whole
batch, where a transaction per step cost ten. Any number of workers may run it: a batch holds
its conversations' locks, and a worker that cannot take one leaves it to the one that has it.
A batch that fails is run again one conversation at a time, so one conversation's failure
(a bug, a bad row) puts off only that conversation. HTTP nodes are called after their step commits, never inside a
transaction; the answer is fed back in a step of its own, and a worker that died mid-call
leaves a lease that makes another worker call again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import orjson
from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.chatbot.bots import BotsCache
from pytake.chatbot.engine import HttpResponse
from pytake.chatbot.loading import INBOX, SESSIONS
from pytake.chatbot.runtime import Step, StepResult, run_batch
from pytake.db import unit_of_work
from pytake.kit.net_guard import BlockedAddress, check_target
from pytake.kit.sql import statement
from pytake.kit.ssrf import UnsafeUrl
from pytake.models import ChatbotInbox, ChatbotSession
from pytake.models.base import utcnow

log = logging.getLogger(__name__)

NAME = "chatbots"
MAX_RESPONSE_BYTES = 1_000_000
# Steps one conversation may take in one batch before others get their turn.
STEPS_PER_TURN = 20
# Conversations per transaction: the batch's statements are shared by this many, while its
# replies wait for its commit (the dispatcher sends them only then).
PER_TRANSACTION = 50
# A step that failed (a bug, a database error) is tried again after this.
RETRY_AFTER = timedelta(seconds=30)


class ChatbotConsumer:
    """The `chatbots` loop (runner protocol: `name`, `run_once`)."""

    name = NAME

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        http: aiohttp.ClientSession | None,
        *,
        allow_private: bool,
        postgres: bool,
        batch: int = 200,
        concurrency: int = 4,
        per_transaction: int = PER_TRANSACTION,
    ) -> None:
        self.factory = factory
        self.http = http
        self.allow_private = allow_private
        self.postgres = postgres
        self.batch = batch
        # Batches in flight at once (their round trips overlap); SQLite has one writer.
        self.concurrency = concurrency if postgres else 1
        self.per_transaction = per_transaction
        self.calls: set[asyncio.Task[None]] = set()
        self.steps = 0

    async def run_once(self) -> float | None:
        now = utcnow()
        async with self.factory() as session:
            due = await due_conversations(session, now, self.batch)
            if not due:
                return await next_due(session, now)
        limit = asyncio.Semaphore(self.concurrency)
        bots: BotsCache = {}  # read once per organisation this round
        size = self.per_transaction

        async def turn(conversation_ids: list[uuid.UUID]) -> None:
            async with limit:
                await self.work(conversation_ids, bots)

        await asyncio.gather(*(turn(due[i : i + size]) for i in range(0, len(due), size)))
        return 0

    async def work(self, conversation_ids: list[uuid.UUID], bots: BotsCache | None = None) -> None:
        """Run these conversations' due steps in one transaction, starting the HTTP calls
        they ask for after its commit; a failed batch is run again a conversation at a time."""
        try:
            async with unit_of_work(self.factory) as session:
                result = await run_batch(
                    session, conversation_ids, {} if bots is None else bots,
                    per_conversation=STEPS_PER_TURN,
                )  # fmt: skip
        except Exception:
            if len(conversation_ids) == 1:
                log.exception("chatbot step failed for conversation %s", conversation_ids[0])
                await self._postpone(conversation_ids[0])
                return
            log.warning("a batch of %d conversations failed; one at a time now",
                        len(conversation_ids), exc_info=True)  # fmt: skip
            for conversation_id in conversation_ids:
                await self.work([conversation_id], bots)
            return
        self.steps += result.steps
        for conversation_id, step in result.calls:
            self._call_later(conversation_id, step)

    def _call_later(self, conversation_id: uuid.UUID, result: StepResult) -> None:
        assert result.http is not None and result.session_id is not None
        task = asyncio.create_task(self._call(conversation_id, result.session_id, result.http))
        self.calls.add(task)
        task.add_done_callback(self.calls.discard)

    async def _call(
        self, conversation_id: uuid.UUID, session_id: uuid.UUID, request: dict[str, Any]
    ) -> None:
        response = await call_http(self.http, request, allow_private=self.allow_private)
        try:
            async with unit_of_work(self.factory) as session:
                step = Step(session, conversation_id, utcnow())
                step.expect(session_id, request)
                result = await step.run(response)
        except Exception:
            # The session keeps waiting; its lease runs out and the call is made again.
            log.exception("saving the HTTP answer for conversation %s failed", conversation_id)
            return
        if result.http is not None:
            self._call_later(conversation_id, result)
        await self.work([conversation_id])  # messages that waited for the answer

    async def _postpone(self, conversation_id: uuid.UUID) -> None:
        """Retry a failing conversation later instead of at once (its later messages wait:
        they must not overtake the one that failed)."""
        later = utcnow() + RETRY_AFTER
        try:
            async with unit_of_work(self.factory) as session:
                await session.execute(
                    update(ChatbotInbox)
                    .where(
                        ChatbotInbox.conversation_id == conversation_id,
                        ChatbotInbox.due_at < later,
                    )
                    .values(due_at=later)
                )
                await session.execute(
                    update(ChatbotSession)
                    .where(
                        ChatbotSession.conversation_id == conversation_id,
                        ChatbotSession.status == "active",
                        ChatbotSession.wake_at < later,
                    )
                    .values(wake_at=later)
                )
        except Exception:
            log.exception("postponing conversation %s failed", conversation_id)

    async def stop(self) -> None:
        for task in list(self.calls):
            task.cancel()


def oldest_rows() -> Any:
    """Each conversation's oldest inbox row: the only one a step may take. A younger row is
    never work on its own (it waits behind the oldest, which a deferred step put off until
    the session's timer), so it must not make its conversation due."""
    older = INBOX.alias("older")
    return ~exists().where(
        older.c.conversation_id == INBOX.c.conversation_id, older.c.id < INBOX.c.id
    )


# Built once per process, on the tables: a consumer round runs them (see loading's note).
def _due_inbox() -> Any:
    return (
        select(INBOX.c.conversation_id)
        .where(INBOX.c.due_at <= bindparam("now"), oldest_rows())
        .order_by(INBOX.c.id)
        .limit(bindparam("limit"))
    )


def _due_timers() -> Any:
    c = SESSIONS.c
    return (
        select(c.conversation_id)
        .where(c.status == "active", c.wake_at <= bindparam("now"))
        .order_by(c.wake_at)
        .limit(bindparam("limit"))
    )


def _next_inbox() -> Any:
    return select(func.min(INBOX.c.due_at)).where(oldest_rows())


def _next_timer() -> Any:
    c = SESSIONS.c
    return select(func.min(c.wake_at)).where(c.status == "active", c.wake_at.is_not(None))


async def due_conversations(session: AsyncSession, now: Any, limit: int) -> list[uuid.UUID]:
    """Conversations whose oldest inbox row is due (oldest first), or whose session timer is."""
    params = {"now": now, "limit": limit}
    inbox = await session.scalars(statement(session, "chatbot.due.inbox", _due_inbox), params)
    timers = await session.scalars(statement(session, "chatbot.due.timers", _due_timers), params)
    return list(dict.fromkeys([*timers, *inbox]))


async def next_due(session: AsyncSession, now: datetime) -> float | None:
    """Seconds until the next conversation's oldest inbox row or a session timer is due
    (None: nothing waits)."""
    inbox = await session.scalar(statement(session, "chatbot.next.inbox", _next_inbox))
    timer = await session.scalar(statement(session, "chatbot.next.timer", _next_timer))
    times: list[datetime] = [t for t in (inbox, timer) if t is not None]
    if not times:
        return None
    return max(0.0, (min(times) - now).total_seconds())


async def call_http(
    http: aiohttp.ClientSession | None, request: dict[str, Any], *, allow_private: bool
) -> HttpResponse:
    """Make an `http` node's request through the SSRF guard (the guarded session refuses
    names that resolve to private addresses; literal addresses are checked here)."""
    url = str(request.get("url", ""))
    try:
        check_target(url, allow_private=allow_private)
    except UnsafeUrl as exc:
        return HttpResponse(None, error=f"refused: {exc}")
    if http is None:
        return HttpResponse(None, error="no HTTP client in this process")
    body = request.get("body")
    kwargs: dict[str, Any] = {"headers": request.get("headers") or {}}
    if body is not None and request.get("method") != "GET":
        if isinstance(body, dict | list):
            kwargs["json"] = body
        else:
            kwargs["data"] = str(body).encode()
    timeout = aiohttp.ClientTimeout(total=float(request.get("timeout", 5)))
    try:
        async with http.request(
            str(request.get("method", "GET")), url, timeout=timeout, allow_redirects=False,
            **kwargs,
        ) as resp:  # fmt: skip
            raw = await resp.content.read(MAX_RESPONSE_BYTES)
            return HttpResponse(resp.status, _parsed(raw))
    except BlockedAddress as exc:
        return HttpResponse(None, error=f"refused: {exc}")
    except TimeoutError:
        return HttpResponse(None, error="timeout")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return HttpResponse(None, error=f"{type(exc).__name__}: {exc}"[:300])


def _parsed(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace")
