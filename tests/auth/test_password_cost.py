"""Argon2's cost comes from the settings: new hashes are made at it, a stored hash made at
another cost still signs in and is made again at the current one, and production refuses a
cost below OWASP's floor."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import select

from pytake.config import Settings
from pytake.models import User
from tests.conftest import PASSWORD, client_for

SECRET = "a-real-secret-0123456789abcdef"


async def _stored_hash(app: FastAPI, email: str) -> str:
    async with app.state.session_factory() as session:
        stored = await session.scalar(select(User.password_hash).where(User.email == email))
    assert stored is not None
    return stored


async def _sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> int:
    resp = await client.post("/v1/auth/login", json={"email": email, "password": password})
    return resp.status_code


async def test_a_hash_made_at_another_cost_signs_in_and_is_made_again_at_this_one(
    app: FastAPI,
    client: httpx.AsyncClient,
    start_app: Callable[[Settings], Awaitable[FastAPI]],
    make_settings: Callable[..., Settings],
) -> None:
    email = f"cost-{uuid.uuid4().hex[:10]}@example.com"
    resp = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Cost"}
    )
    assert resp.status_code == 201, resp.text
    assert "$m=8,t=1,p=1$" in await _stored_hash(app, email)  # the suite's (cheap) cost

    # The operator raises the cost: the old hash still signs in, and is stored again at it.
    dearer = await start_app(
        make_settings(
            password_hash_time_cost=2, password_hash_memory_kib=64, password_hash_parallelism=2
        )
    )
    async with client_for(dearer) as other:
        assert await _sign_in(other, email, "not-the-password") == 401
        assert "$m=8,t=1,p=1$" in await _stored_hash(app, email)  # a failure changes nothing
        assert await _sign_in(other, email) == 200
        assert "$m=64,t=2,p=2$" in await _stored_hash(app, email)
        assert await _sign_in(other, email) == 200  # made once, not at every sign-in

    # Back at the first cost, the same: nothing is locked out by a change of cost.
    assert await _sign_in(client, email) == 200
    assert "$m=8,t=1,p=1$" in await _stored_hash(app, email)


def test_production_refuses_a_cost_below_owasps_floor() -> None:
    production = {"env": "production", "secret_key": SECRET}
    assert Settings(_env_file=None, **production).password_hash_memory_kib == 64 * 1024  # type: ignore[call-arg, arg-type]
    for weak in (
        {"password_hash_memory_kib": 8, "password_hash_parallelism": 1},
        {"password_hash_memory_kib": 19 * 1024, "password_hash_time_cost": 1},
    ):
        with pytest.raises(ValidationError, match="PYTAKE_PASSWORD_HASH"):
            Settings(_env_file=None, **production, **weak)  # type: ignore[call-arg, arg-type]
    floor = Settings(
        _env_file=None,  # type: ignore[call-arg]
        **production,  # type: ignore[arg-type]
        password_hash_memory_kib=19 * 1024,
        password_hash_time_cost=2,
        password_hash_parallelism=1,
    )
    assert floor.password_hash_memory_kib == 19 * 1024
    # Outside production the cost is the operator's (the test suite runs at the minimum)...
    assert Settings(_env_file=None, password_hash_memory_kib=8, password_hash_parallelism=1)  # type: ignore[call-arg]
    # ...but Argon2's own minimum, 8 KiB per lane, holds everywhere, named as the setting.
    with pytest.raises(ValidationError, match="PYTAKE_PASSWORD_HASH_MEMORY_KIB"):
        Settings(_env_file=None, password_hash_memory_kib=16, password_hash_parallelism=4)  # type: ignore[call-arg]
