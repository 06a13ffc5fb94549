"""The Cloud adapter's sends arrive at the fake Graph API with exactly the expected body, and
Graph errors come back as typed ProviderErrors."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from pytake.whatsapp import OutboundMessage, ProviderError
from pytake.whatsapp.cloud import CloudProvider
from pytake.whatsapp.cloud.client import GraphConnector
from pytake.whatsapp.simulator import Simulator

from .conftest import CUSTOMER, PNID, TOKEN, WABA

pytestmark = pytest.mark.usefixtures("open_window")


@pytest.fixture(params=["aiohttp", "graph pool"])
async def http(request: pytest.FixtureRequest) -> AsyncIterator[aiohttp.ClientSession]:
    """Every send case on both paths: plain aiohttp, and the worker's provider session whose
    connector carries the lean keep-alive pool the adapter sends through."""
    connector = GraphConnector(limit=10) if request.param == "graph pool" else None
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


ENVELOPE = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER}

INTERACTIVE_BUTTON = {
    "type": "button",
    "header": {"type": "text", "text": "Order #42"},
    "body": {"text": "Confirm?"},
    "footer": {"text": "Shop"},
    "action": {
        "buttons": [
            {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
            {"type": "reply", "reply": {"id": "no", "title": "No"}},
        ]
    },
}
INTERACTIVE_LIST = {
    "type": "list",
    "body": {"text": "Pick one"},
    "action": {
        "button": "Options",
        "sections": [
            {"title": "Main", "rows": [{"id": "r1", "title": "Row 1", "description": "opt"}]}
        ],
    },
}
INTERACTIVE_CTA = {
    "type": "cta_url",
    "body": {"text": "See it"},
    "action": {
        "name": "cta_url",
        "parameters": {"display_text": "Open", "url": "https://x.example"},
    },
}
CONTACT = {
    "name": {"formatted_name": "Chandler Bing", "first_name": "Chandler"},
    "phones": [{"phone": "+1 555-555-5555", "type": "CELL", "wa_id": "15555555555"}],
}

CASES: list[tuple[str, dict[str, Any]]] = [
    ("text", {"body": "hi there", "preview_url": False}),
    ("image", {"link": "https://cdn.example/a.jpg", "caption": "A"}),
    ("video", {"link": "https://cdn.example/a.mp4", "caption": "V"}),
    ("audio", {"link": "https://cdn.example/a.ogg"}),
    ("document", {"link": "https://cdn.example/a.pdf", "caption": "D", "filename": "a.pdf"}),
    ("sticker", {"link": "https://cdn.example/a.webp"}),
    ("location", {"latitude": -23.5, "longitude": -46.6, "name": "Shop", "address": "Rua 1"}),
    ("reaction", {"message_id": "wamid.IN", "emoji": "👍"}),
    ("interactive", INTERACTIVE_BUTTON),
    ("interactive", INTERACTIVE_LIST),
    ("interactive", INTERACTIVE_CTA),
]


@pytest.mark.parametrize(
    ("kind", "content"), CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)]
)
async def test_each_type_arrives_with_the_graph_body(
    sim: Simulator, cloud: CloudProvider, kind: str, content: dict[str, Any]
) -> None:
    result = await cloud.send(OutboundMessage(to=f"+{CUSTOMER}", type=kind, content=content))

    [sent] = sim.state.sent_messages(channel=PNID)
    assert sent.body == {**ENVELOPE, "type": kind, kind: content}
    assert result.provider_message_id == sent.id
    assert result.provider_message_id.startswith("wamid.")
    assert result.wa_id == CUSTOMER


async def test_contacts_are_sent_as_the_cloud_array(sim: Simulator, cloud: CloudProvider) -> None:
    await cloud.send(OutboundMessage(to=CUSTOMER, type="contacts", content={"contacts": [CONTACT]}))

    [sent] = sim.state.sent_messages()
    assert sent.body == {**ENVELOPE, "type": "contacts", "contacts": [CONTACT]}


async def test_media_by_uploaded_id(sim: Simulator, cloud: CloudProvider) -> None:
    media_id = await cloud.upload_media(b"\x89PNG fake", "image/png", "a.png")

    await cloud.send(OutboundMessage(to=CUSTOMER, type="image", content={"id": media_id}))

    [sent] = sim.state.sent_messages()
    assert sent.body["image"] == {"id": media_id}


async def test_reply_context_and_callback_data(sim: Simulator, cloud: CloudProvider) -> None:
    message = OutboundMessage(
        to=CUSTOMER,
        type="text",
        content={"body": "re"},
        context_message_id="wamid.QUOTED",
        callback_data="outbound-17",
    )
    await cloud.send(message)

    [sent] = sim.state.sent_messages()
    assert sent.body["context"] == {"message_id": "wamid.QUOTED"}
    assert sent.body["biz_opaque_callback_data"] == "outbound-17"


async def test_template_with_components(sim: Simulator, cloud: CloudProvider) -> None:
    sim.register_template(
        WABA, "order_update", "en_US", header="Order {{1}}", body="Hi {{1}}, {{2}}"
    )
    template = {
        "name": "order_update",
        "language": {"code": "en_US", "policy": "deterministic"},
        "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "#42"}]},
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "John"},
                    {"type": "text", "text": "shipped"},
                ],
            },
        ],
    }
    result = await cloud.send(OutboundMessage(to=CUSTOMER, type="template", content=template))

    [sent] = sim.state.sent_messages()
    assert sent.body == {**ENVELOPE, "type": "template", "template": template}
    assert result.message_status == "accepted"


async def _send_error(cloud: CloudProvider, message: OutboundMessage) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await cloud.send(message)
    return caught.value


async def test_outside_the_window_is_131047(sim: Simulator, cloud: CloudProvider) -> None:
    error = await _send_error(
        cloud, OutboundMessage(to="5511988887777", type="text", content={"body": "hi"})
    )

    assert (error.code, error.http_status, error.retryable) == (131047, 400, False)
    assert "send a template" in error.plain_explanation
    assert "24 hours" in (error.details or "")
    assert sim.state.sent_messages() == []


async def test_template_outside_the_window_is_allowed(sim: Simulator, cloud: CloudProvider) -> None:
    sim.register_template(WABA, "hello", "en_US", body="Hello")
    template = {"name": "hello", "language": {"code": "en_US"}}

    await cloud.send(OutboundMessage(to="5511988887777", type="template", content=template))

    assert len(sim.state.sent_messages(to="5511988887777")) == 1


async def test_unknown_template_is_132001(sim: Simulator, cloud: CloudProvider) -> None:
    template = {"name": "nope", "language": {"code": "en_US"}}
    error = await _send_error(
        cloud, OutboundMessage(to=CUSTOMER, type="template", content=template)
    )

    assert (error.code, error.retryable) == (132001, False)


async def test_wrong_body_parameter_count_is_132000(sim: Simulator, cloud: CloudProvider) -> None:
    sim.register_template(WABA, "two", "pt_BR", body="Oi {{1}}, seu pedido {{2}}")
    template = {
        "name": "two",
        "language": {"code": "pt_BR"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}],
    }
    error = await _send_error(
        cloud, OutboundMessage(to=CUSTOMER, type="template", content=template)
    )

    assert (error.code, error.retryable) == (132000, False)
    assert "(1)" in (error.details or "") and "(2)" in (error.details or "")


async def test_bad_token_is_190(sim: Simulator, http: aiohttp.ClientSession) -> None:
    bad = CloudProvider(http, base_url=sim.graph_url, access_token="wrong", phone_number_id=PNID)
    error = await _send_error(bad, OutboundMessage(to=CUSTOMER, type="text", content={"body": "x"}))

    assert (error.code, error.http_status, error.retryable) == (190, 401, False)


async def test_unknown_phone_number_id_is_100(sim: Simulator, http: aiohttp.ClientSession) -> None:
    other = CloudProvider(http, base_url=sim.graph_url, access_token=TOKEN, phone_number_id="999")
    error = await _send_error(
        other, OutboundMessage(to=CUSTOMER, type="text", content={"body": "x"})
    )

    assert (error.code, error.subcode, error.retryable) == (100, 33, False)


async def test_invalid_payload_is_rejected_with_100(cloud: CloudProvider) -> None:
    error = await _send_error(
        cloud, OutboundMessage(to=CUSTOMER, type="image", content={"caption": "no media"})
    )

    assert (error.code, error.retryable) == (100, False)


async def test_too_many_buttons_is_rejected(cloud: CloudProvider) -> None:
    buttons = [{"type": "reply", "reply": {"id": str(i), "title": f"B{i}"}} for i in range(4)]
    content = {"type": "button", "body": {"text": "?"}, "action": {"buttons": buttons}}
    error = await _send_error(
        cloud, OutboundMessage(to=CUSTOMER, type="interactive", content=content)
    )

    assert error.code == 131009


async def test_throughput_limit_is_130429_and_retryable(
    sim: Simulator, cloud: CloudProvider
) -> None:
    # A 2-per-minute limit makes the third send fail however slow the machine is.
    sim.state.numbers[PNID].mps = 2
    sim.state.settings = dataclasses.replace(sim.state.settings, mps_period=60.0)
    message = OutboundMessage(to=CUSTOMER, type="text", content={"body": "x"})
    await cloud.send(message)
    await cloud.send(message)

    error = await _send_error(cloud, message)

    assert (error.code, error.retryable) == (130429, True)


async def test_injected_5xx_is_retryable_then_clears(sim: Simulator, cloud: CloudProvider) -> None:
    sim.set_faults(error={"code": 131000, "http_status": 500, "count": 1})
    message = OutboundMessage(to=CUSTOMER, type="text", content={"body": "x"})

    error = await _send_error(cloud, message)
    result = await cloud.send(message)

    assert (error.code, error.http_status, error.retryable) == (131000, 500, True)
    assert result.provider_message_id.startswith("wamid.")


async def test_injected_non_retryable_code(sim: Simulator, cloud: CloudProvider) -> None:
    sim.set_faults(error={"code": 131026, "count": 1})

    error = await _send_error(
        cloud, OutboundMessage(to=CUSTOMER, type="text", content={"body": "x"})
    )

    assert (error.code, error.retryable) == (131026, False)


async def test_connection_refused_is_a_retryable_transport_error(
    http: aiohttp.ClientSession,
) -> None:
    # Port 9 (discard) is closed on loopback: the connection is refused.
    dead = CloudProvider(
        http, base_url="http://127.0.0.1:9/v23.0", access_token=TOKEN, phone_number_id=PNID
    )
    error = await _send_error(
        dead, OutboundMessage(to=CUSTOMER, type="text", content={"body": "x"})
    )

    assert (error.kind, error.retryable, error.code) == ("transport", True, None)
