"""POST /{id}/test, the periodic health check and Evolution instances, against the simulator."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from fastapi import FastAPI

from pytake.channel.health import ChannelHealthLoop, check_due_channels
from pytake.kit.crypto import SecretBox, SecretUnreadable
from pytake.kit.ssrf import UnsafeUrl, check_url
from pytake.whatsapp.simulator import Simulator
from pytake.worker.runtime import start_runtime
from tests.channel.support import create_evolution, create_official
from tests.conftest import Org, register_org


async def test_official_success_records_health(
    api: httpx.AsyncClient, wa_org: Org, sim: Simulator, wa_url: str
) -> None:
    number = await create_official(api, wa_org, sim, wa_url)
    resp = await api.post(f"/api/v1/whatsapp-configs/{number.id}/test", headers=wa_org.headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["success"] is True and body["message"] == "Configuration test successful"
    assert body["config_id"] == number.id and body["provider"] == "official"
    assert body["details"]["verified_name"] == "Acme Shop"
    assert body["details"]["status"] == "connected"
    got = (await api.get(f"/api/v1/whatsapp-configs/{number.id}", headers=wa_org.headers)).json()
    assert got["health_status"] == "healthy" and got["last_health_check"] is not None
    assert got["verified_name"] == "Acme Shop"


async def test_bad_token_is_190_and_unhealthy(
    api: httpx.AsyncClient, wa_org: Org, sim: Simulator, wa_url: str
) -> None:
    number = await create_official(api, wa_org, sim, wa_url, configured_token="EAAwrong")
    resp = await api.post(f"/api/v1/whatsapp-configs/{number.id}/test", headers=wa_org.headers)
    assert resp.status_code == 400
    body = resp.json()
    assert body["success"] is False and body["error"] == "Configuration test failed"
    assert body["details"]["code"] == 190 and body["details"]["http_status"] == 401
    assert "EAAwrong" not in resp.text
    got = (await api.get(f"/api/v1/whatsapp-configs/{number.id}", headers=wa_org.headers)).json()
    assert got["health_status"] == "unhealthy" and got["health_detail"]
    v1 = await api.post(f"/v1/whatsapp-configs/{number.id}/test", headers=wa_org.headers)
    assert v1.status_code == 200 and v1.json()["success"] is False


async def test_unreachable_host_fails_cleanly(
    api: httpx.AsyncClient, wa_org: Org, sim: Simulator
) -> None:
    config = await create_evolution(api, wa_org, sim, url="http://127.0.0.1:1")
    resp = await api.post(f"/api/v1/whatsapp-configs/{config['id']}/test", headers=wa_org.headers)
    assert resp.status_code == 400
    assert resp.json()["details"]["reason"] == "unreachable"
    assert resp.json()["message"].startswith("Could not reach the provider")
    got = (await api.get(f"/api/v1/whatsapp-configs/{config['id']}", headers=wa_org.headers)).json()
    assert got["health_status"] == "unhealthy"


async def test_periodic_check_updates_health(
    api: httpx.AsyncClient, wa_org: Org, sim: Simulator, wa_url: str, wa_app: FastAPI
) -> None:
    good = await create_official(api, wa_org, sim, wa_url)
    bad = await create_official(api, wa_org, sim, wa_url, configured_token="EAAbad")
    off = await create_official(api, wa_org, sim, wa_url)
    await api.put(
        f"/api/v1/whatsapp-configs/{off.id}", json={"is_active": False}, headers=wa_org.headers
    )
    checked = await check_due_channels(
        wa_app.state.session_factory, wa_app.state.settings, wa_app.state.http
    )
    assert {good.id, bad.id, off.id} <= {str(i) for i in checked}
    listed = (await api.get("/api/v1/whatsapp-configs", headers=wa_org.headers)).json()
    health = {c["id"]: c["health_status"] for c in listed["configs"]}
    assert health == {good.id: "healthy", bad.id: "unhealthy", off.id: "inactive"}
    assert all(c["last_health_check"] for c in listed["configs"])


async def test_two_workers_check_each_due_number_once(
    api: httpx.AsyncClient, wa_org: Org, sim: Simulator, wa_url: str, wa_app: FastAPI
) -> None:
    numbers = [await create_official(api, wa_org, sim, wa_url) for _ in range(4)]
    args = (wa_app.state.session_factory, wa_app.state.settings, wa_app.state.http)
    first, second = await asyncio.gather(check_due_channels(*args), check_due_channels(*args))
    assert not set(first) & set(second), "a number was checked by both workers"
    assert {n.id for n in numbers} <= {str(i) for i in [*first, *second]}
    # Checked just now: not due again for CHECK_INTERVAL.
    assert not {n.id for n in numbers} & {str(i) for i in await check_due_channels(*args)}


async def test_the_worker_runs_the_health_check(wa_app: FastAPI) -> None:
    settings = wa_app.state.settings.model_copy(update={"run_background_loops": True})
    runtime = await start_runtime(
        settings, wa_app.state.engine, wa_app.state.session_factory, run_loops=True
    )
    try:
        assert runtime.runner is not None
        assert any(isinstance(loop, ChannelHealthLoop) for loop in runtime.runner.loops)
    finally:
        await runtime.stop()


async def test_evolution_instance_create_qr_status(
    api: httpx.AsyncClient, wa_org: Org, sim: Simulator
) -> None:
    name = "shop-" + uuid.uuid4().hex[:8]
    config = await create_evolution(api, wa_org, sim, instance=name)
    h = wa_org.headers
    created = await api.post(
        "/api/v1/whatsapp/instance/create", json={"instance_name": name, "qrcode": True}, headers=h
    )
    assert created.status_code == 201, created.text
    instance = created.json()["instance"]
    assert instance["instance_name"] == name and instance["status"] == "created"
    assert instance["qr_code"].startswith("data:image/png;base64,")
    assert instance["config_id"] == config["id"]
    # PyTake registered its webhook with the secret header on the instance.
    hook = sim.state.instances[name].webhook or {}
    assert hook["url"].endswith(f"/api/v1/whatsapp/webhook/evolution/{config['id']}")
    assert hook["headers"].get("X-PyTake-Webhook-Secret")

    qr = await api.get(f"/api/v1/whatsapp/instance/{name}/qrcode", headers=h)
    assert qr.status_code == 200 and qr.json()["qr_code"].startswith("data:image/png")
    assert qr.json()["expires_at"]
    status = await api.get(f"/api/v1/whatsapp/instance/{name}/status", headers=h)
    assert status.status_code == 200 and status.json()["status"] != "connected"

    sim.scan(name, "5511988887777", "Acme Evo")
    await sim.idle()  # connection.update reaches PyTake
    got = (await api.get(f"/api/v1/whatsapp-configs/{config['id']}", headers=h)).json()
    assert got["connection_state"] == "open" and got["health_status"] == "healthy"
    status = await api.get(f"/api/v1/whatsapp/instance/{name}/status", headers=h)
    assert status.json()["status"] == "connected"
    assert status.json()["phone_number"] == "+5511988887777"
    assert status.json()["connected_at"]
    assert (await api.get(f"/api/v1/whatsapp/instance/{name}/qrcode", headers=h)).status_code == 409
    tested = await api.post(f"/api/v1/whatsapp-configs/{config['id']}/test", headers=h)
    assert tested.status_code == 200 and tested.json()["details"]["status"] == "connected"


async def test_v1_evolution_number_instance_qr_and_connection(
    api: httpx.AsyncClient, wa_org: Org, sim: Simulator
) -> None:
    config = await create_evolution(api, wa_org, sim)
    base, h = f"/v1/whatsapp-configs/{config['id']}", wa_org.headers
    created = await api.post(f"{base}/instance", headers=h)
    assert created.status_code == 201, created.text
    assert created.json()["instance"]["qr_code"].startswith("data:image/png;base64,")
    qr = await api.get(f"{base}/qrcode", headers=h)
    assert qr.status_code == 200 and qr.json()["qr_code"].startswith("data:image/png")
    state = await api.get(f"{base}/connection", headers=h)
    assert state.status_code == 200 and state.json()["status"] != "connected"
    sim.scan(config["instance_name"], "5511977776666", "Acme Evo")
    await sim.idle()
    state = await api.get(f"{base}/connection", headers=h)
    assert state.json()["status"] == "connected", state.text
    assert (await api.get(f"{base}/qrcode", headers=h)).status_code == 409
    other = await register_org(api, "Other Evo")
    assert (await api.get(f"{base}/qrcode", headers=other.headers)).status_code == 404
    assert (await api.get(f"{base}/connection", headers=other.headers)).status_code == 404


async def test_a_cloud_number_has_no_qr_code(
    api: httpx.AsyncClient, wa_org: Org, sim: Simulator, wa_url: str
) -> None:
    cloud = (await create_official(api, wa_org, sim, wa_url)).config
    for path in ("qrcode", "connection"):
        resp = await api.get(f"/v1/whatsapp-configs/{cloud['id']}/{path}", headers=wa_org.headers)
        assert resp.status_code == 409, resp.text
    assert (
        await api.post(f"/v1/whatsapp-configs/{cloud['id']}/instance", headers=wa_org.headers)
    ).status_code == 409


async def test_instance_routes_are_tenant_scoped(
    api: httpx.AsyncClient, wa_org: Org, sim: Simulator
) -> None:
    assert (
        await api.get("/api/v1/whatsapp/instance/nope/status", headers=wa_org.headers)
    ).status_code == 404
    resp = await api.post(
        "/api/v1/whatsapp/instance/create", json={"instance_name": "x1"}, headers=wa_org.headers
    )
    assert resp.status_code == 422 and resp.json()["details"]["field"] == "config_id"


async def test_ssrf_guard_refuses_private_targets() -> None:
    for url in (
        "http://127.0.0.1:8080",
        "http://10.1.2.3",
        "http://169.254.169.254/latest",
        "http://[::1]/",
        "http://localhost/",
    ):
        with pytest.raises(UnsafeUrl):
            await check_url(url, allow_private=False)
    with pytest.raises(UnsafeUrl):
        await check_url("file:///etc/passwd", allow_private=True)
    await check_url("http://127.0.0.1:8080", allow_private=True)


def test_secret_box_round_trip_and_wrong_key() -> None:
    box = SecretBox("some-secret-key")
    token = box.encrypt("EAA-secret")
    assert "EAA-secret" not in token and box.decrypt(token) == "EAA-secret"
    with pytest.raises(SecretUnreadable):
        SecretBox("another-key").decrypt(token)
