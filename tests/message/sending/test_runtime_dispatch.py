"""The dispatcher runs as one of the process's background loops (in `pytake serve` on the
embedded default, and in `pytake worker`): a message the request could not send goes out."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from pytake.config import Settings
from pytake.whatsapp.simulator import Simulator, SimulatorSettings
from tests.channel.support import create_official
from tests.conftest import TEST_REDIS_URL, client_for, register_org
from tests.events.helpers import running_app, serving
from tests.message.sending.support import TEST_TUNING, eventually, new_customer, sent_with_callback


@pytest.fixture
async def own_sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorSettings.for_tests()) as simulator:
        yield simulator


async def test_runtime_dispatcher_sends_what_the_request_had_to_queue(
    own_sim: Simulator, make_settings: Callable[..., Settings], fresh_database_url: str
) -> None:
    settings = make_settings(
        database_url=fresh_database_url,
        meta_graph_url=own_sim.graph_url,
        run_background_loops=True,
        worker_poll_seconds=0.1,
    )
    # Its own database and lifespan: its dispatcher must not work other tests' queued rows.
    async with running_app(settings) as app, serving(app) as url, client_for(app) as http:
        await _queued_then_sent(http, own_sim, url)


async def _queued_then_sent(http: httpx.AsyncClient, sim: Simulator, url: str) -> None:
    org = await register_org(http, "Runtime")
    number = await create_official(http, org, sim, url, is_default=True)
    wa_id = new_customer()
    await sim.customer_sends(number.pnid, sender=wa_id, type="text", text="hi")
    port = int(sim.base_url.rsplit(":", 1)[1])
    await sim.stop()
    try:
        resp = await http.post(
            "/v1/messages",
            json={"to": wa_id, "type": "text", "text": {"body": "later"}},
            headers=org.headers,
        )
        assert resp.status_code == 202, resp.text
    finally:
        await sim.start(port=port)
    message_id = resp.json()["id"]

    async def sent() -> bool:
        got = (await http.get(f"/v1/messages/{message_id}", headers=org.headers)).json()
        return got["status"] in ("sent", "delivered", "read")

    await eventually(sent, timeout=30)
    assert len(sent_with_callback(sim, message_id)) == 1


# --- wake-ups: a retry the API queued reaches a dispatcher that sleeps "forever" -------------

# Long enough that only a wake-up can explain a prompt send within the test's deadline.
SLEEPS_FOREVER = 3600.0


@pytest.mark.parametrize("worker", ["in-process", "separate-app"])
async def test_a_retry_queued_by_the_api_wakes_the_dispatcher(
    worker: str,
    own_sim: Simulator,
    make_settings: Callable[..., Settings],
    fresh_database_url: str,
) -> None:
    if worker == "separate-app" and not TEST_REDIS_URL:
        pytest.skip("a wake-up across processes travels through Redis (PYTAKE_TEST_REDIS_URL)")
    # A channel of its own: other tests' wake-ups must not be what wakes this dispatcher.
    common = {
        "database_url": fresh_database_url,
        "meta_graph_url": own_sim.graph_url,
        "worker_poll_seconds": SLEEPS_FOREVER,
        "events_channel": f"pytake:events:{uuid.uuid4().hex}",
    }
    async with contextlib.AsyncExitStack() as stack:
        if worker == "in-process":
            api = await stack.enter_async_context(
                running_app(make_settings(**common, run_background_loops=True))
            )
        else:
            await stack.enter_async_context(
                running_app(make_settings(**common, run_background_loops=True))
            )
            api = await stack.enter_async_context(
                running_app(make_settings(**common, run_background_loops=False))
            )
        api.state.sending_tuning = TEST_TUNING  # the API's retry is due in milliseconds
        url = await stack.enter_async_context(serving(api))
        http = await stack.enter_async_context(client_for(api))
        await _throttled_then_sent_by_the_dispatcher(http, own_sim, url)


async def _throttled_then_sent_by_the_dispatcher(
    http: httpx.AsyncClient, sim: Simulator, url: str
) -> None:
    org = await register_org(http, "Wake")
    number = await create_official(http, org, sim, url, is_default=True)
    wa_id = new_customer()
    await sim.customer_sends(number.pnid, sender=wa_id, type="text", text="hi")
    sim.set_faults(error={"code": 130429, "count": 1, "channel": number.pnid})
    resp = await http.post(
        "/v1/messages",
        json={"to": wa_id, "type": "text", "text": {"body": "again"}},
        headers=org.headers,
    )
    assert resp.status_code == 202, resp.text  # throttled: the retry is the dispatcher's
    message_id = resp.json()["id"]

    async def sent() -> bool:
        got = (await http.get(f"/v1/messages/{message_id}", headers=org.headers)).json()
        return got["whatsapp_message_id"] is not None

    await eventually(sent, timeout=30)
    assert len(sent_with_callback(sim, message_id)) == 1


# --- idempotency keys are forgotten by the worker after their time --------------------------


async def test_the_worker_forgets_expired_idempotency_keys(
    own_sim: Simulator, make_settings: Callable[..., Settings], fresh_database_url: str
) -> None:
    settings = make_settings(
        database_url=fresh_database_url,
        meta_graph_url=own_sim.graph_url,
        run_background_loops=True,
        worker_poll_seconds=0.05,
        idempotency_ttl_seconds=0,  # expired as soon as written
        idempotency_prune_every_seconds=0.05,
    )
    async with running_app(settings) as app, serving(app) as url, client_for(app) as http:
        org = await register_org(http, "Prune")
        number = await create_official(http, org, own_sim, url, is_default=True)
        wa_id = new_customer()
        await own_sim.customer_sends(number.pnid, sender=wa_id, type="text", text="hi")
        headers = {**org.headers, "Idempotency-Key": "order-7"}
        first = await http.post(
            "/v1/messages",
            json={"to": wa_id, "type": "text", "text": {"body": "one"}},
            headers=headers,
        )
        assert first.status_code == 201, first.text

        async def key_forgotten() -> httpx.Response | None:
            # While the key is remembered a different body is a 409 that sends nothing.
            other = await http.post(
                "/v1/messages",
                json={"to": wa_id, "type": "text", "text": {"body": "two"}},
                headers=headers,
            )
            return other if other.status_code != 409 else None

        second = await eventually(key_forgotten, timeout=30)
    assert second.status_code == 201, second.text
    assert second.json()["id"] != first.json()["id"]
    bodies = [m.body["text"]["body"] for m in own_sim.state.sent_messages(to=wa_id)]
    assert bodies == ["one", "two"]
