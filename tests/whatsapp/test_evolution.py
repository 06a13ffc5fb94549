"""The Evolution adapter against the fake Evolution server: instance lifecycle, webhook config,
sends (with the numbered-text fallback on Baileys), errors, and the webhooks it posts."""

from __future__ import annotations

from typing import Any

import aiohttp
import jwt
import pytest

from pytake.whatsapp import (
    ConnectionUpdate,
    InboundMessage,
    MessageEcho,
    OutboundMessage,
    ProviderError,
    QrCodeUpdate,
    StatusUpdate,
)
from pytake.whatsapp.events import ProviderEvent
from pytake.whatsapp.evolution import (
    BUSINESS,
    EvolutionClient,
    EvolutionProvider,
    WebhookConfig,
    check_headers,
    numbered_options,
    parse_evolution_webhook,
)
from pytake.whatsapp.simulator import Simulator

from .conftest import CUSTOMER, Receiver

INSTANCE = "acme-1"
HEADERS = {"x-pytake-secret": "s3cret"}


def _events(receiver: Receiver) -> list[ProviderEvent]:
    return [
        event for request in receiver.requests for event in parse_evolution_webhook(request.json)
    ]


async def _connected(
    sim: Simulator, evolution: EvolutionClient, receiver: Receiver
) -> EvolutionProvider:
    webhook = WebhookConfig(f"{receiver.url}/evo", HEADERS)
    await evolution.create_instance(INSTANCE, webhook=webhook)
    sim.scan(INSTANCE, "5511900000000", "Acme")
    await sim.idle()
    receiver.requests.clear()
    return EvolutionProvider(evolution, INSTANCE)


async def test_create_qr_scan_open(
    sim: Simulator, evolution: EvolutionClient, receiver: Receiver
) -> None:
    webhook = WebhookConfig(f"{receiver.url}/evo", HEADERS)

    created = await evolution.create_instance(INSTANCE, webhook=webhook, token="inst-key")
    again = await evolution.connect(INSTANCE)
    state_before = await evolution.connection_state(INSTANCE)
    sim.scan(INSTANCE, "5511900000000", "Acme")
    await sim.idle()

    assert (created.status, created.token) == ("connecting", "inst-key")
    assert created.qrcode is not None and created.qrcode.base64 is not None
    assert created.qrcode.base64.startswith("data:image/png;base64,")
    assert again.qrcode is not None and again.qrcode.count == 2
    assert state_before == "connecting"
    assert await evolution.connection_state(INSTANCE) == "open"
    events = _events(receiver)
    assert [type(e) for e in events] == [QrCodeUpdate, QrCodeUpdate, ConnectionUpdate]
    opened = events[-1]
    assert isinstance(opened, ConnectionUpdate)
    assert (opened.channel, opened.state, opened.wuid, opened.profile_name) == (
        INSTANCE,
        "open",
        "5511900000000",
        "Acme",
    )
    assert all(check_headers(r.headers, HEADERS) for r in receiver.requests)


async def test_connect_when_open_returns_the_state(
    sim: Simulator, evolution: EvolutionClient, receiver: Receiver
) -> None:
    await _connected(sim, evolution, receiver)

    result = await evolution.connect(INSTANCE)

    assert (result.state, result.qrcode) == ("open", None)


async def test_qr_limit_is_the_200_with_error_quirk(
    sim: Simulator, evolution: EvolutionClient
) -> None:
    await evolution.create_instance(INSTANCE, qrcode=False)
    sim.state.instances[INSTANCE].qr_count = sim.state.settings.qrcode_limit

    with pytest.raises(ProviderError) as caught:
        await evolution.connect(INSTANCE)

    assert (caught.value.http_status, caught.value.retryable) == (200, False)
    assert await evolution.connection_state(INSTANCE) == "refused"


async def test_fetch_logout_delete(
    sim: Simulator, evolution: EvolutionClient, receiver: Receiver
) -> None:
    provider = await _connected(sim, evolution, receiver)

    [row] = await evolution.fetch_instances(INSTANCE)
    info = await provider.phone_number_info()
    await evolution.logout(INSTANCE)
    with pytest.raises(ProviderError) as twice:
        await evolution.logout(INSTANCE)
    await evolution.delete_instance(INSTANCE)

    assert (row["name"], row["connectionStatus"]) == (INSTANCE, "open")
    assert (info.id, info.display_phone_number, info.verified_name, info.status) == (
        INSTANCE,
        "5511900000000",
        "Acme",
        "open",
    )
    assert twice.value.http_status == 400
    assert await evolution.fetch_instances() == []


