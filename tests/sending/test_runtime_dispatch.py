"""The dispatcher runs as one of the process's background loops (in `pytake serve` on the
embedded default, and in `pytake worker`): a message the request could not send goes out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from pytake.config import Settings
from pytake.whatsapp.simulator import Simulator, SimulatorSettings
from tests.channel.support import create_official
from tests.conftest import client_for, register_org
from tests.events.helpers import running_app, serving
from tests.sending.support import eventually, new_customer, sent_with_callback


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
