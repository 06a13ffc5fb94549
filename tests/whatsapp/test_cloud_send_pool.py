"""The send path's keep-alive pool (GraphConnector): concurrent sends, timeouts and refused
connections behave as the dispatcher expects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from pytake.message.sending.queue import RetryPolicy, SendJob, SendOutcome, _classify
from pytake.whatsapp import OutboundMessage, ProviderError
from pytake.whatsapp.cloud import CloudProvider
from pytake.whatsapp.cloud.client import GraphConnector, ProviderUnreachable
from pytake.whatsapp.simulator import Simulator

from .conftest import CUSTOMER, PNID, TOKEN

pytestmark = pytest.mark.usefixtures("open_window")

POLICY = RetryPolicy(6, 2.0, 300.0, 120.0, 30.0)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A provider session as the worker builds it, four connections wide."""
    async with aiohttp.ClientSession(connector=GraphConnector(limit=4)) as session:
        yield session


def _text(body: str, callback: str | None = None) -> OutboundMessage:
    return OutboundMessage(to=CUSTOMER, type="text", content={"body": body}, callback_data=callback)


def _kind(error: ProviderError) -> str:
    """How the dispatcher would record this failure (queued, failed or ambiguous)."""
    job = SendJob(None, None, None, None, CUSTOMER, "text", {}, None, None, 1)  # type: ignore[arg-type]
    return _classify(SendOutcome(job, error=error), POLICY)


async def test_many_concurrent_sends_through_a_narrow_pool(
    sim: Simulator, cloud: CloudProvider
) -> None:
    results = await asyncio.gather(*(cloud.send(_text(f"m{i}", f"cb{i}")) for i in range(40)))

    wamids = {result.provider_message_id for result in results}
    assert len(wamids) == 40
    for i, result in enumerate(results):  # each answer belongs to its own request
        sent = sim.state.find_sent(result.provider_message_id)
        assert sent is not None and sent.body["biz_opaque_callback_data"] == f"cb{i}"


async def test_a_timeout_is_ambiguous_and_the_next_send_gets_its_own_answer(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    cloud = CloudProvider(
        http, base_url=sim.graph_url, access_token=TOKEN, phone_number_id=PNID, timeout=0.1
    )
    sim.set_faults(latency_ms=400)
    with pytest.raises(ProviderError) as raised:
        await cloud.send(_text("slow"))
    sim.set_faults(latency_ms=0)
    await asyncio.sleep(0.5)  # the slow answer arrives now, on a connection no longer used

    first = await cloud.send(_text("after", "cb-after"))
    second = await cloud.send(_text("again", "cb-again"))

    assert (raised.value.kind, raised.value.retryable) == ("transport", True)
    assert _kind(raised.value) == "ambiguous"  # the provider may have taken it
    for result, callback in ((first, "cb-after"), (second, "cb-again")):
        sent = sim.state.find_sent(result.provider_message_id)
        assert sent is not None and sent.body["biz_opaque_callback_data"] == callback


async def test_a_refused_connection_was_never_sent(http: aiohttp.ClientSession) -> None:
    # Port 9 (discard) is closed on loopback: the connection is refused.
    dead = CloudProvider(
        http, base_url="http://127.0.0.1:9/v23.0", access_token=TOKEN, phone_number_id=PNID
    )
    with pytest.raises(ProviderError) as raised:
        await dead.send(_text("x"))

    assert isinstance(raised.value.__cause__, ProviderUnreachable)
    assert _kind(raised.value) == "queued"  # safe to send again, not held for reconciliation