async def test_duplicate_name_and_unknown_instance(evolution: EvolutionClient) -> None:
    await evolution.create_instance(INSTANCE)

    with pytest.raises(ProviderError) as duplicate:
        await evolution.create_instance(INSTANCE)
    with pytest.raises(ProviderError) as missing:
        await evolution.connection_state("ghost")

    assert duplicate.value.http_status == 403 and "already in use" in duplicate.value.message
    assert missing.value.http_status == 404


async def test_bad_api_key_is_401(sim: Simulator, http: aiohttp.ClientSession) -> None:
    client = EvolutionClient(http, base_url=sim.evolution_url, api_key="wrong")

    with pytest.raises(ProviderError) as caught:
        await client.fetch_instances()

    assert (caught.value.http_status, caught.value.retryable) == (401, False)


async def test_instance_token_works_on_its_routes(
    sim: Simulator, evolution: EvolutionClient, http: aiohttp.ClientSession
) -> None:
    created = await evolution.create_instance(INSTANCE)
    assert created.token
    own = EvolutionClient(http, base_url=sim.evolution_url, api_key=created.token)

    assert await own.connection_state(INSTANCE) == "connecting"
    assert [row["name"] for row in await own.fetch_instances()] == [INSTANCE]


async def test_set_webhook_sends_the_nested_body(
    sim: Simulator, evolution: EvolutionClient, receiver: Receiver
) -> None:
    await evolution.create_instance(INSTANCE)

    await evolution.set_webhook(
        INSTANCE, f"{receiver.url}/evo", HEADERS, ["MESSAGES_UPSERT"], by_events=True
    )
    found = await evolution.find_webhook(INSTANCE)

    assert sim.state.instances[INSTANCE].webhook == {
        "enabled": True,
        "url": f"{receiver.url}/evo",
        "headers": HEADERS,
        "byEvents": True,
        "base64": False,
        "events": ["MESSAGES_UPSERT"],
    }
    assert (found["url"], found["webhookByEvents"]) == (f"{receiver.url}/evo", True)


async def test_flat_webhook_body_is_refused(
    sim: Simulator, http: aiohttp.ClientSession, evolution: EvolutionClient
) -> None:
    await evolution.create_instance(INSTANCE)

    with pytest.raises(ProviderError) as caught:
        await evolution.request(
            "POST", f"/webhook/set/{INSTANCE}", json={"url": "http://x", "webhook_by_events": False}
        )

    assert caught.value.http_status == 400


async def test_by_events_posts_to_suffixed_urls_and_filters(
    sim: Simulator, evolution: EvolutionClient, receiver: Receiver
) -> None:
    await evolution.create_instance(INSTANCE, qrcode=False)
    await evolution.set_webhook(
        INSTANCE, f"{receiver.url}/evo", HEADERS, ["MESSAGES_UPSERT"], by_events=True
    )
    sim.scan(INSTANCE, "5511900000000")

    await sim.evolution_customer_sends(INSTANCE, CUSTOMER, type="text", text="oi")
    await sim.idle()

    assert [r.path for r in receiver.requests] == ["/evo/messages-upsert"]


async def test_send_text_and_statuses(
    sim: Simulator, evolution: EvolutionClient, receiver: Receiver
) -> None:
    provider = await _connected(sim, evolution, receiver)

    result = await provider.send(
        OutboundMessage(
            to=f"+{CUSTOMER}", type="text", content={"body": "olá"}, context_message_id="3AQUOTED"
        )
    )
    await sim.idle()

    [sent] = sim.state.sent_messages(provider="evolution")
    assert sent.body == {
        "number": CUSTOMER,
        "text": "olá",
        "linkPreview": False,
        "quoted": {"key": {"id": "3AQUOTED"}},
    }
    assert result.provider_message_id == sent.id and result.message_status == "PENDING"
    events = _events(receiver)
    echo = events[0]
    assert isinstance(echo, MessageEcho) and (echo.source, echo.content) == ("api", {"text": "olá"})
    statuses = [e for e in events if isinstance(e, StatusUpdate)]
    assert [(s.status, s.provider_status) for s in statuses] == [
        ("sent", "SERVER_ACK"),
        ("delivered", "DELIVERY_ACK"),
        ("read", "READ"),
    ]
    assert {s.provider_message_id for s in statuses} == {result.provider_message_id}


