"""WebSocket fan-out: many authenticated connections on one `pytake serve` process, events at a
steady rate, latency from commit to receipt, and the server's memory per connection.

The server is `pytake serve` in a child process (PostgreSQL, Redis for the bus, loops off). This
process is the producer and all the clients: it commits events with `pytake.events.record` on
its own engine (its bus publishes them on Redis after commit, as a second `serve` or a worker
would), and its sockets note when each event arrives. Commit time and receipt time are taken
on this process's monotonic clock, so latency = receipt - end of the commit.

Connections are spread over organisations (`--orgs`, default 200 × 10 connections) and each event
goes to one organisation chosen round-robin, so every event is delivered to `--connections /
--orgs` sockets. Memory per connection = (server RSS with all connections authenticated - RSS
before connecting) / connections.

    .venv/bin/python bench/realtime.py --connections 2000 --rate 500 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pytake.config import Settings  # noqa: E402
from pytake.db import create_engine, create_session_factory, unit_of_work  # noqa: E402
from pytake.events import record  # noqa: E402
from pytake.worker.runtime import start_runtime  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def wait_healthy(base: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                if (await client.get(base + "/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


async def register(base: str, n: int) -> list[tuple[str, str]]:
    orgs = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for i in range(n):
            resp = await client.post(
                "/api/v1/auth/register",
                json={
                    "email": f"b{i}-{uuid.uuid4().hex[:8]}@example.com",
                    "password": "x" * 12,
                    "name": f"O{i}",
                },
            )
            resp.raise_for_status()
            body = resp.json()
            orgs.append((body["user"]["organization_id"], body["token"]))
    return orgs


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
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
    env = {
        **os.environ,
        "PYTAKE_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{args.db}",
        "PYTAKE_REDIS_URL": args.redis,
        "PYTAKE_RATE_LIMIT_ENABLED": "false",
        "PYTAKE_RUN_BACKGROUND_LOOPS": "false",
        "PYTAKE_SECRET_KEY": "bench-realtime-" + "x" * 40,
        "PYTAKE_EVENTS_CHANNEL": "pytake:bench:" + uuid.uuid4().hex[:6],
        "PYTAKE_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/pytake"), "serve", "--port", str(args.port), "--host", "127.0.0.1"],
        env=env,
    )
    return server, env


async def main(args: argparse.Namespace) -> None:
    server, env = start_server(args)
    base = f"http://127.0.0.1:{args.port}"
    try:
        await wait_healthy(base)
        await run(args, base, server.pid, env)
    finally:
        server.terminate()
        server.wait(10)


async def run(args: argparse.Namespace, base: str, pid: int, env: dict[str, str]) -> None:
    orgs = await register(base, args.orgs)
    await asyncio.sleep(1)
    before = rss_kib(pid)
    per_org = args.connections // args.orgs
    received: dict[int, list[float]] = {}

    async def client(token: str, ready: asyncio.Event) -> None:
        async with connect(base.replace("http", "ws") + "/ws", max_queue=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(await ws.recv())["type"] == "auth_ok"
            ready.set()
            async for raw in ws:
                now = time.perf_counter()
                seq = json.loads(raw)["data"]["seq"]
                received.setdefault(seq, []).append(now)

    tasks, readies = [], []
    for _org_id, token in orgs:
        for _ in range(per_org):
            ready = asyncio.Event()
            readies.append(ready)
            tasks.append(asyncio.create_task(client(token, ready)))
            await asyncio.sleep(0)  # don't stampede the accept queue
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
    await asyncio.sleep(2)
    after = rss_kib(pid)
    print(f"connections: {len(readies)} authenticated over {args.orgs} organisations")
    print(
        f"server RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after "
        f"→ {(after - before) / len(readies):.1f} KiB per connection"
    )

    settings = Settings(
        _env_file=None,
        database_url=env["PYTAKE_DATABASE_URL"],
        redis_url=args.redis,
        events_channel=env["PYTAKE_EVENTS_CHANNEL"],
    )
    engine = create_engine(settings.database_url)
    factory = create_session_factory(engine)
    runtime = await start_runtime(settings, engine, factory, run_loops=False)
    committed: dict[int, float] = {}
    total = args.rate * args.seconds
    start = time.perf_counter()

    async def produce(seq: int) -> None:
        async with unit_of_work(factory) as session:
            await record(
                session, uuid.UUID(orgs[seq % len(orgs)][0]), "contact.updated", {"seq": seq}
            )
        committed[seq] = time.perf_counter()

    producers = []
    for seq in range(total):  # each event committed on schedule, concurrently with the others
        delay = start + seq / args.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        producers.append(asyncio.create_task(produce(seq)))
    await asyncio.gather(*producers)
    produced_in = time.perf_counter() - start
    await asyncio.sleep(3)
    latencies = sorted(
        (t - committed[seq]) * 1000 for seq, times in received.items() for t in times
    )
    frames = len(latencies)
    expected = total * per_org
    q = statistics.quantiles(latencies, n=100)
    print(
        f"events: {total} in {produced_in:.1f} s ({total / produced_in:.0f}/s committed), "
        f"frames received {frames}/{expected}"
    )
    print(f"commit → receipt: p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {latencies[-1]:.1f} ms")
    await runtime.stop()
    await engine.dispose()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--orgs", type=int, default=200)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--db", default="pytake_bench_realtime", help="PostgreSQL database")
    arguments = parser.parse_args()
    arguments.port = arguments.port or free_port()
    asyncio.run(main(arguments))
