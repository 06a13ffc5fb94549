"""SIGTERM to a `pytake worker` with webhook deliveries in flight to a slow receiver (issue 23).

On a fresh PostgreSQL database (and Redis): an in-process app (loops off) registers an
organisation and one endpoint, and `--events` events are recorded in one transaction. A
`pytake worker` starts (`--batch` deliveries per claim, `--concurrency` requests at a time:
by default one claim takes all 30 and 7 are in flight, issue 23's scenario); once the receiver
holds that many requests (each answered after `--delay` s), the worker gets SIGTERM. Figures: how long it took
to exit, what it had recorded (delivered / left delivering under the lease), then how long a
second worker took until every delivery was delivered and how many X-PyTake-Delivery ids the
receiver saw more than once.

    .venv/bin/python bench/shutdown.py                          # this tree
    .venv/bin/python bench/shutdown.py --worker-src /tmp/old/src  # both workers from older code
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from aiohttp import web
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pytake.app import create_app  # noqa: E402
from pytake.config import Settings  # noqa: E402
from pytake.db import unit_of_work  # noqa: E402
from pytake.events import DomainEvent, record_many  # noqa: E402
from pytake.models import WebhookDelivery  # noqa: E402

SECRET = "bench-shutdown-" + "x" * 40


def fresh_database(name: str) -> str:
    subprocess.run(
        ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres",
         "-c", f"DROP DATABASE IF EXISTS {name}", "-c", f"CREATE DATABASE {name}"],
        check=True,
    )  # fmt: skip
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def worker_env(args: argparse.Namespace, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTAKE_")}
    env.update(
        PYTAKE_DATABASE_URL=database_url,
        PYTAKE_REDIS_URL=args.redis,
        # Older code has no redis_namespace: one channel named in full for every process.
        PYTAKE_EVENTS_CHANNEL="pytake-bench-shutdown:events",
        PYTAKE_SECRET_KEY=SECRET,
        PYTAKE_ALLOW_PRIVATE_URLS="true",
        PYTAKE_WEBHOOK_BATCH_SIZE=str(args.batch),
        PYTAKE_WEBHOOK_CONCURRENCY=str(args.concurrency),
        PYTAKE_TEMPLATE_SYNC_INTERVAL_SECONDS="0",
        PYTAKE_LOG_LEVEL="WARNING",
    )
    if args.worker_src:
        env["PYTHONPATH"] = str(Path(args.worker_src).resolve())
    return env


def spawn_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    code = "from pytake.cli import app; app()"
    return subprocess.Popen([sys.executable, "-c", code, "worker"], env=env)


async def states(app: object) -> Counter[str]:
    async with app.state.session_factory() as session:  # type: ignore[attr-defined]
        rows = await session.execute(
            select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
        )
        return Counter({status: n for status, n in rows.all()})


async def until(check: Callable[[], Awaitable[bool]], within: float, every: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"not reached within {within} s")
        await asyncio.sleep(every)


async def main(args: argparse.Namespace) -> None:
    seen: Counter[str] = Counter()
    in_flight = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal in_flight
        seen[request.headers["X-PyTake-Delivery"]] += 1
        in_flight += 1
        try:
            await asyncio.sleep(args.delay)
        finally:
            in_flight -= 1
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", handle)
    runner = web.AppRunner(receiver, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"  # type: ignore[union-attr]

    database_url = fresh_database(args.db)
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        redis_url=args.redis,
        events_channel="pytake-bench-shutdown:events",
        secret_key=SECRET,
        allow_private_urls=True,
        rate_limit_enabled=False,
        run_background_loops=False,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            reg = await client.post(
                "/api/v1/auth/register",
                json={"email": f"b-{uuid.uuid4().hex[:8]}@example.com", "password": "x" * 12,
                      "name": "B"},
            )  # fmt: skip
            reg.raise_for_status()
            org_id = reg.json()["user"]["organization_id"]
            headers = {"Authorization": f"Bearer {reg.json()['token']}"}
            hook = await client.post(
                "/v1/webhooks", json={"url": hook_url, "events": ["contact.updated"]},
                headers=headers,
            )  # fmt: skip
            hook.raise_for_status()
        async with unit_of_work(app.state.session_factory) as session:
            await record_many(
                session,
                [DomainEvent(uuid.UUID(org_id), "contact.updated", {"n": n})
                 for n in range(args.events)],
            )  # fmt: skip
        env = worker_env(args, database_url)
        print(f"{args.events} deliveries queued; worker 1 starts ({load()})")
        first = spawn_worker(env)

        async def batch_in_flight() -> bool:
            return in_flight >= min(args.batch, args.concurrency, args.events)

        await until(batch_in_flight, within=120)
        held = in_flight
        signalled = time.monotonic()
        first.send_signal(signal.SIGTERM)
        while first.poll() is None:  # noqa: ASYNC110 - a child process, polled
            await asyncio.sleep(0.01)
        exited = time.monotonic() - signalled
        after_first = await states(app)
        print(
            f"SIGTERM with {held} in flight: exit code {first.returncode} after {exited:.2f} s; "
            f"rows then: {dict(after_first)}"
        )
        second = spawn_worker(env)
        try:

            async def all_delivered() -> bool:
                return (await states(app))["delivered"] == args.events

            await until(all_delivered, within=args.lease_wait, every=0.1)
            done = time.monotonic() - signalled
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(60)
    await runner.cleanup()
    twice = sorted(c for c in seen.values() if c > 1)
    print(
        f"all {args.events} delivered {done:.1f} s after the SIGTERM; receiver: {len(seen)} ids, "
        f"{len(twice)} received more than once; {load()}"
    )


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--batch", type=int, default=100, help="deliveries per claim")
    parser.add_argument("--concurrency", type=int, default=7, help="requests in flight")
    parser.add_argument("--delay", type=float, default=2.0, help="the receiver's answer time")
    parser.add_argument("--db", default="pytake_bench_shutdown")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--worker-src", help="import both workers' PyTake from here (A/B)")
    parser.add_argument(
        "--lease-wait", type=float, default=180, help="how long the second worker may take"
    )
    asyncio.run(main(parser.parse_args()))
