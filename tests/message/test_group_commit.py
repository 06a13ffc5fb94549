"""Meta webhooks stored by the group-commit writer: many concurrent requests per transaction,
each answered only after its own rows are committed, none able to spoil the others."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from pytake.message.ingest import messages as ingest_messages
from pytake.message.receive import parse_meta
from pytake.message.writer import OVERLAP_AT, IngestWriter, MetaDelivery, WriterStats
from pytake.models import Contact, Conversation
from pytake.whatsapp.simulator import Simulator
from tests.channel.support import MetaNumber, count_rows, create_official, messages_of, post_meta
from tests.conftest import Org
from tests.message.test_meta_webhook import session_rows, status_body


@pytest.fixture
async def number(api: httpx.AsyncClient, wa_org: Org, sim: Simulator, wa_url: str) -> MetaNumber:
    return await create_official(api, wa_org, sim, wa_url)


def text_body(number: MetaNumber, sender: str, wamid: str, text: str, ts: int = 1700000000) -> dict:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": number.pnid},
        "contacts": [{"profile": {"name": "Maria"}, "wa_id": sender}],
        "messages": [
            {
                "from": sender,
                "id": wamid,
                "timestamp": str(ts),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    entry = {"id": number.waba, "changes": [{"field": "messages", "value": value}]}
    return {"object": "whatsapp_business_account", "entry": [entry]}


def fresh_stats(app: FastAPI) -> WriterStats:
    """The writer's counters, reset (the app and its writer are shared by the session)."""
    writer: IngestWriter | None = getattr(app.state, "ingest_writer", None)
    if writer is None:
        writer = app.state.ingest_writer = IngestWriter(
            app.state.session_factory, app.state.settings
        )
    writer.stats = WriterStats()
    return writer.stats


async def post_all(api: httpx.AsyncClient, bodies: list[Any], secret: str) -> list[httpx.Response]:
    return list(await asyncio.gather(*(post_meta(api, body, secret) for body in bodies)))


async def test_concurrent_webhooks_of_one_customer_make_one_contact_and_conversation(
    number: MetaNumber, api: httpx.AsyncClient, wa_app: FastAPI, wa_org: Org
) -> None:
    sender = "5511987650001"
    bodies = [
        text_body(number, sender, f"wamid.gc-{uuid.uuid4().hex}", f"msg {i}", 1700000000 + i)
        for i in range(40)
    ]
    stats = fresh_stats(wa_app)
    responses = await post_all(api, bodies, number.app_secret)
    assert [r.status_code for r in responses] == [200] * 40
    assert all(r.json()["messages"] == 1 for r in responses)
    assert stats.largest_batch > 1 and stats.batches < 40  # they did share transactions
    stored = await messages_of(wa_app, number.id)
    assert len(stored) == 40 and len({m.provider_message_id for m in stored}) == 40
    assert await count_rows(wa_app, "contacts", wa_org.id) == 1
    [conversation] = await session_rows(wa_app, Conversation, id=stored[0].conversation_id)
    assert {m.conversation_id for m in stored} == {conversation.id}
    assert conversation.message_count == 40 and conversation.unread_count == 40
    assert conversation.last_inbound_at is not None
    assert conversation.last_inbound_at.timestamp() == 1700000039
    assert await count_rows(wa_app, "conversations", wa_org.id) == 1


async def test_same_message_in_concurrent_bodies_is_stored_once(
    number: MetaNumber, api: httpx.AsyncClient, wa_app: FastAPI
) -> None:
    body = text_body(number, "5511987650002", f"wamid.gc-{uuid.uuid4().hex}", "twice")
    responses = await post_all(api, [body] * 6, number.app_secret)
    assert [r.status_code for r in responses] == [200] * 6
    assert sorted(r.json()["messages"] for r in responses) == [0] * 5 + [1]
    assert sum(r.json()["duplicates"] for r in responses) == 5
    [message] = await messages_of(wa_app, number.id)
    [conversation] = await session_rows(wa_app, Conversation, id=message.conversation_id)
    assert conversation.message_count == 1


