"""Outgoing webhook deliveries per second from one worker process to a local receiver.

Creates a fresh PostgreSQL database, starts `pytake serve` (loops off) to register an
organisation and one endpoint through the API, then queues `--events` events with
`pytake.events.record` (`--per-tx` per transaction; each writes its outbox row and its delivery
row). Then one `pytake worker` starts (its own process) and delivers them to an aiohttp receiver
in this process, which checks every signature with the /v1 document's `validate_webhook` and
counts distinct X-PyTake-Delivery ids. Figure: deliveries/s from the first to the last request
the receiver saw; checks: every delivery row `delivered`, each id received exactly once.

    .venv/bin/python bench/webhooks.py --events 10000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
from aiohttp import web
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pytake.db import create_engine, create_session_factory, unit_of_work  # noqa: E402
from pytake.events import record  # noqa: E402
from pytake.models import WebhookDelivery  # noqa: E402


def validate_webhook(payload: str, signature: str, secret: str) -> bool:
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    received = signature.replace("sha256=", "")
    return hmac.compare_digest(expected, received)


def environment(args: argparse.Namespace) -> dict[str, str]:
    subprocess.run(
        [
            "psql",
            "-q",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-c",
            f"DROP DATABASE IF EXISTS {args.db}",
            "-c",
            f"CREATE DATABASE {args.db}",
        ],
        check=True,
    )
    return {
        **os.environ,
        "PYTAKE_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{args.db}",
        "PYTAKE_RATE_LIMIT_ENABLED": "false",
        "PYTAKE_RUN_BACKGROUND_LOOPS": "false",
        "PYTAKE_ALLOW_PRIVATE_URLS": "true",
        "PYTAKE_SECRET_KEY": "bench-webhooks-" + "x" * 40,
        "PYTAKE_LOG_LEVEL": "WARNING",
    }


def spawn(env: dict[str, str], *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(ROOT / ".venv/bin/pytake"), *argv], env=env)


async def setup(base: str, hook_url: str) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for _ in range(200):
            try:
                if (await client.get("/health")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        reg = await client.post(
            "/api/v1/auth/register",
            json={
                "email": f"wh-{uuid.uuid4().hex[:8]}@example.com",
                "password": "x" * 12,
                "name": "B",
            },
        )
        reg.raise_for_status()
        headers = {"Authorization": f"Bearer {reg.json()['token']}"}
        hook = await client.post(
            "/v1/webhooks", json={"url": hook_url, "events": ["contact.updated"]}, headers=headers
        )
        hook.raise_for_status()
        return reg.json()["user"]["organization_id"], hook.json()["secret"]


async def main(args: argparse.Namespace) -> None:
    seen: Counter[str] = Counter()
    times: list[float] = []
    bad = 0
    secret = ""
    all_seen = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        nonlocal bad
        body = await request.read()
        if not validate_webhook(body.decode(), request.headers["X-PyTake-Signature"], secret):
            bad += 1
        seen[request.headers["X-PyTake-Delivery"]] += 1
        times.append(time.perf_counter())
        if len(seen) == args.events:
            all_seen.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    env = environment(args)
    server = spawn(env, "serve", "--port", str(args.port), "--host", "127.0.0.1")
    try:
        org_id, secret = await setup(
            f"http://127.0.0.1:{args.port}", f"http://127.0.0.1:{port}/hook"
        )
    finally:
        server.terminate()
        server.wait(10)

    engine = create_engine(env["PYTAKE_DATABASE_URL"])
    factory = create_session_factory(engine)
    for start in range(0, args.events, args.per_tx):
        async with unit_of_work(factory) as session:
            for n in range(start, min(start + args.per_tx, args.events)):
                await record(session, uuid.UUID(org_id), "contact.updated", {"contact": {"n": n}})
    print(f"queued {args.events} deliveries")

    print(f"worker starts ({load()})")
    worker = spawn(env, "worker")
    profiler = start_profiler(worker.pid, args.profile) if args.profile else None
    try:
        await all_seen.wait()
        await asyncio.sleep(1)  # let the last outcomes be written
        worker_cpu = cpu_seconds(worker.pid)
    finally:
        if profiler is not None:
            stop_profiler(profiler)
        worker.terminate()
        worker.wait(10)
    ended = load()
    async with factory() as session:
        delivered = await session.scalar(
            select(func.count()).where(WebhookDelivery.status == "delivered")
        )
    await engine.dispose()
    await runner.cleanup()
    elapsed = times[-1] - times[0]
    print(
        f"{len(times)} requests, {len(seen)} distinct deliveries, {bad} bad signatures, "
        f"{delivered} rows delivered, max received per id {max(seen.values())}"
    )
    print(f"deliveries/s (one worker, first to last request): {len(times) / elapsed:.0f}")
    print(
        f"worker CPU (start-up included): {worker_cpu:.1f} s, "
        f"{1000 * worker_cpu / len(times):.2f} ms per delivery; {ended}"
    )


def start_profiler(pid: int, output: str) -> subprocess.Popen[bytes]:
    spy = str(ROOT / ".venv/bin/py-spy")
    return subprocess.Popen(
        [spy, "record", "--nonblocking", "--format", "raw", "--rate", "200",
         "--pid", str(pid), "--output", output],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stop_profiler(profiler: subprocess.Popen[bytes]) -> None:
    profiler.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
    profiler.wait(30)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--per-tx", type=int, default=100)
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--db", default="pytake_bench_webhooks", help="PostgreSQL database")
    parser.add_argument("--profile", help="py-spy raw profile of the worker to this file")
    arguments = parser.parse_args()
    arguments.port = arguments.port or free_port()
    asyncio.run(main(arguments))
