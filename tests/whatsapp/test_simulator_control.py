"""The simulator's control API and phone page, driven over HTTP as the CLI user would."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from pytake.whatsapp import OutboundMessage, ProviderError
from pytake.whatsapp.cloud import CloudProvider, parse_webhook
from pytake.whatsapp.simulator import Simulator, SimulatorSettings

from .conftest import Receiver

PNID = "555000111"


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, url, json=body) as response:
        return response.status, await response.json()


async def test_full_journey_through_the_control_api(
    sim: Simulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    control = f"{sim.base_url}/_sim"
    number = {
        "phone_number_id": PNID,
        "access_token": "tok",
        "app_secret": "sec",
        "waba_id": "w1",
        "webhook_url": receiver.url,
    }
    status, registered = await _call(http, "POST", f"{control}/numbers", number)
    assert status == 201 and "access_token" not in registered

    status, _ = await _call(
        http, "POST", f"{control}/templates", {"waba_id": "w1", "name": "hi", "body": "Hi {{1}}"}
    )
    assert status == 201
    status, record = await _call(
        http,
        "POST",
        f"{control}/numbers/{PNID}/inbound",
        {"from": "5511911112222", "type": "text", "text": "menu"},
    )
    assert status == 201 and record["webhook_status"] == 200

    provider = CloudProvider(
        http, base_url=sim.graph_url, access_token="tok", phone_number_id=PNID, waba_id="w1"
    )
    await provider.send(
        OutboundMessage(to="5511911112222", type="text", content={"body": "Options: 1, 2"})
    )
    await _call(http, "POST", f"{control}/idle")

    _, sent = await _call(http, "GET", f"{control}/messages?channel={PNID}")
    _, thread = await _call(http, "GET", f"{control}/thread?channel={PNID}&customer=5511911112222")
    _, webhooks = await _call(http, "GET", f"{control}/webhooks")
    assert [m["body"]["text"]["body"] for m in sent] == ["Options: 1, 2"]
    assert sent[0]["statuses"] == ["sent", "delivered", "read"]
    assert [item["direction"] for item in thread] == ["in", "out"]
    assert len(webhooks) == 4 and {w["status"] for w in webhooks} == {200}
    assert len([e for r in receiver.requests for e in parse_webhook(r.json)]) == 4


async def test_faults_window_and_reset(sim: Simulator, http: aiohttp.ClientSession) -> None:
    control = f"{sim.base_url}/_sim"
    status, faults = await _call(
        http,
        "POST",
        f"{control}/faults",
        {"error": {"code": 130429, "count": 2}, "duplicate_webhooks": True},
    )
    assert status == 200 and faults["errors"][0]["remaining"] == 2 and faults["duplicate_webhooks"]

    status, _ = await _call(
        http, "POST", f"{control}/windows", {"phone_number_id": "1", "wa_id": "2"}
    )
    assert status == 200 and sim.state.window_open("1", "2")

    await _call(http, "DELETE", f"{control}/faults")
    await _call(http, "POST", f"{control}/reset")
    _, faults = await _call(http, "GET", f"{control}/faults")
    assert faults["errors"] == [] and not sim.state.window_open("1", "2")


async def test_bad_control_requests_are_400(sim: Simulator, http: aiohttp.ClientSession) -> None:
    control = f"{sim.base_url}/_sim"
    await _call(
        http,
        "POST",
        f"{control}/numbers",
        {"phone_number_id": PNID, "access_token": "t", "app_secret": "s"},
    )

    missing, _ = await _call(http, "POST", f"{control}/numbers", {"phone_number_id": "x"})
    bad_fault, _ = await _call(http, "POST", f"{control}/faults", {"error": {"code": "x"}})
    bad_sender, error = await _call(
        http, "POST", f"{control}/numbers/{PNID}/inbound", {"from": "abc"}
    )

    assert (missing, bad_fault, bad_sender) == (400, 400, 400)
    assert "digits" in error["error"]


async def test_evolution_control(
    sim: Simulator, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    headers = {"apikey": sim.state.settings.evolution_api_key}
    create = {
        "instanceName": "demo",
        "qrcode": True,
        "webhook": {"url": receiver.url, "enabled": True, "events": []},
    }
    async with http.post(
        f"{sim.base_url}/instance/create", json=create, headers=headers
    ) as response:
        assert response.status == 201

    status, row = await _call(
        http,
        "POST",
        f"{sim.base_url}/_sim/evolution/instances/demo/scan",
        {"number": "5511900000000"},
    )
    await _call(
        http,
        "POST",
        f"{sim.base_url}/_sim/evolution/instances/demo/disconnect",
        {"status_reason": 428},
    )
    await sim.idle()

    assert status == 200 and row["connectionStatus"] == "open"
    states = [
        r.json["data"]["state"] for r in receiver.requests if r.json["event"] == "connection.update"
    ]
    assert states == ["open", "close"]


async def test_phone_page_is_served(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.get(sim.base_url + "/") as response:
        page = await response.text()

    assert response.status == 200 and response.content_type == "text/html"
    assert "Customer's phone" in page and "/_sim" in page


async def test_constructor_faults_are_the_baseline(http: aiohttp.ClientSession) -> None:
    faults = {"error": {"code": 131000, "http_status": 503, "count": 1}, "reorder_statuses": True}
    async with Simulator(SimulatorSettings.for_tests(), faults=faults) as sim:
        sim.register_number(PNID, "tok", "sec")
        sim.state.open_window(PNID, "5511911112222")
        provider = CloudProvider(
            http, base_url=sim.graph_url, access_token="tok", phone_number_id=PNID
        )
        message = OutboundMessage(to="5511911112222", type="text", content={"body": "x"})

        with pytest.raises(ProviderError) as caught:
            await provider.send(message)
        await provider.send(message)
        sim.reset()

        assert (caught.value.code, caught.value.http_status, caught.value.retryable) == (
            131000,
            503,
            True,
        )
        assert sim.state.faults.reorder_statuses and sim.state.faults.errors[0].remaining == 1
