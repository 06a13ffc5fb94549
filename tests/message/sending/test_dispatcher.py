"""The dispatcher under concurrency and crashes: no message is sent twice or lost."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text, update

from pytake.db import unit_of_work
from pytake.message.sending import queue
from pytake.message.sending.dispatcher import build_dispatcher
from pytake.message.sending.queue import apply_pending_each, claim_due
from pytake.message.statuses import apply_statuses
from pytake.models import Message, PendingStatus
from pytake.models.base import utcnow
from pytake.whatsapp.events import StatusUpdate
from tests.message.sending.support import (
    TEST_TUNING,
    Shop,
    eventually,
    message_statuses,
    new_customer,
    pause_dispatcher,
    queue_texts,
    resume_dispatcher,
    sim_counts,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.skipif(
    not os.environ.get("PYTAKE_TEST_DATABASE_URL"),
    reason="SQLite is single-writer by design: concurrent workers need PostgreSQL",
)
async def test_two_workers_send_5000_messages_once_each(
    send_app: FastAPI, http: httpx.AsyncClient, shop: Shop
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    shop.number.sim_number.webhook_url = None  # 15,000 status webhooks would dominate the test
    await pause_dispatcher(send_app)
    try:
        ids = await queue_texts(send_app, shop, wa_id, 5000)
        tuning = replace(TEST_TUNING, batch_size=200, concurrency=100)
        state = send_app.state
        workers = [
            build_dispatcher(state.session_factory, state.settings, state.http, tuning)
            for _ in range(2)
        ]
        tasks = [asyncio.create_task(w.run_forever()) for w in workers]

        last: Counter[str] = Counter()

        async def done() -> bool:
            nonlocal last
            last = await message_statuses(send_app, ids)
            return last["sent"] == 5000

        try:
            # Fails before the test's deadline, saying where the sends stood.
            await eventually(done, timeout=90, every=0.2)
        except AssertionError:
            per_worker = [w.sent for w in workers]
            raise AssertionError(f"not all sent: {last}; per worker {per_worker}") from None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        resume_dispatcher(send_app)
    counts = sim_counts(shop, ids)
    assert len(counts) == 5000 and set(counts.values()) == {1}
    assert all(w.sent > 0 for w in workers), [w.sent for w in workers]


async def test_worker_killed_mid_batch_loses_and_duplicates_nothing(
    send_app: FastAPI, http: httpx.AsyncClient, shop: Shop, tmp_path: Path
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    await pause_dispatcher(send_app)
    # Sends stay in flight for a while (200 messages, 20 at a time: ~2 s), so the kill below
    # lands among them even on a loaded machine.
    shop.sim.set_faults(latency_ms=200)
    try:
        ids = await queue_texts(send_app, shop, wa_id, 200)
        settings = send_app.state.settings
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.message.sending.worker_process",
                settings.database_url,
                settings.meta_graph_url,
                settings.secret_key,
                settings.redis_namespace,
                cwd=ROOT,
                stdout=out,
                stderr=out,
                env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
            )

        async def some_sent() -> bool:
            # A worker that could not start (e.g. PostgreSQL refusing more connections on a
            # busy machine) fails the test at once, with its output, instead of at a deadline.
            assert proc.returncode is None, log.read_text(errors="replace")[-4000:]
            if sum(sim_counts(shop, ids).values()) < 50:
                return False
            return (await message_statuses(send_app, ids))["sending"] > 0  # more in flight

        try:
            await eventually(some_sent, timeout=60, every=0.01)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
            await proc.wait()
        shop.sim.set_faults(latency_ms=0)
        await shop.sim.idle()  # status webhooks of what the provider took have arrived
        abandoned = (await message_statuses(send_app, ids))["sending"]
        # Recovery: a worker whose lease has run out for the dead worker's claims.
        state = send_app.state
        tuning = replace(TEST_TUNING, lease_seconds=0.0)
        rescuer = build_dispatcher(state.session_factory, state.settings, state.http, tuning)
        await rescuer.reconcile()
    finally:
        shop.sim.set_faults(latency_ms=0)
        resume_dispatcher(send_app)

    async def all_settled() -> Counter[str] | None:
        statuses = await message_statuses(send_app, ids)
        settled = sum(n for s, n in statuses.items() if s in ("sent", "delivered", "read"))
        return statuses if settled == 200 else None

    await eventually(all_settled, timeout=60, every=0.1)
    counts = sim_counts(shop, ids)
    assert len(counts) == 200 and set(counts.values()) == {1}, counts.most_common(3)
    assert abandoned > 0  # the kill really left claimed rows behind


async def test_cancelled_dispatcher_records_what_came_back_and_resends_nothing(
    send_app: FastAPI, http: httpx.AsyncClient, shop: Shop
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    shop.number.sim_number.webhook_url = None  # no status webhooks: nothing to adopt from
    await pause_dispatcher(send_app)
    # Sends stay in flight for a while (300 messages, 40 at a time: ~2 s), so the cancel below
    # lands among them even on a loaded machine.
    shop.sim.set_faults(latency_ms=300)
    state = send_app.state
    try:
        ids = await queue_texts(send_app, shop, wa_id, 300)
        tuning = replace(TEST_TUNING, batch_size=50, concurrency=40)
        worker = build_dispatcher(state.session_factory, state.settings, state.http, tuning)
        task = asyncio.create_task(worker.run_forever())

        async def some_recorded_and_more_in_flight() -> bool:
            statuses = await message_statuses(send_app, ids)
            return statuses["sent"] >= 60 and statuses["sending"] > 0

        await eventually(some_recorded_and_more_in_flight, timeout=60, every=0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        shop.sim.set_faults(latency_ms=0)
        await shop.sim.idle()
        taken = set(sim_counts(shop, ids))
        statuses = await message_statuses(send_app, ids)
        async with state.session_factory() as session:
            queued_again = set(
                await session.scalars(
                    select(Message.callback_data).where(
                        Message.id.in_(ids), Message.status == "queued"
                    )
                )
            )
        # Whatever the provider took is `sent` (answered before the cancel) or still `sending`
        # (cancelled in flight, for reconciliation): none of it is queued to go out again.
        assert not taken & queued_again, statuses
        assert statuses["sent"] >= 60, statuses
        # Another worker sends the rest; the lease keeps the cancelled sends out of its way.
        rest = build_dispatcher(state.session_factory, state.settings, state.http, tuning)
        while await rest.run_once() == 0.0:
            pass
    finally:
        shop.sim.set_faults(latency_ms=0)
        resume_dispatcher(send_app)
    counts = sim_counts(shop, ids)
    assert set(counts.values()) == {1}, counts.most_common(3)
    final = await message_statuses(send_app, ids)
    assert final["sent"] + final["sending"] == 300 and final["queued"] == 0, final


async def test_a_claim_takes_no_more_than_its_limit(
    send_app: FastAPI, http: httpx.AsyncClient, shop: Shop
) -> None:
    # On PostgreSQL an `IN (… LIMIT n FOR UPDATE SKIP LOCKED)` claim could take every due row
    # (see queue.claim_due): one worker took a whole backlog, past its concurrency.
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    await pause_dispatcher(send_app)
    try:
        ids = await queue_texts(send_app, shop, wa_id, 30)
        async with unit_of_work(send_app.state.session_factory) as session:
            jobs = await claim_due(session, "test-claimer", 7)
            assert len(jobs) == 7
            # Handed back untouched: the dispatcher sends them with the rest.
            await session.execute(
                update(Message)
                .where(Message.id.in_([job.id for job in jobs]))
                .values(
                    status="queued",
                    claimed_by=None,
                    claimed_at=None,
                    next_attempt_at=utcnow(),
                    attempts=Message.attempts - 1,
                )
            )
    finally:
        resume_dispatcher(send_app)

    async def all_sent() -> Counter[str] | None:
        statuses = await message_statuses(send_app, ids)
        return statuses if statuses["queued"] + statuses["sending"] == 0 else None

    await eventually(all_sent, timeout=30, every=0.05)


@pytest.mark.skipif(
    not os.environ.get("PYTAKE_TEST_DATABASE_URL"),
    reason="SQLite has one writer, so the two transactions cannot interleave there",
)
async def test_a_status_racing_the_recording_of_its_wamid_is_applied_at_once(
    send_app: FastAPI, http: httpx.AsyncClient, shop: Shop
) -> None:
    """The sender records a wamid while the status webhook for it is being stored: whichever
    commits second must see the other (no status left waiting for the reconciler)."""
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    await pause_dispatcher(send_app)
    try:
        (message_id,) = await queue_texts(send_app, shop, wa_id, 1)
        channel_id = uuid.UUID(shop.number.id)
        wamid = f"wamid.race{uuid.uuid4().hex}"
        factory = send_app.state.session_factory
        async with factory() as sender:
            # The sender's transaction: the wamid is recorded, not yet committed.
            await sender.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(status="sent", provider_message_id=wamid, next_attempt_at=None)
            )
            assert await apply_pending_each(sender, channel_id, [wamid]) == 0
            org_id = await sender.scalar(
                select(Message.organization_id).where(Message.id == message_id)
            )
            assert org_id is not None
            delivered = StatusUpdate(
                channel=shop.number.pnid,
                provider_message_id=wamid,
                status="delivered",
                timestamp=utcnow(),
            )

            async def webhook() -> tuple[set[str], set[str]]:
                async with factory() as session:
                    result = await apply_statuses(session, org_id, channel_id, [delivered])
                    await session.commit()
                    return result

            storing = asyncio.create_task(webhook())

            async def waits_for_the_sender() -> bool:
                async with factory() as probe:
                    waiting = await probe.scalar(
                        text(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                        )
                    )
                    return bool(waiting)

            await eventually(waits_for_the_sender, timeout=10)
            await sender.commit()
        applied, pending = await asyncio.wait_for(storing, 10)
    finally:
        resume_dispatcher(send_app)
    assert (applied, pending) == ({wamid}, set())
    async with factory() as session:
        row = (await session.execute(select(Message).where(Message.id == message_id))).scalar_one()
        assert row.status == "delivered" and row.delivered_at is not None
        left = await session.scalar(
            select(func.count())
            .select_from(PendingStatus)
            .where(PendingStatus.provider_message_id == wamid)
        )
        assert left == 0


async def test_a_failed_write_of_outcomes_is_written_again(
    send_app: FastAPI, http: httpx.AsyncClient, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    wa_id = new_customer()
    await shop.customer_writes(wa_id)
    shop.number.sim_number.webhook_url = None  # no status webhooks: nothing to adopt from
    await pause_dispatcher(send_app)
    real = queue.record_outcomes
    attempts: list[int] = []

    async def fails_once(*args: Any, **kwargs: Any) -> None:
        attempts.append(len(args[2]))
        if len(attempts) == 1:
            raise ConnectionResetError("the database went away mid-write")
        await real(*args, **kwargs)

    monkeypatch.setattr(queue, "record_outcomes", fails_once)
    state = send_app.state
    try:
        ids = await queue_texts(send_app, shop, wa_id, 20)
        worker = build_dispatcher(state.session_factory, state.settings, state.http, TEST_TUNING)
        while await worker.run_once() == 0.0:
            pass
    finally:
        resume_dispatcher(send_app)
    # Written the second time: every message is `sent` now, not `sending` until its lease
    # runs out (and then queued again, with no status webhook to show it was taken).
    assert len(attempts) >= 2 and attempts[0] == attempts[1]
    assert await message_statuses(send_app, ids) == {"sent": 20}
    assert set(sim_counts(shop, ids).values()) == {1}
