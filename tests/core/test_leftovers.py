"""A run that leaves a PostgreSQL connection or a Redis client behind fails, naming it
(tests/leftovers.py), checked in a pytest run of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """
import os

from tests.leftovers import LEFTOVERS

LEFTOVERS.redis = (os.environ["LEAK_REDIS_URL"], "pytake-leak-check:")
"""

LEAKING_TESTS = """
import os
import uuid

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from tests.leftovers import drop_database

KEEP = []


async def test_leaves_a_redis_client_open() -> None:
    client = Redis.from_url(os.environ["LEAK_REDIS_URL"], client_name="pytake-leak-check:app")
    await client.ping()
    KEEP.append(client)


async def test_leaves_a_connection_to_its_database() -> None:
    url = make_url(os.environ["LEAK_DATABASE_URL"])
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    name = f"pytake_leak_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    leaked = await asyncpg.connect(url.set(drivername="postgresql", database=name)
                                   .render_as_string(False))
    KEEP.append(leaked)
    await drop_database(conn, name, "test_leaves_a_connection_to_its_database")
    await conn.close()
"""

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
addopts = -p tests.leftovers -p no:cacheprovider
"""


@pytest.mark.skipif(
    not (TEST_DATABASE_URL and TEST_REDIS_URL), reason="checks PostgreSQL and Redis leftovers"
)
# In one process, and on a pytest-xdist worker (as dev.py runs the suite): there, what the
# worker found must reach the controller, which alone reports and sets the exit status.
@pytest.mark.parametrize("workers", [[], ["-n", "1"]], ids=["in-process", "xdist"])
def test_a_run_leaving_connections_behind_fails_and_names_them(
    tmp_path: Path, workers: list[str]
) -> None:
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_leaking.py").write_text(textwrap.dedent(LEAKING_TESTS))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LEAK_REDIS_URL": str(TEST_REDIS_URL),
        "LEAK_DATABASE_URL": str(TEST_DATABASE_URL),
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-c", "pytest.ini", "--rootdir", ".", *workers],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "2 passed" in out and "connections left behind by the test run" in out, out
    assert "Redis: client pytake-leak-check:app" in out, out
    assert "outlived test_leaves_a_connection_to_its_database" in out, out
