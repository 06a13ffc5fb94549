"""Deliveries to a real local receiver: signature, headers, retries and their spacing,
failure after the policy, restart safety, one delivery per row across workers, redeliver, ping."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.events import DomainEvent, record_many
from pytake.models import WebhookEndpoint
from pytake.models.base import utcnow
from tests.conftest import Org, client_for, register_org
from tests.events.helpers import eventually, inbound_message, produce, running_app, wait_until
from tests.webhook.conftest import BACKOFF, Receiver, validate_webhook


async def make_hook(
    client: httpx.AsyncClient, org: Org, url: str, events: list[str]
) -> dict[str, Any]:
    resp = await client.post(
        "/v1/webhooks", json={"url": url, "events": events}, headers=org.headers
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def deliveries(client: httpx.AsyncClient, org: Org, hook_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/v1/webhooks/{hook_id}/deliveries", headers=org.headers)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["data"])


async def settled(
    client: httpx.AsyncClient, org: Org, hook_id: str, count: int = 1
) -> list[dict[str, Any]]:
    """Wait until `count` deliveries exist and none is still pending or in flight."""
    result: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal result
        result = await deliveries(client, org, hook_id)
        return len(result) == count and all(d["status"] in ("delivered", "failed") for d in result)

    await eventually(done, within=20)
    return result


def gaps(delivery: dict[str, Any]) -> list[float]:
    times = [
        datetime.fromisoformat(a["at"].replace("Z", "+00:00")) for a in delivery["attempt_log"]
    ]
    return [(b - a).total_seconds() for a, b in itertools.pairwise(times)]


# How late a retry may start: the request, the bookkeeping, and a loaded machine (on SQLite the
# single writer is shared with the app's other loops; one full-suite run saw a retry 0.8 s late).
LATE = 1.0


def assert_backoff(observed: list[float], multiples: list[int]) -> None:
    """Each retry waited its own delay (base × 1, 2, 4): never less, and not much more."""
    assert len(observed) == len(multiples)
    for gap, multiple in zip(observed, multiples, strict=True):
        assert multiple * BACKOFF <= gap < multiple * BACKOFF + LATE, (observed, multiples)


async def test_delivery_is_signed_and_carries_the_documented_payload(
    wh_app: FastAPI, wh_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = await register_org(wh_client)
    hook = await make_hook(wh_client, org, receiver.url("signed"), ["message.received"])
    data = inbound_message()
    await produce(wh_app, org.id, "message.received", data)
    (delivery,) = await settled(wh_client, org, hook["id"])
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert delivery["response_status"] == 200 and delivery["response_excerpt"] == "ok"
    assert delivery["duration_ms"] is not None and delivery["next_attempt_at"] is None

    (request,) = receiver.at("signed")
    assert validate_webhook(
        request.body.decode(), request.headers["X-PyTake-Signature"], hook["secret"]
    )
    assert not validate_webhook(
        request.body.decode(), request.headers["X-PyTake-Signature"], "wrong"
    )
    assert request.headers["X-PyTake-Event"] == "message.received"
    assert request.headers["X-PyTake-Delivery"] == delivery["id"]
    assert request.headers["Content-Type"] == "application/json"
    payload = json.loads(request.body)
    assert payload.keys() == {"event", "timestamp", "organization_id", "data"}
    assert payload["event"] == "message.received"
    assert payload["organization_id"] == org.id
    assert payload["timestamp"].endswith("Z")
    assert payload["data"] == data


async def test_event_filtering_per_endpoint(
    wh_app: FastAPI, wh_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = await register_org(wh_client)
    contacts = await make_hook(wh_client, org, receiver.url("contacts"), ["contact.created"])
    messages = await make_hook(wh_client, org, receiver.url("messages"), ["message.received"])
    other = await register_org(wh_client)
    await make_hook(wh_client, other, receiver.url("other"), ["contact.created"])
    await produce(wh_app, org.id, "message.received", inbound_message())
    await produce(wh_app, org.id, "contact.created", {"contact": {"id": "c"}})
    await produce(wh_app, org.id, "conversation.created", {"conversation": {"id": "v"}})
    assert [d["event"] for d in await settled(wh_client, org, contacts["id"])] == [
        "contact.created"
    ]
    assert [d["event"] for d in await settled(wh_client, org, messages["id"])] == [
        "message.received"
    ]
    assert [r.headers["X-PyTake-Event"] for r in receiver.at("contacts")] == ["contact.created"]
    assert [r.headers["X-PyTake-Event"] for r in receiver.at("messages")] == ["message.received"]
    assert receiver.at("other") == []
    # A paused endpoint gets no deliveries for what happens meanwhile; the active one does.
    resp = await wh_client.patch(
        f"/v1/webhooks/{contacts['id']}", json={"is_active": False}, headers=org.headers
    )
    assert resp.status_code == 200, resp.text
    await produce(wh_app, org.id, "contact.created", {"contact": {"id": "d"}})
    await produce(wh_app, org.id, "message.received", inbound_message())
    assert len(await settled(wh_client, org, messages["id"], count=2)) == 2
    assert len(await deliveries(wh_client, org, contacts["id"])) == 1


async def test_500_500_200_delivers_on_the_third_attempt_with_backoff(
    wh_app: FastAPI, wh_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = await register_org(wh_client)
    hook = await make_hook(wh_client, org, receiver.url("flaky", 500, 500), ["contact.updated"])
    await produce(wh_app, org.id, "contact.updated", {"contact": {"id": "1"}})
    (delivery,) = await settled(wh_client, org, hook["id"])
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3
    assert [a["response_status"] for a in delivery["attempt_log"]] == [500, 500, 200]
    requests = receiver.at("flaky")
    assert [r.answered for r in requests] == [500, 500, 200]
    # One delivery id across its retries, and every attempt verifies.
    assert {r.headers["X-PyTake-Delivery"] for r in requests} == {delivery["id"]}
    for r in requests:
        assert validate_webhook(r.body.decode(), r.headers["X-PyTake-Signature"], hook["secret"])
    assert_backoff(gaps(delivery), [1, 2])


async def test_receiver_down_longer_than_the_policy_ends_failed(
    wh_app: FastAPI, wh_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = await register_org(wh_client)
    hook = await make_hook(wh_client, org, receiver.url("down", *[503] * 10), ["contact.created"])
    await produce(wh_app, org.id, "contact.created", {"contact": {"id": "1"}})
    (delivery,) = await settled(wh_client, org, hook["id"])
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 4  # the first attempt and 3 retries
    assert delivery["response_status"] == 503 and delivery["next_attempt_at"] is None
    assert delivery["response_excerpt"] == "receiver says no"
    assert len(receiver.at("down")) == 4
    assert_backoff(gaps(delivery), [1, 2, 4])
    # A failed delivery is kept, and the endpoint stays active (it has not failed for a day).
    assert (await wh_client.get(f"/v1/webhooks/{hook['id']}", headers=org.headers)).json()[
        "is_active"
    ]


async def test_a_restart_between_attempts_delivers_once(
    webhook_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    settings = webhook_settings(webhook_backoff_base_seconds=1.0)
    async with running_app(settings) as first, client_for(first) as client:
        org = await register_org(client)
        hook = await make_hook(client, org, receiver.url("restart", 500), ["contact.created"])
        await produce(first, org.id, "contact.created", {"contact": {"id": "1"}})
        await wait_until(lambda: len(receiver.at("restart")) == 1)

        async def retry_scheduled() -> bool:
            (d,) = await deliveries(client, org, hook["id"])
            return d["status"] == "pending" and d["attempts"] == 1

        await eventually(retry_scheduled)
    # The process is gone; the row is the queue.
    async with running_app(settings) as second, client_for(second) as client:
        (delivery,) = await settled(client, org, hook["id"])
    assert delivery["status"] == "delivered" and delivery["attempts"] == 2
    assert [r.answered for r in receiver.at("restart")] == [500, 200]


async def test_two_workers_never_send_one_delivery_twice(
    webhook_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    settings = webhook_settings(webhook_batch_size=5)
    async with (
        running_app(settings) as one,
        running_app(settings) as two,
        client_for(one) as client,
    ):
        org = await register_org(client)
        hook = await make_hook(client, org, receiver.url("race"), ["contact.updated"])
        for n in range(40):
            await produce(one if n % 2 else two, org.id, "contact.updated", {"n": n})
        rows = await settled(client, org, hook["id"], count=40)
    assert {d["status"] for d in rows} == {"delivered"}
    ids = [r.headers["X-PyTake-Delivery"] for r in receiver.at("race")]
    assert len(ids) == 40 and len(set(ids)) == 40


async def test_a_backlog_of_full_batches_is_delivered_once_each_with_its_retry(
    webhook_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    # One transaction queues more than four batches at once, so the loop works full batches
    # back to back (each batch's outcomes recorded while the next is sent); the first request
    # fails and must still be retried.
    settings = webhook_settings(webhook_batch_size=5)
    async with running_app(settings) as app, client_for(app) as client:
        org = await register_org(client)
        hook = await make_hook(client, org, receiver.url("backlog", 500), ["contact.updated"])
        async with unit_of_work(app.state.session_factory) as session:
            await record_many(
                session,
                [DomainEvent(uuid.UUID(org.id), "contact.updated", {"n": n}) for n in range(23)],
            )
        rows = await settled(client, org, hook["id"], count=23)
    assert {d["status"] for d in rows} == {"delivered"}
    assert sorted(d["attempts"] for d in rows) == [1] * 22 + [2]
    ids = [r.headers["X-PyTake-Delivery"] for r in receiver.at("backlog")]
    assert len(ids) == 24 and len(set(ids)) == 23


async def test_redeliver_and_test_ping(
    wh_app: FastAPI, wh_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = await register_org(wh_client)
    hook = await make_hook(wh_client, org, receiver.url("again"), ["contact.created"])
    await produce(wh_app, org.id, "contact.created", {"contact": {"id": "1"}})
    (original,) = await settled(wh_client, org, hook["id"])

    resp = await wh_client.post(
        f"/v1/webhooks/deliveries/{original['id']}/redeliver", headers=org.headers
    )
    assert resp.status_code == 202, resp.text
    copy = resp.json()
    assert copy["id"] != original["id"] and copy["redelivery_of_id"] == original["id"]
    await settled(wh_client, org, hook["id"], count=2)
    first, again = receiver.at("again")
    assert again.body == first.body
    assert again.headers["X-PyTake-Delivery"] == copy["id"]

    resp = await wh_client.post(f"/v1/webhooks/{hook['id']}/test", headers=org.headers)
    assert resp.status_code == 202 and resp.json()["event"] == "ping"
    await settled(wh_client, org, hook["id"], count=3)
    ping = receiver.at("again")[-1]
    assert ping.headers["X-PyTake-Event"] == "ping"
    assert validate_webhook(ping.body.decode(), ping.headers["X-PyTake-Signature"], hook["secret"])
    body = json.loads(ping.body)
    assert body["event"] == "ping" and body["data"]["webhook_id"] == hook["id"]

    other = await register_org(wh_client)
    resp = await wh_client.post(
        f"/v1/webhooks/deliveries/{original['id']}/redeliver", headers=other.headers
    )
    assert resp.status_code == 404


async def test_an_endpoint_failing_for_a_day_is_disabled_with_a_reason(
    wh_app: FastAPI, wh_client: httpx.AsyncClient, receiver: Receiver
) -> None:
    org = await register_org(wh_client)
    hook = await make_hook(wh_client, org, receiver.url("dead", *[500] * 10), ["contact.created"])
    # It has been failing since yesterday (a day is not waited for in a test).
    async with unit_of_work(wh_app.state.session_factory) as session:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == uuid.UUID(hook["id"]))
            .values(failing_since=utcnow() - timedelta(hours=25))
        )
    await produce(wh_app, org.id, "contact.created", {"contact": {"id": "1"}})
    (delivery,) = await settled(wh_client, org, hook["id"])
    assert delivery["status"] == "failed"
    endpoint = (await wh_client.get(f"/v1/webhooks/{hook['id']}", headers=org.headers)).json()
    assert endpoint["is_active"] is False
    assert "HTTP 500" in endpoint["disabled_reason"] and endpoint["disabled_at"]
    # A disabled endpoint gets no new deliveries; re-enabling clears the record.
    await produce(wh_app, org.id, "contact.created", {"contact": {"id": "2"}})
    assert len(await deliveries(wh_client, org, hook["id"])) == 1
    resp = await wh_client.patch(
        f"/v1/webhooks/{hook['id']}", json={"is_active": True}, headers=org.headers
    )
    assert resp.json()["is_active"] and resp.json()["disabled_reason"] is None
