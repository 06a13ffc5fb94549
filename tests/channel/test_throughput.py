"""A number's throughput (messages per second Meta lets it send): 80 unless set, 1..1000,
settable on both surfaces, shown on both."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Org


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "name": "Main",
        "provider": "official",
        "phone_number_id": str(uuid.uuid4().int)[:15],
        "access_token": "EAAG-token",
        "app_secret": "secret",
        **extra,
    }


async def test_throughput_defaults_to_80_and_is_set_on_both_surfaces(
    client: httpx.AsyncClient, org: Org
) -> None:
    created = await client.post("/v1/whatsapp-configs", json=_body(), headers=org.headers)
    assert created.status_code == 201, created.text
    config = created.json()
    assert config["throughput"] == 80
    url = f"/v1/whatsapp-configs/{config['id']}"
    patched = await client.patch(url, json={"throughput": 1000}, headers=org.headers)
    assert patched.status_code == 200, patched.text
    assert patched.json()["throughput"] == 1000
    legacy = await client.put(
        f"/api/v1/whatsapp-configs/{config['id']}", json={"throughput": 250}, headers=org.headers
    )
    assert legacy.status_code == 200, legacy.text
    assert legacy.json()["throughput"] == 250
    renamed = await client.patch(url, json={"name": "Renamed"}, headers=org.headers)
    assert renamed.json()["throughput"] == 250  # omitted: kept
    listed = await client.get("/api/v1/whatsapp-configs", headers=org.headers)
    assert [c["throughput"] for c in listed.json()["configs"]] == [250]
    raised = await client.post(
        "/api/v1/whatsapp-configs", json=_body(throughput=1000), headers=org.headers
    )
    assert raised.status_code == 201, raised.text
    assert raised.json()["throughput"] == 1000


@pytest.mark.parametrize("value", [0, 1001, -5, None, "fast", 80.5])
async def test_a_throughput_outside_1_to_1000_is_a_422_naming_it(
    client: httpx.AsyncClient, org: Org, value: Any
) -> None:
    created = await client.post("/v1/whatsapp-configs", json=_body(), headers=org.headers)
    config = created.json()
    resp = await client.patch(
        f"/v1/whatsapp-configs/{config['id']}", json={"throughput": value}, headers=org.headers
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["field"] == "throughput"
    legacy = await client.put(
        f"/api/v1/whatsapp-configs/{config['id']}", json={"throughput": value}, headers=org.headers
    )
    assert legacy.status_code == 422, legacy.text
    assert legacy.json()["details"]["field"] == "throughput"
    if value is not None:
        new = await client.post(
            "/v1/whatsapp-configs", json=_body(throughput=value), headers=org.headers
        )
        assert new.status_code == 422, new.text
        assert new.json()["error"]["details"][0]["field"] == "throughput"
    kept = await client.get(f"/v1/whatsapp-configs/{config['id']}", headers=org.headers)
    assert kept.json()["throughput"] == 80
