"""Sending: queue the message durably, then try to hand it to WhatsApp within a short wait.

The request does not use its own session for this: the `queued` row must be committed before
the provider is called (so a crash never loses an accepted request), and the provider's answer
is recorded in a transaction of its own. So the flow runs explicit units of work:
  1. queue: idempotency key + contact + conversation + `queued` message, committed (enqueue);
  2. claim the row (`sending`), committed — if the dispatcher got it first, it is queued;
  3. call the provider (waiting at most `request_wait_seconds`), record the outcome.
The result is a `SendReceipt`; the endpoint turns it into 201 (sent) or 202 (queued).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import IntegrityError

from pytake.auth.principal import Principal
from pytake.db import unit_of_work
from pytake.errors import PyTakeError
from pytake.events import wake_after_commit
from pytake.message.sending import idempotency as keys
from pytake.message.sending import queue
from pytake.message.sending.context import SendingContext
from pytake.message.sending.dispatcher import Dispatcher, record_events, send_jobs
from pytake.message.sending.draft import Draft, Target
from pytake.message.sending.enqueue import enqueue
from pytake.message.sending.errors import whatsapp_error
from pytake.message.sending.idempotency import Idempotency
from pytake.message.sending.receipt import SendReceipt, receipt_for
from pytake.models import Message

log = logging.getLogger(__name__)


async def send(
    ctx: SendingContext,
    principal: Principal,
    target: Target,
    draft: Draft,
    idempotency: Idempotency | None = None,
) -> SendReceipt:
    """Queue a message durably, then try to hand it to WhatsApp within a short wait."""
    if idempotency is not None:
        replay = await keys.replay(ctx.factory, principal, idempotency)
        if replay is not None:
            return replay
    try:
        async with unit_of_work(ctx.factory) as session:
            key_row = await keys.take_key(session, principal, idempotency)
            message = await enqueue(session, principal, target, draft)
            if key_row is not None:
                key_row.message_id = message.id
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key committed first.
        replay = await keys.replay(ctx.factory, principal, idempotency) if idempotency else None
        if replay is None:
            raise
        return replay
    try:
        receipt = await _deliver(ctx, message)
    except PyTakeError as err:
        await keys.remember(ctx.factory, principal, idempotency, err)
        raise
    await keys.remember(ctx.factory, principal, idempotency, receipt)
    return receipt


async def _deliver(ctx: SendingContext, message: Message) -> SendReceipt:
    async with unit_of_work(ctx.factory) as session:
        job = await queue.claim_one(session, ctx.worker, message.id)
    if job is None:  # the dispatcher took it: it is being sent
        return receipt_for(message)
    task = asyncio.create_task(_send_and_record(ctx, job))
    ctx.background.add(task)
    task.add_done_callback(ctx.background.discard)
    done, _ = await asyncio.wait({task}, timeout=ctx.tuning.request_wait_seconds)
    if not done:
        return receipt_for(message)  # still waiting on the provider: queued, recorded later
    outcome = task.result()
    if outcome is None:
        return receipt_for(message)
    if outcome.status == "failed" and outcome.error is not None:
        raise whatsapp_error(outcome.error, str(message.id))
    if outcome.status == "sent" and outcome.result is not None:
        message.status = "sent"
        message.provider_message_id = outcome.result.provider_message_id
    return receipt_for(message)


async def _send_and_record(ctx: SendingContext, job: queue.SendJob) -> queue.SendOutcome | None:
    try:
        outcomes = await send_jobs(ctx.providers, [job], 1)
        async with unit_of_work(ctx.factory) as session:
            await queue.record_outcomes(session, ctx.worker, outcomes, ctx.tuning.policy())
            await record_events(session, outcomes)
            if outcomes[0].status == "queued":
                # The retry is the dispatcher's, maybe in a `pytake worker` process: tell it
                # after commit (through Redis when there is one) rather than at its next poll.
                wake_after_commit(session, Dispatcher.name)
        return outcomes[0]
    except Exception:
        # The row stays `sending`; reconciliation settles it from the status webhooks.
        log.exception("recording the outcome of message %s failed", job.id)
        return None
