"""Cloud adapter calls beyond sending: media, read receipts, number info, templates."""

from __future__ import annotations

import aiohttp
import pytest

from pytake.whatsapp import InboundMessage, ProviderError
from pytake.whatsapp.cloud import CloudProvider, parse_webhook
from pytake.whatsapp.simulator import Simulator

from .conftest import CUSTOMER, PNID, TOKEN, WABA, Receiver


async def test_upload_then_resolve_and_download(sim: Simulator, cloud: CloudProvider) -> None:
    media_id = await cloud.upload_media(b"%PDF-1.4 hello", "application/pdf", "hello.pdf")

    info = await cloud.get_media_url(media_id)
    content = await cloud.download_media(media_id)

    assert info.url.startswith(sim.base_url) and info.file_size == 14
    assert (content.data, content.mime_type) == (b"%PDF-1.4 hello", "application/pdf")


async def test_download_needs_the_bearer_token(
    sim: Simulator, cloud: CloudProvider, http: aiohttp.ClientSession
) -> None:
    media_id = await cloud.upload_media(b"x", "image/png", "x.png")
    info = await cloud.get_media_url(media_id)

    async with http.get(info.url) as response:
        assert response.status == 401


async def test_unknown_media_is_100(cloud: CloudProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await cloud.get_media_url("404404")

    assert caught.value.code == 100


async def test_mark_read_with_typing_indicator(
    sim: Simulator, cloud: CloudProvider, receiver: Receiver
) -> None:
    await sim.customer_sends(PNID, CUSTOMER, type="text", text="hi")
    [event] = parse_webhook(receiver.requests[0].json)
    assert isinstance(event, InboundMessage)

    await cloud.mark_read(event.provider_message_id, typing=True)

    assert sim.state.read_marks == [
        {"channel": PNID, "message_id": event.provider_message_id, "typing": True}
    ]


async def test_phone_number_info(cloud: CloudProvider) -> None:
    info = await cloud.phone_number_info()

    assert (info.id, info.verified_name, info.display_phone_number) == (
        PNID,
        "Acme Shop",
        "15550783881",
    )
    assert (info.quality_rating, info.platform_type, info.throughput_level) == (
        "GREEN",
        "CLOUD_API",
        "STANDARD",
    )


async def test_phone_number_info_with_bad_token(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    bad = CloudProvider(http, base_url=sim.graph_url, access_token="nope", phone_number_id=PNID)

    with pytest.raises(ProviderError) as caught:
        await bad.phone_number_info()

    assert (caught.value.code, caught.value.http_status) == (190, 401)


async def test_list_templates_follows_paging(sim: Simulator, cloud: CloudProvider) -> None:
    for index in range(230):  # more than two pages of 100
        sim.register_template(WABA, f"t{index:03}", "en_US", body="Hi {{1}}", category="MARKETING")
    sim.register_template("another-waba", "foreign", "en_US", body="x")

    templates = await cloud.list_templates()

    assert [t.name for t in templates] == [f"t{index:03}" for index in range(230)]
    assert templates[0].status == "APPROVED" and templates[0].category == "MARKETING"
    assert templates[0].components == [{"type": "BODY", "text": "Hi {{1}}"}]


async def test_list_templates_needs_a_waba(sim: Simulator, http: aiohttp.ClientSession) -> None:
    provider = CloudProvider(http, base_url=sim.graph_url, access_token=TOKEN, phone_number_id=PNID)

    with pytest.raises(ProviderError) as caught:
        await provider.list_templates()

    assert caught.value.retryable is False


async def test_any_graph_version_is_accepted(
    sim: Simulator, http: aiohttp.ClientSession, number: object
) -> None:
    provider = CloudProvider(
        http, base_url=f"{sim.base_url}/v19.0", access_token=TOKEN, phone_number_id=PNID
    )

    assert (await provider.phone_number_info()).id == PNID