async def test_a_badly_signed_body_is_refused_alone(
    number: MetaNumber, api: httpx.AsyncClient, wa_app: FastAPI, wa_org: Org
) -> None:
    good = [
        text_body(number, f"55119876500{i:02d}", f"wamid.gc-{uuid.uuid4().hex}", "ok")
        for i in range(8)
    ]
    forged = text_body(number, "5511987659999", f"wamid.gc-{uuid.uuid4().hex}", "forged")
    requests = [post_meta(api, body, number.app_secret) for body in good]
    requests.insert(4, post_meta(api, forged, "not-the-app-secret"))
    responses = await asyncio.gather(*requests)
    assert [r.status_code for r in responses] == [200] * 4 + [401] + [200] * 4
    stored = await messages_of(wa_app, number.id)
    assert len(stored) == 8 and "forged" not in {m.content["text"] for m in stored}
    assert await count_rows(wa_app, "contacts", wa_org.id) == 8


async def test_a_body_that_fails_in_the_database_fails_alone_and_leaves_nothing(
    number: MetaNumber,
    api: httpx.AsyncClient,
    wa_app: FastAPI,
    wa_org: Org,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = ingest_messages.message_row

    def poisoned(*args: Any) -> dict[str, Any]:
        values = real(*args)
        if values["content"].get("text") == "POISON":
            values["conversation_id"] = uuid.uuid4()  # violates the foreign key at INSERT
        return values

    monkeypatch.setattr(ingest_messages, "message_row", poisoned)
    bodies = [
        text_body(number, f"55119876510{i:02d}", f"wamid.gc-{uuid.uuid4().hex}", "fine")
        for i in range(10)
    ]
    bodies[3] = text_body(number, "5511987658888", f"wamid.gc-{uuid.uuid4().hex}", "POISON")
    stats = fresh_stats(wa_app)
    responses = await post_all(api, bodies, number.app_secret)
    statuses = [r.status_code for r in responses]
    assert statuses[3] >= 500 and statuses[:3] + statuses[4:] == [200] * 9
    assert stats.retried_alone > 1  # its batch failed with others in it, who were redone
    stored = await messages_of(wa_app, number.id)
    assert len(stored) == 9 and all(m.content["text"] == "fine" for m in stored)
    # The poisoned body's contact and conversation were rolled back with it.
    assert await count_rows(wa_app, "contacts", wa_org.id) == 9
    assert await count_rows(wa_app, "conversations", wa_org.id) == 9
    assert not await session_rows(wa_app, Contact, wa_id="5511987658888")


async def test_a_body_of_many_statuses_moves_every_message(
    number: MetaNumber, api: httpx.AsyncClient, wa_app: FastAPI, sim: Simulator
) -> None:
    from tests.message.test_meta_webhook import _outbound

    await sim.customer_sends(number.pnid, "5511987650003", type="text", text="hi")
    [inbound] = await messages_of(wa_app, number.id)
    wamids = [f"wamid.out-{uuid.uuid4().hex}" for _ in range(10)]
    for wamid in wamids:
        await _outbound(wa_app, number, wamid, inbound)
    body = status_body(number, wamids[0], "delivered", 1700000200)
    value = body["entry"][0]["changes"][0]["value"]
    value["statuses"] = [
        {**value["statuses"][0], "id": wamid, "status": "delivered" if i % 2 else "read"}
        for i, wamid in enumerate(wamids)
    ]
    resp = await post_meta(api, body, number.app_secret)
    assert resp.status_code == 200, resp.text
    assert resp.json()["statuses"] == 10 and resp.json()["pending_statuses"] == 0
    outbound = [m for m in await messages_of(wa_app, number.id) if m.direction == "outbound"]
    assert sorted(m.status for m in outbound) == ["delivered"] * 5 + ["read"] * 5


async def test_two_batches_share_the_database_on_postgresql_one_on_sqlite(
    number: MetaNumber, api: httpx.AsyncClient, wa_app: FastAPI, wa_org: Org
) -> None:
    # Batches overlap on PostgreSQL (one waits on the database while the next is formed); the
    # locks on each customer's contact still make one contact and one conversation each.
    senders = [f"55119876510{i:02d}" for i in range(10)]
    bodies = [
        text_body(number, senders[i % 10], f"wamid.ov-{uuid.uuid4().hex}", f"m{i}")
        for i in range(300)
    ]
    stats = fresh_stats(wa_app)
    responses = await post_all(api, bodies, number.app_secret)
    assert [r.status_code for r in responses] == [200] * 300
    postgres = wa_app.state.settings.database_url.startswith("postgresql")
    assert stats.most_in_flight == (2 if postgres else 1)
    assert stats.failed_batches == 0
    stored = [
        m
        for m in await messages_of(wa_app, number.id)
        if m.provider_message_id.startswith("wamid.ov-")
    ]
    assert len(stored) == 300
    assert len({m.contact_id for m in stored}) == 10
    assert len({m.conversation_id for m in stored}) == 10


def test_a_body_touching_what_a_batch_in_flight_touches_waits_for_it() -> None:
    # Two batches in flight must not let `read` overtake `delivered` of the same message (nor a
    # customer's second message overtake the first): such a body, and every later body that
    # touches what it touches, waits for the next batch, in arrival order.
    number = cast(MetaNumber, SimpleNamespace(pnid="111", waba="222"))

    def delivery(body: dict[str, Any]) -> MetaDelivery:
        return MetaDelivery(json.dumps(body).encode(), None, parse_meta(json.dumps(body).encode()))

    in_flight = delivery(status_body(number, "wamid.A", "delivered", 1700000000))
    read_a = delivery(status_body(number, "wamid.A", "read", 1700000001))
    other = delivery(status_body(number, "wamid.B", "delivered", 1700000002))
    from_ana = delivery(text_body(number, "5511900000001", "wamid.C", "hi"))
    read_a_and_ana = delivery(_merged(number, "wamid.A", "5511900000001"))
    ana_again = delivery(text_body(number, "5511900000001", "wamid.D", "again"))

    writer = IngestWriter.__new__(IngestWriter)
    writer._in_flight_touches = Counter(in_flight.touches)
    writer._waiting = [read_a, other, read_a_and_ana, from_ana, ana_again]
    assert writer._take() == [other]
    # read_a_and_ana waits behind read_a, so Ana's later messages wait behind it too.
    assert writer._waiting == [read_a, read_a_and_ana, from_ana, ana_again]
    writer._in_flight_touches = Counter()
    assert writer._take() == [read_a, read_a_and_ana, from_ana, ana_again]


def _merged(number: MetaNumber, wamid: str, sender: str) -> dict:
    """One body with a status for `wamid` and a message from `sender`."""
    body = text_body(number, sender, f"wamid.{uuid.uuid4().hex}", "both")
    status = status_body(number, wamid, "read", 1700000003)
    value = body["entry"][0]["changes"][0]["value"]
    value["statuses"] = status["entry"][0]["changes"][0]["value"]["statuses"]
    return body


async def test_a_second_batch_starts_only_once_enough_bodies_wait() -> None:
    # Every batch costs its statements whatever its size: while one is in flight, a few bodies
    # wait for it to finish rather than go out as a batch of their own.
    number = cast(MetaNumber, SimpleNamespace(pnid="111", waba="222"))
    release = asyncio.Event()
    written: list[int] = []

    async def write(batch: list[MetaDelivery]) -> None:
        written.append(len(batch))
        await release.wait()
        for delivery in batch:
            assert delivery.future is not None
            delivery.future.set_result(None)

    writer = IngestWriter.__new__(IngestWriter)
    writer._waiting, writer._draining, writer._max_drains = [], 0, 2
    writer._tasks, writer._in_flight_touches = set(), Counter()
    writer._write = write  # type: ignore[method-assign]

    def body(n: int) -> MetaDelivery:
        raw = json.dumps(status_body(number, f"wamid.T{n}", "delivered", 1700000000)).encode()
        return MetaDelivery(raw, None, parse_meta(raw))

    submitted = [asyncio.create_task(writer.submit(body(0)))]
    await asyncio.sleep(0.01)
    assert written == [1]  # alone, a body goes at once
    for n in range(1, OVERLAP_AT):
        submitted.append(asyncio.create_task(writer.submit(body(n))))
    await asyncio.sleep(0.01)
    assert written == [1] and len(writer._waiting) == OVERLAP_AT - 1
    submitted.append(asyncio.create_task(writer.submit(body(OVERLAP_AT))))
    await asyncio.sleep(0.01)
    assert written == [1, OVERLAP_AT]  # enough wait: a second batch overlaps the first
    release.set()
    await asyncio.wait_for(asyncio.gather(*submitted), 5)
    assert writer._draining == 0
