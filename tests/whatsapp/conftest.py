"""Fixtures for the WhatsApp edge: the in-process simulator over real loopback HTTP, a small
webhook receiver, and adapters pointed at the simulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pytake.whatsapp.cloud import CloudProvider
from pytake.whatsapp.evolution import EvolutionClient
from pytake.whatsapp.simulator import BusinessNumber, Simulator, SimulatorSettings
from tests.conftest import fixture_path

PNID = "106540352242922"
TOKEN = "sim-token-abc"
APP_SECRET = "sim-app-secret"
WABA = "102290129340398"
CUSTOMER = "16505551234"


def load_fixture(file: str, case: str) -> dict[str, Any]:
    """One case of a shared Meta webhook fixture file."""
    with fixture_path("meta-webhooks", file).open(encoding="utf-8") as handle:
        return json.load(handle)[case]


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        """The body parsed."""
        return json.loads(self.raw)


@dataclass
class Receiver:
    """A local webhook endpoint that records every request and answers `status`."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    statuses: list[int] = field(default_factory=list)  # answered first, one per request

    async def handle(self, request: web.Request) -> web.Response:
        """Record and answer."""
        raw = await request.read()
        self.requests.append(Received(request.path, dict(request.headers), raw))
        if request.method == "GET":  # Meta's subscription challenge
            return web.Response(text=request.query.get("hub.challenge", ""))
        return web.Response(status=self.statuses.pop(0) if self.statuses else self.status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on 127.0.0.1 (any path)."""
    recv = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recv.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    recv.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield recv
    await runner.cleanup()


@pytest.fixture
async def sim(receiver: Receiver) -> AsyncIterator[Simulator]:
    """A started simulator with no delays. It stops before the receiver does: webhooks still in
    flight are cancelled rather than left to a server shutting down, which answers none and
    waits for them (aiohttp waits until the client gives up)."""
    async with Simulator(SimulatorSettings.for_tests()) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """The injected client session."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def number(sim: Simulator, receiver: Receiver) -> BusinessNumber:
    """A Cloud business number whose webhooks go to the receiver."""
    return sim.register_number(
        PNID,
        TOKEN,
        APP_SECRET,
        display_phone_number="15550783881",
        waba_id=WABA,
        webhook_url=f"{receiver.url}/meta",
        verified_name="Acme Shop",
        verify_token="verify-me",
    )


@pytest.fixture
def cloud(sim: Simulator, http: aiohttp.ClientSession, number: BusinessNumber) -> CloudProvider:
    """The Cloud adapter for `number`, against the simulator."""
    return CloudProvider(
        http, base_url=sim.graph_url, access_token=TOKEN, phone_number_id=PNID, waba_id=WABA
    )


@pytest.fixture
async def open_window(sim: Simulator, number: BusinessNumber, receiver: Receiver) -> None:
    """The customer wrote first, so free-form messages are allowed."""
    await sim.customer_sends(PNID, CUSTOMER, type="text", text="hello")
    receiver.requests.clear()


@pytest.fixture
def evolution(sim: Simulator, http: aiohttp.ClientSession) -> EvolutionClient:
    """The Evolution client with the global key, against the simulator."""
    return EvolutionClient(
        http, base_url=sim.evolution_url, api_key=sim.state.settings.evolution_api_key
    )
