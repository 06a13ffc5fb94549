"""Settings from the environment, the production secret guard, and the operator's super admin."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from pydantic import ValidationError

from pytake.admin import create_admin
from pytake.config import DEFAULT_SECRET_KEY, Settings
from tests.conftest import PASSWORD, Org, add_user


def test_settings_come_from_pytake_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTAKE_DATABASE_URL", "postgresql+asyncpg://u@db:5432/p")
    monkeypatch.setenv("PYTAKE_REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("PYTAKE_ALLOW_SIGNUP", "false")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == "postgresql+asyncpg://u@db:5432/p"
    assert settings.redis_url == "redis://cache:6379/1"
    assert settings.allow_signup is False
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)


@pytest.mark.parametrize(
    ("values", "channel"),
    [
        ({}, "pytake:events"),
        ({"redis_url": "redis://127.0.0.1:6379/0"}, "pytake:events"),
        ({"redis_url": "redis://127.0.0.1:6379/3"}, "pytake:events:db3"),
        ({"redis_url": "redis://h:6379?db=5", "redis_namespace": "acme"}, "acme:events:db5"),
        ({"redis_namespace": "acme", "events_channel": "legacy:events"}, "legacy:events"),
    ],
)
def test_the_events_channel_is_the_deployments_own(values: dict[str, str], channel: str) -> None:
    # Redis pub/sub channels are global across database numbers: two deployments on one Redis
    # are kept apart by their namespace, and by their database number as well.
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]
    assert settings.events_channel_name == channel
    assert settings.redis_client_name("events").startswith(settings.redis_namespace + ":")


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(ValidationError, match="PYTAKE_SECRET_KEY"):
        Settings(_env_file=None, env="production")  # type: ignore[call-arg]
    ok = Settings(_env_file=None, env="production", secret_key="a-real-secret-0123456789abcdef")  # type: ignore[call-arg]
    assert ok.env == "production"


def test_default_secret_outside_development_warns_loudly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pytake.config")
    Settings(_env_file=None, env="development").warn_if_insecure()  # type: ignore[call-arg]
    assert not caplog.records
    Settings(_env_file=None, env="test", secret_key=DEFAULT_SECRET_KEY).warn_if_insecure()  # type: ignore[call-arg]
    assert "PYTAKE_SECRET_KEY" in caplog.text


async def test_super_admin_sees_every_organisation(
    client: httpx.AsyncClient,
    make_settings,
    org: Org,  # type: ignore[no-untyped-def]
) -> None:
    email = f"root-{uuid.uuid4().hex[:8]}@example.com"
    await create_admin(make_settings(), email, PASSWORD, "Root", "Operators", super_admin=True)
    login = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.json()["user"]["role"] == "super_admin"
    root = {"Authorization": f"Bearer {login.json()['access_token']}"}

    agent_id, _ = await add_user(client, org, "agent")
    resp = await client.get(f"/v1/users/{agent_id}", headers=root)
    assert resp.status_code == 200
    assert resp.json()["organization_id"] == org.id
    # An org admin of the operators' organisation would not see it; the super admin does.
    listed = await client.get("/v1/users?limit=100&role=agent", headers=root)
    assert agent_id in [u["id"] for u in listed.json()["data"]]