BUTTONS = {
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
LIST = {
    "type": "list",
    "body": {"text": "Pick one"},
    "action": {
        "button": "Options",
        "sections": [
            {"title": "A", "rows": [{"id": "r1", "title": "Row 1"}]},
            {"title": "B", "rows": [{"id": "r2", "title": "Row 2", "description": "second"}]},
        ],
    },
}


async def test_baileys_buttons_and_lists_become_numbered_text(
    sim: Simulator, evolution: EvolutionClient, receiver: Receiver
) -> None:
    provider = await _connected(sim, evolution, receiver)

    await provider.send(OutboundMessage(to=CUSTOMER, type="interactive", content=BUTTONS))
    await provider.send(OutboundMessage(to=CUSTOMER, type="interactive", content=LIST))

    buttons, listed = sim.state.sent_messages(provider="evolution")
    assert buttons.body == {
        "number": CUSTOMER,
        "text": "Order #42\n\nConfirm?\n\n1. Yes\n2. No\n\nShop",
    }
    assert listed.body == {"number": CUSTOMER, "text": "Pick one\n\n1. Row 1\n2. Row 2"}
    assert numbered_options(LIST) == [("r1", "Row 1"), ("r2", "Row 2")]


async def test_native_buttons_and_lists_when_the_flag_is_off(
    sim: Simulator, evolution: EvolutionClient, receiver: Receiver
) -> None:
    await _connected(sim, evolution, receiver)
    provider = EvolutionProvider(evolution, INSTANCE, numbered_text_interactive=False)

    await provider.send(OutboundMessage(to=CUSTOMER, type="interactive", content=BUTTONS))
    await provider.send(OutboundMessage(to=CUSTOMER, type="interactive", content=LIST))

    buttons, listed = sim.state.sent_messages(provider="evolution")
    assert buttons.body == {
        "number": CUSTOMER,
        "title": "Order #42",
        "description": "Confirm?",
        "footer": "Shop",
        "buttons": [
            {"type": "reply", "displayText": "Yes", "id": "yes"},
            {"type": "reply", "displayText": "No", "id": "no"},
        ],
    }
    assert listed.body["buttonText"] == "Options"
    assert listed.body["sections"][1] == {
        "title": "B",
        "rows": [{"title": "Row 2", "rowId": "r2", "description": "second"}],
    }


SENDS: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    (
        "image",
        {"link": "https://cdn.example/a.jpg", "caption": "A"},
        "sendMedia",
        {"mediatype": "image", "media": "https://cdn.example/a.jpg", "caption": "A"},
    ),
    (
        "document",
        {"link": "https://cdn.example/a.pdf", "filename": "a.pdf"},
        "sendMedia",
        {"mediatype": "document", "media": "https://cdn.example/a.pdf", "fileName": "a.pdf"},
    ),
    (
        "audio",
        {"link": "https://cdn.example/a.ogg"},
        "sendWhatsAppAudio",
        {"audio": "https://cdn.example/a.ogg"},
    ),
    (
        "sticker",
        {"link": "https://cdn.example/a.webp"},
        "sendSticker",
        {"sticker": "https://cdn.example/a.webp"},
    ),
    (
        "location",
        {"latitude": 1.0, "longitude": 2.0},
        "sendLocation",
        {"latitude": 1.0, "longitude": 2.0, "name": "", "address": ""},
    ),
    (
        "contacts",
        {
            "contacts": [
                {
                    "name": {"formatted_name": "Ana"},
                    "phones": [{"phone": "+55 11 98888-7777", "wa_id": "5511988887777"}],
                }
            ]
        },
        "sendContact",
        {
            "contact": [
                {"fullName": "Ana", "wuid": "5511988887777", "phoneNumber": "+55 11 98888-7777"}
            ]
        },
    ),
    (
        "reaction",
        {"message_id": "3AIN", "emoji": "👍"},
        "sendReaction",
        {
            "key": {"id": "3AIN", "remoteJid": f"{CUSTOMER}@s.whatsapp.net", "fromMe": False},
            "reaction": "👍",
        },
    ),
]


@pytest.mark.parametrize(
    ("kind", "content", "action", "expected"), SENDS, ids=[s[0] for s in SENDS]
)
async def test_other_types_are_translated(
    sim: Simulator,
    evolution: EvolutionClient,
    receiver: Receiver,
    kind: str,
    content: dict[str, Any],
    action: str,
    expected: dict[str, Any],
) -> None:
    provider = await _connected(sim, evolution, receiver)

    await provider.send(OutboundMessage(to=CUSTOMER, type=kind, content=content))

    [sent] = sim.state.sent_messages(provider="evolution")
    assert sent.body == {**expected, "number": CUSTOMER}


async def test_unsupported_operations(
    sim: Simulator, evolution: EvolutionClient, receiver: Receiver
) -> None:
    provider = await _connected(sim, evolution, receiver)
    template = OutboundMessage(
        to=CUSTOMER, type="template", content={"name": "x", "language": {"code": "en"}}
    )
    by_id = OutboundMessage(to=CUSTOMER, type="image", content={"id": "123"})

    for call in (
        provider.send(template),
        provider.send(by_id),
        provider.list_templates(),
        provider.upload_media(b"x", "image/png", "x.png"),
    ):
        with pytest.raises(ProviderError) as caught:
            await call
        assert (caught.value.kind, caught.value.retryable) == ("not_supported", False)


