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
from typing import Any

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


def read_json(path: str) -> Any:
    return json.loads(Path(path).read_text())


def write_json(path: str, value: Any) -> None:
    Path(path).write_text(json.dumps(value))


async def produce(args: argparse.Namespace) -> None:
    """The producer process: commit events at the rate, note each commit's end."""
    settings = Settings(_env_file=None)  # PYTAKE_* from the environment the parent passed
    orgs = read_json(args.orgs_file)
    engine = create_engine(settings.database_url, pool_size=50, max_overflow=0)
    factory = create_session_factory(engine)
    runtime = await start_runtime(settings, engine, factory, run_loops=False)
    committed: dict[int, float] = {}

    async def one(seq: int) -> None:
        async with unit_of_work(factory) as session:
            org = uuid.UUID(orgs[seq % len(orgs)])
            await record(session, org, "contact.updated", {"seq": seq})
        committed[seq] = time.perf_counter()

    start = time.perf_counter()
    pending = []
    for seq in range(args.rate * args.seconds):  # on schedule, concurrently with the others
        delay = start + seq / args.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(one(seq)))
    await asyncio.gather(*pending)
    elapsed = time.perf_counter() - start
    await runtime.stop()
    await engine.dispose()
    write_json(args.produce, {"seconds": elapsed, "committed": committed})


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

    opening = asyncio.Semaphore(50)  # connect in waves, as clients of a real site would

    async def client(token: str, ready: asyncio.Event) -> None:
        async with opening:
            ws = await connect(base.replace("http", "ws") + "/ws", max_queue=None, open_timeout=60)
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(await ws.recv())["type"] == "auth_ok"
        ready.set()
        async with ws:
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
    opened = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 300)
    print(f"opened and authenticated in {time.perf_counter() - opened:.1f} s")
    await asyncio.sleep(2)
    after = rss_kib(pid)
    print(f"connections: {len(readies)} authenticated over {args.orgs} organisations")
    print(
        f"server RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after "
        f"→ {(after - before) / len(readies):.1f} KiB per connection"
    )

    # The producer is its own process (as a second server or a worker would be); CLOCK_MONOTONIC
    # (perf_counter) is shared by the processes of one machine, so times compare directly.
    out = Path(f"/tmp/pytake_bench_commits_{os.getpid()}.json")
    orgs_file = out.with_suffix(".orgs")
    write_json(str(orgs_file), [o for o, _ in orgs])
    total = args.rate * args.seconds
    producer = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--produce",
        str(out),
        "--orgs-file",
        str(orgs_file),
        "--rate",
        str(args.rate),
        "--seconds",
        str(args.seconds),
        env=env,
    )
    await producer.wait()
    produced = read_json(str(out))
    committed = {int(k): v for k, v in produced["committed"].items()}
    produced_in = produced["seconds"]
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
    parser.add_argument("--produce", help=argparse.SUPPRESS)
    parser.add_argument("--orgs-file", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.produce:
        asyncio.run(produce(arguments))
    else:
        arguments.port = arguments.port or free_port()
        asyncio.run(main(arguments))
