"""The SSRF guard on delivery: names resolved once and checked, IP literals checked, and a
delivery to a private address refused at send time when private targets are not allowed."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.kit.crypto import secret_box
from pytake.kit.net_guard import BlockedAddress, GuardedResolver, check_target
from pytake.kit.ssrf import UnsafeUrl
from pytake.models import WebhookEndpoint
from tests.conftest import client_for, register_org
from tests.events.helpers import produce, running_app
from tests.webhook.conftest import Receiver
from tests.webhook.test_delivery import settled


async def test_resolver_refuses_names_that_resolve_to_loopback() -> None:
    resolver = GuardedResolver(allow_private=False)
    try:
        with pytest.raises(BlockedAddress, match="non-public"):
            await resolver.resolve("localhost", 443)
    finally:
        await resolver.close()
    allowed = GuardedResolver(allow_private=True)
    try:
        assert (await allowed.resolve("localhost", 443))[0]["host"] in ("127.0.0.1", "::1")
    finally:
        await allowed.close()


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/x", "https://10.0.0.1/x", "https://[::1]/x", "http://169.254.169.254/"],
)
def test_literal_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_target(url, allow_private=False)
    check_target(url, allow_private=True)


def test_public_literal_passes() -> None:
    check_target("https://93.184.215.14/hook", allow_private=False)


async def test_delivery_to_a_private_address_is_refused_at_send_time(
    webhook_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    """An endpoint saved while private targets were allowed; a strict worker won't call it."""
    settings = webhook_settings(allow_private_urls=False, webhook_max_retries=0)
    async with running_app(settings) as strict, client_for(strict) as client:
        org = await register_org(client)
        async with unit_of_work(strict.state.session_factory) as session:
            endpoint = WebhookEndpoint(
                organization_id=uuid.UUID(org.id),
                url=receiver.url("private"),
                events=["contact.created"],
                secret_encrypted=secret_box(settings).encrypt("s" * 20),
            )
            session.add(endpoint)
        await produce(strict, org.id, "contact.created", {"contact": {"id": "1"}})
        (delivery,) = await settled(client, org, str(endpoint.id))
    assert delivery["status"] == "failed"
    assert "SSRF" in delivery["error"]
    assert receiver.at("private") == []