async def test_template_on_business_integration(sim: Simulator, evolution: EvolutionClient) -> None:
    await evolution.create_instance(
        "cloudy", integration=BUSINESS, number="106540352242922", token="meta-token"
    )
    provider = EvolutionProvider(evolution, "cloudy", integration=BUSINESS)
    content = {"name": "hello", "language": {"code": "en_US"}, "components": []}

    await provider.send(OutboundMessage(to=CUSTOMER, type="template", content=content))

    [sent] = sim.state.sent_messages(provider="evolution")
    assert sent.body == {"number": CUSTOMER, "name": "hello", "language": "en_US", "components": []}


async def test_number_not_on_whatsapp_maps_to_131026(
    sim: Simulator, evolution: EvolutionClient, receiver: Receiver
) -> None:
    provider = await _connected(sim, evolution, receiver)

    with pytest.raises(ProviderError) as caught:
        await provider.send(OutboundMessage(to="123", type="text", content={"body": "x"}))

    assert (caught.value.code, caught.value.http_status, caught.value.retryable) == (
        131026,
        400,
        False,
    )


async def test_send_while_closed_fails(evolution: EvolutionClient) -> None:
    await evolution.create_instance(INSTANCE)
    provider = EvolutionProvider(evolution, INSTANCE)

    with pytest.raises(ProviderError) as caught:
        await provider.send(OutboundMessage(to=CUSTOMER, type="text", content={"body": "x"}))

    assert caught.value.http_status == 400


async def test_injected_evolution_5xx_is_retryable(
    sim: Simulator, evolution: EvolutionClient, receiver: Receiver
) -> None:
    provider = await _connected(sim, evolution, receiver)
    sim.set_faults(error={"code": 0, "http_status": 500, "provider": "evolution"})

    with pytest.raises(ProviderError) as caught:
        await provider.send(OutboundMessage(to=CUSTOMER, type="text", content={"body": "x"}))

    assert (caught.value.http_status, caught.value.retryable) == (500, True)


async def test_customer_messages_and_media(
    sim: Simulator, evolution: EvolutionClient, receiver: Receiver
) -> None:
    provider = await _connected(sim, evolution, receiver)

    await sim.evolution_customer_sends(
        INSTANCE, CUSTOMER, type="text", text="oi", profile_name="Ana"
    )
    await sim.evolution_customer_sends(
        INSTANCE, CUSTOMER, type="text", text="old", text_shape="extended"
    )
    await sim.evolution_customer_sends(
        INSTANCE, CUSTOMER, type="text", text="lid", lid="20411223344556"
    )
    await sim.evolution_customer_sends(
        INSTANCE, CUSTOMER, type="image", caption="pic", mime_type="image/png"
    )
    await provider.mark_read(sim.state.received[0].id, sender=CUSTOMER)

    texts, old, lid, image = _events(receiver)
    assert isinstance(texts, InboundMessage) and (
        texts.sender,
        texts.profile_name,
        texts.content,
    ) == (CUSTOMER, "Ana", {"text": "oi"})
    assert isinstance(old, InboundMessage) and old.content == {"text": "old"}
    assert isinstance(lid, InboundMessage) and (lid.sender, lid.sender_user_id) == (
        CUSTOMER,
        "20411223344556@lid",
    )
    assert (
        isinstance(image, InboundMessage)
        and image.type == "image"
        and image.content["caption"] == "pic"
    )
    media = await provider.download_media(image.content["media_id"])
    assert (media.data, media.mime_type) == (b"simulated image", "image/png")
    assert sim.state.read_marks == [{"channel": INSTANCE, "message_id": sim.state.received[0].id}]


async def test_jwt_key_header_becomes_a_bearer_token(
    sim: Simulator, evolution: EvolutionClient, receiver: Receiver
) -> None:
    await evolution.create_instance(INSTANCE, qrcode=False)
    await evolution.set_webhook(
        INSTANCE, receiver.url, {"jwt_key": "a-signing-key-of-at-least-32-bytes!"}
    )

    sim.scan(INSTANCE, "5511900000000")
    await sim.idle()

    [request] = receiver.requests
    token = request.headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, "a-signing-key-of-at-least-32-bytes!", algorithms=["HS256"])
    assert (claims["app"], claims["action"]) == ("evolution", "webhook")
    assert "jwt_key" not in request.headers
