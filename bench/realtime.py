"""WebSocket fan-out: many authenticated connections on one `pytake serve` process, events at a
steady rate, latency from commit to receipt, memory per connection, and where the CPU goes.

Four processes of ours run on this machine, plus PostgreSQL and Redis:

- **server**: `pytake serve` (PostgreSQL, Redis for the bus, background loops off), the process
  under test;
- **clients**: child processes (`--client-procs`, default 1) holding the sockets (a minimal
  WebSocket client on an asyncio protocol, on uvloop; it offers permessage-deflate as browsers
  do unless `--no-deflate`), noting when each frame's bytes arrive;
- **producer**: one child process committing `contact.updated` events with
  `pytake.events.record_many`; its bus publishes them on Redis after commit, as a second `serve`
  or a worker would. It is a group-commit writer, like the Meta webhook ingest's
  (`message/writer.py`): events fall due on a fixed schedule (`--rate`), a writer takes every
  event waiting at that moment (at most `--max-batch`) and commits them in one transaction, with
  at most `--writers` transactions in flight (default 2, as the ingest writer keeps). `--max-batch
  1` is one transaction per event.
- the bench itself, which only orchestrates and measures.

Connections are spread over organisations (`--orgs`, default 200 × 10 connections) and each event
goes to one organisation chosen round-robin, so every event is delivered to `--connections /
--orgs` sockets. Latency = receipt on a socket - end of the producer's commit, both on
CLOCK_MONOTONIC (`time.perf_counter`), which the processes of one machine share. "due → commit"
is the producer's own wait: from the moment an event fell due to the end of its transaction.
Memory per connection = (server RSS with all connections authenticated - RSS before) /
connections. CPU = user + system time of each process over the event phase (for PostgreSQL,
the backends of the bench database and the WAL writer).

    .venv/bin/python bench/realtime.py --connections 2000 --rate 500 --seconds 20

`--profile DIR` also samples server, producer and clients with py-spy (raw collapsed stacks,
summarised with `--summarise FILE`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
import zlib
from pathlib import Path
from typing import Any, cast

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pytake.config import Settings  # noqa: E402
from pytake.db import create_engine, create_session_factory, unit_of_work  # noqa: E402
from pytake.events import DomainEvent, record_many  # noqa: E402
from pytake.worker.runtime import start_runtime  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


# --- measuring processes ------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0.0
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def pids_matching(*needles: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(n in cmdline for n in needles):
            found.append(int(entry.name))
    return found


class CpuMeter:
    """CPU seconds each component spent between `start()` and `stop()`."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.fixed: dict[str, int] = {}
        self.begin: dict[str, dict[int, tuple[float, float]]] = {}
        self.spent: dict[str, tuple[float, float]] = {}

    def groups(self) -> dict[str, list[int]]:
        groups = {name: [pid] for name, pid in self.fixed.items()}
        groups["postgresql"] = pids_matching(f"postgres {self.db} ", "walwriter")
        groups["redis"] = pids_matching("redis-server")
        return groups

    def snapshot(self) -> dict[str, dict[int, tuple[float, float]]]:
        return {name: {p: cpu_seconds(p) for p in pids} for name, pids in self.groups().items()}

    def start(self) -> None:
        self.started = time.perf_counter()
        self.begin = self.snapshot()
        self.machine_begin = machine_ticks()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self.started
        self.machine = [b - a for a, b in zip(self.machine_begin, machine_ticks(), strict=False)]
        for name, now in self.snapshot().items():
            before = self.begin.get(name, {})
            # A backend that appeared meanwhile counts from zero.
            user = sum(u - before.get(p, (0.0, 0.0))[0] for p, (u, _) in now.items())
            system = sum(k - before.get(p, (0.0, 0.0))[1] for p, (_, k) in now.items())
            self.spent[name] = (user, system)

    def table(self) -> str:
        lines = ["| process | CPU s (user + system) | % of one core |", "|---|---|---|"]
        for name, (user, system) in self.spent.items():
            spent = user + system
            lines.append(
                f"| {name} | {spent:.1f} ({user:.1f} + {system:.1f}) "
                f"| {100 * spent / self.seconds:.0f} % |"
            )
        total = sum(u + k for u, k in self.spent.values())
        lines.append(f"| total | {total:.1f} | {100 * total / self.seconds:.0f} % |")
        # The whole machine over the same window: what others took, and the hypervisor.
        user, nice, system, idle, iowait, irq, softirq, steal = self.machine[:8]
        busy = (user + nice + system + irq + softirq) / TICK
        lines.append(
            f"| machine: busy (all processes) | {busy:.1f} | {100 * busy / self.seconds:.0f} % |"
        )
        lines.append(
            f"| machine: steal | {steal / TICK:.1f} | {100 * steal / TICK / self.seconds:.0f} % |"
        )
        lines.append(
            f"| machine: idle | {(idle + iowait) / TICK:.1f} "
            f"| {100 * (idle + iowait) / TICK / self.seconds:.0f} % |"
        )
        return "\n".join(lines)


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_ticks() -> list[int]:
    """/proc/stat's first line: user nice system idle iowait irq softirq steal ..."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


async def watch_lag(lags: list[tuple[float, float]]) -> None:
    """How late a 10 ms sleep wakes up: the event loop's backlog (or the CPU it was denied)."""
    while True:
        asked = time.perf_counter()
        await asyncio.sleep(0.01)
        woke = time.perf_counter()
        lags.append((woke, (woke - asked - 0.01) * 1000))


# --- the server and its organisations -----------------------------------------------------------


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


def read_json(path: str | Path) -> Any:
    return orjson.loads(Path(path).read_bytes())


def write_json(path: str | Path, value: Any) -> None:
    Path(path).write_bytes(orjson.dumps(value))


# --- the producer process -----------------------------------------------------------------------


async def produce(args: argparse.Namespace) -> None:
    """Commit events on schedule with a group-commit writer; note when each commit ended."""
    settings = Settings(_env_file=None)  # PYTAKE_* from the environment the parent passed
    orgs = [uuid.UUID(o) for o in read_json(args.orgs_file)]
    engine = create_engine(settings.database_url, pool_size=args.writers + 2, max_overflow=0)
    factory = create_session_factory(engine)
    runtime = await start_runtime(settings, engine, factory, run_loops=False)
    total = args.rate * args.seconds
    due_at = [0.0] * total
    committed = [0.0] * total
    waiting: collections.deque[int] = collections.deque()
    in_flight = 0
    batches: list[int] = []

    async def drain() -> None:
        nonlocal in_flight
        try:
            while waiting:
                batch = [waiting.popleft() for _ in range(min(args.max_batch, len(waiting)))]
                events = [
                    DomainEvent(orgs[seq % len(orgs)], "contact.updated", {"seq": seq})
                    for seq in batch
                ]
                async with unit_of_work(factory) as session:
                    await record_many(session, events)
                done = time.perf_counter()
                for seq in batch:
                    committed[seq] = done
                batches.append(len(batch))
        finally:
            in_flight -= 1

    lags: list[tuple[float, float]] = []
    watcher = asyncio.create_task(watch_lag(lags))
    print("started", flush=True)  # the CPU meters start now, after imports and connecting
    tasks = set()
    start = time.perf_counter()
    for seq in range(total):
        due_at[seq] = start + seq / args.rate
        delay = due_at[seq] - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        waiting.append(seq)
        if in_flight < args.writers:
            in_flight += 1
            task = asyncio.create_task(drain())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    write_json(
        args.produce,
        {
            "seconds": elapsed,
            "committed": committed,
            "waits": [(c - d) * 1000 for c, d in zip(committed, due_at, strict=True)],
            "batches": batches,
            "lag": [lag for _, lag in lags],
        },
    )
    watcher.cancel()
    # Stay up (with the database connections) until the parent has read the CPU meters.
    print("done", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await runtime.stop()
    await engine.dispose()


# --- the clients process ------------------------------------------------------------------------


class ClientSocket(asyncio.Protocol):
    """One WebSocket client, parsed by hand on a plain asyncio protocol.

    A library client costs a task wake-up, a timeout and a queue per message; 2,000 of them
    share the machine with the server, so the bench's own cost would be part of the figure.
    This handles exactly what the server sends: text frames (permessage-deflate when
    negotiated, as browsers do), pings (answered) and close. Frames are stamped when their
    bytes arrive.
    """

    def __init__(self, index: int, token: str, path: str, deflate: bool, note: Any) -> None:
        self.index = index
        self.token = token
        self.path = path
        self.deflate = deflate
        self.note = note
        self.buffer = bytearray()
        self.handshaken = False
        self.inflater: Any = None
        self.reset_inflater = False
        self.authenticated: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        key = base64.b64encode(os.urandom(16)).decode()
        offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if self.deflate else ""
        self.transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{offer}\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buffer += data
        if not self.handshaken and not self._handshake():
            return
        while (frame := self._next_frame()) is not None:
            self._handle(*frame, now)

    def _handshake(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).decode("latin-1").lower()
        del self.buffer[: end + 4]
        if not head.startswith("http/1.1 101"):
            self.authenticated.set_exception(RuntimeError(head.splitlines()[0]))
            return False
        if "permessage-deflate" in head:
            self.inflater = zlib.decompressobj(wbits=-15)
            self.reset_inflater = "server_no_context_takeover" in head
        self.handshaken = True
        self._send(0x1, orjson.dumps({"type": "auth", "token": self.token}))
        return True

    def _next_frame(self) -> tuple[int, bool, bytes] | None:
        buf = self.buffer
        if len(buf) < 2:
            return None
        length, start = buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, start = int.from_bytes(buf[2:4], "big"), 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, start = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < start + length:
            return None
        opcode, compressed = buf[0] & 0x0F, bool(buf[0] & 0x40)
        payload = bytes(buf[start : start + length])
        del buf[: start + length]
        return opcode, compressed, payload

    def _handle(self, opcode: int, compressed: bool, payload: bytes, now: float) -> None:
        if opcode == 0x9:
            self._send(0xA, payload)
            return
        if opcode == 0x8:
            self.transport.close()
            return
        if opcode != 0x1:
            return
        if compressed:
            payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
            if self.reset_inflater:
                self.inflater = zlib.decompressobj(wbits=-15)
        message = orjson.loads(payload)
        if not self.authenticated.done():
            if message.get("type") == "auth_ok":
                self.authenticated.set_result(None)
            else:
                self.authenticated.set_exception(RuntimeError(f"not authenticated: {message}"))
            return
        self.note((self.index, message["data"]["seq"], now))

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes([0x80 | opcode]) + size + mask + masked)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.authenticated.done():
            self.authenticated.set_exception(exc or ConnectionError("closed before auth_ok"))


async def hold_clients(args: argparse.Namespace) -> None:
    """Open and authenticate this process's share of the sockets; note each frame's arrival
    until told to stop."""
    every: list[str] = read_json(args.tokens_file)
    part, parts = (int(x) for x in args.part.split("/"))
    first = len(every) * part // parts
    tokens = every[first : len(every) * (part + 1) // parts]
    url = urllib.parse.urlsplit(args.ws_url)
    receipts: list[tuple[int, int, float]] = []
    lags: list[tuple[float, float]] = []
    loop = asyncio.get_running_loop()
    opening = asyncio.Semaphore(50)  # connect in waves, as clients of a real site would
    sockets: list[ClientSocket] = []

    async def open_one(index: int, token: str) -> None:
        async with opening:
            _, protocol = await loop.create_connection(
                lambda: ClientSocket(index, token, url.path, args.deflate, receipts.append),
                url.hostname,
                url.port,
            )
            sockets.append(protocol)
            await asyncio.wait_for(protocol.authenticated, 60)

    await asyncio.gather(*(open_one(first + i, t) for i, t in enumerate(tokens)))
    print("ready", flush=True)
    watcher = asyncio.create_task(watch_lag(lags))
    await loop.run_in_executor(None, sys.stdin.readline)
    watcher.cancel()
    write_json(args.clients, {"receipts": receipts, "lag": lags})
    for sock in sockets:
        sock.transport.abort()


# --- orchestration ------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    server, env = start_server(args)
    base = f"http://127.0.0.1:{args.port}"
    try:
        await wait_healthy(base)
        await run(args, base, server.pid, env)
    finally:
        server.terminate()
        server.wait(10)


def child(*argv: str) -> list[str]:
    return [sys.executable, __file__, *argv]


async def run(args: argparse.Namespace, base: str, pid: int, env: dict[str, str]) -> None:
    orgs = await register(base, args.orgs)
    per_org = args.connections // args.orgs
    scratch = Path(tempfile.mkdtemp(prefix="pytake_bench_realtime_"))
    write_json(scratch / "tokens.json", [token for _, token in orgs for _ in range(per_org)])
    write_json(scratch / "orgs.json", [org for org, _ in orgs])
    await asyncio.sleep(1)
    before = rss_kib(pid)

    opened = time.perf_counter()
    clients = [
        await open_clients(args, base, scratch, part, env) for part in range(args.client_procs)
    ]
    connections = per_org * args.orgs
    print(f"opened and authenticated {connections} in {time.perf_counter() - opened:.1f} s")
    await asyncio.sleep(2)
    after = rss_kib(pid)
    print(f"connections: {connections} authenticated over {args.orgs} organisations")
    print(
        f"server RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after "
        f"→ {(after - before) / connections:.1f} KiB per connection"
    )

    tap = RedisTap(args.redis, env["PYTAKE_EVENTS_CHANNEL"])
    await tap.start()
    meter = CpuMeter(args.db)
    meter.fixed = {"server": pid}
    meter.fixed.update({f"clients {n + 1}": c.pid for n, c in enumerate(clients)})
    print(f"events phase starts ({load()})")
    producer = await asyncio.create_subprocess_exec(
        *child(
            "--produce",
            str(scratch / "produced.json"),
            "--orgs-file",
            str(scratch / "orgs.json"),
            "--rate",
            str(args.rate),
            "--seconds",
            str(args.seconds),
            "--writers",
            str(args.writers),
            "--max-batch",
            str(args.max_batch),
        ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert producer.stdin is not None and producer.stdout is not None
    meter.fixed["producer"] = producer.pid
    try:
        if (await asyncio.wait_for(producer.stdout.readline(), 60)).strip() != b"started":
            raise RuntimeError("the producer did not start")
        meter.start()
        profilers = start_profilers(args, meter.fixed) if args.profile else []
        line = await asyncio.wait_for(producer.stdout.readline(), args.seconds * 10 + 60)
        if line.strip() != b"done":
            raise RuntimeError("the producer failed")
        await asyncio.sleep(2)  # the last frames in flight
        meter.stop()
        producer.stdin.write(b"stop\n")
        await producer.stdin.drain()
        await asyncio.wait_for(producer.wait(), 30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            producer.kill()
    ended_load = load()
    for process in clients:
        assert process.stdin is not None
        process.stdin.write(b"stop\n")
        await process.stdin.drain()
        await asyncio.wait_for(process.wait(), 60)
    await tap.stop()
    for profiler in profilers:
        profiler.wait()
    report(args, scratch, per_org, meter, ended_load, tap.seen)


async def open_clients(
    args: argparse.Namespace, base: str, scratch: Path, part: int, env: dict[str, str]
) -> asyncio.subprocess.Process:
    """Start one clients process (its share of the sockets) and wait until all are open."""
    process = await asyncio.create_subprocess_exec(
        *child(
            "--hold-clients",
            str(scratch / f"receipts-{part}.json"),
            "--part",
            f"{part}/{args.client_procs}",
            "--tokens-file",
            str(scratch / "tokens.json"),
            "--ws-url",
            base.replace("http", "ws") + "/ws",
            *([] if args.deflate else ["--no-deflate"]),
        ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 300)
    if line.strip() != b"ready":
        raise RuntimeError(f"clients did not open: {line!r}")
    return process


class RedisTap:
    """An idle subscriber of the bus channel: when each event was on Redis, for splitting the
    latency into producer → Redis and Redis → socket."""

    def __init__(self, url: str, channel: str) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url)
        self.channel = channel
        self.seen: dict[int, float] = {}

    async def start(self) -> None:
        self.pubsub = self.redis.pubsub()
        await self.pubsub.subscribe(self.channel)
        self.task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        from pytake.events.bus import decode_bus_message

        async for message in self.pubsub.listen():
            if message["type"] == "message":
                now = time.perf_counter()
                events, _ = decode_bus_message(message["data"])
                for event in events:
                    self.seen.setdefault(event.data["seq"], now)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.pubsub.aclose()
        await self.redis.aclose()


def start_profilers(
    args: argparse.Namespace, pids: dict[str, int]
) -> list[subprocess.Popen[bytes]]:
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    spy = str(ROOT / ".venv/bin/py-spy")
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--nonblocking",
                "--format",
                "raw",
                "--rate",
                "100",
                "--duration",
                str(args.seconds),
                "--pid",
                str(p),
                "--output",
                str(out / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, p in pids.items()
    ]


def report(
    args: argparse.Namespace,
    scratch: Path,
    per_org: int,
    meter: CpuMeter,
    ended_load: str,
    on_redis: dict[int, float],
) -> None:
    produced = read_json(scratch / "produced.json")
    committed: list[float] = produced["committed"]
    receipts: list[tuple[int, int, float]] = []
    client_lags: list[tuple[float, float]] = []
    for part in range(args.client_procs):
        held = read_json(scratch / f"receipts-{part}.json")
        receipts += held["receipts"]
        client_lags += held["lag"]
    total = len(committed)
    latencies = sorted((t - committed[seq]) * 1000 for _, seq, t in receipts)
    distinct = {(client, seq) for client, seq, _ in receipts}
    expected = total * per_org
    batches = produced["batches"]
    waits = statistics.quantiles(produced["waits"], n=100)
    q = statistics.quantiles(latencies, n=100)
    print(
        f"events: {total} in {produced['seconds']:.1f} s "
        f"({total / produced['seconds']:.0f}/s committed, target {args.rate}/s) "
        f"in {len(batches)} transactions (mean {statistics.mean(batches):.1f} events, "
        f"max {max(batches)})"
    )
    print(f"producer due → commit: p50 {waits[49]:.1f} ms, p99 {waits[98]:.1f} ms")
    print(
        f"frames received {len(receipts)}/{expected}: lost {expected - len(distinct)}, "
        f"duplicates {len(receipts) - len(distinct)}"
    )
    print(f"commit → receipt: p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {latencies[-1]:.1f} ms")
    to_redis = sorted((t - committed[seq]) * 1000 for seq, t in on_redis.items())
    r = statistics.quantiles(to_redis, n=100)
    print(
        f"of which commit → on Redis ({len(to_redis)} events seen by an idle subscriber): "
        f"p50 {r[49]:.1f} ms, p99 {r[98]:.1f} ms, max {to_redis[-1]:.1f} ms"
    )
    window(committed, receipts, produced["seconds"])
    start, end = min(committed), max(committed) + 2
    lags = sorted(lag for t, lag in client_lags if start <= t <= end)
    producer_lags = sorted(produced["lag"])
    print(
        f"event-loop lag (a 10 ms sleep's overshoot) p99 / max: clients "
        f"{lags[len(lags) * 99 // 100]:.1f} / {lags[-1]:.1f} ms, producer "
        f"{producer_lags[len(producer_lags) * 99 // 100]:.1f} / {producer_lags[-1]:.1f} ms"
    )
    print(f"CPU over the events phase ({meter.seconds:.1f} s wall, 2 cores = 200 %):")
    print(meter.table())
    print(f"events phase ended ({ended_load})")


def window(committed: list[float], receipts: list[tuple[int, int, float]], seconds: float) -> None:
    """Latency by slice of the run: steady, or a backlog that grows?"""
    start = min(committed)
    slices = 4
    width = seconds / slices
    by_slice: list[list[float]] = [[] for _ in range(slices)]
    for _, seq, t in receipts:
        at = min(slices - 1, int((committed[seq] - start) / width))
        by_slice[at].append((t - committed[seq]) * 1000)
    parts = []
    for n, values in enumerate(by_slice):
        values.sort()
        if values:
            parts.append(
                f"{n * width:.0f}-{(n + 1) * width:.0f} s p50 {values[len(values) // 2]:.0f} "
                f"p99 {values[len(values) * 99 // 100]:.0f}"
            )
    print("commit → receipt by slice (ms): " + "; ".join(parts))


# --- profiles -----------------------------------------------------------------------------------


def summarise(path: str, top: int = 25) -> None:
    """Self and inclusive sample shares per function from py-spy's raw collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [
            f.split(" (")[0] + " " + f.rsplit("/", 1)[-1].split(":")[0] for f in stack.split(";")
        ]
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(f"{total} samples (idle included)")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"-- {title}")
        for name, n in counter.most_common(top):
            print(f"{100 * n / total:5.1f} %  {name}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--orgs", type=int, default=200)
    parser.add_argument("--rate", type=int, default=500, help="events per second")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument(
        "--writers",
        type=int,
        default=2,
        help="producer transactions in flight (2, as ingest_concurrent_batches)",
    )
    parser.add_argument(
        "--max-batch", type=int, default=100, help="events per transaction, at most"
    )
    parser.add_argument(
        "--no-deflate",
        dest="deflate",
        action="store_false",
        help="clients do not offer permessage-deflate (browsers do, so the default is to offer it)",
    )
    parser.add_argument("--client-procs", type=int, default=1, help="processes holding sockets")
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--db", default="pytake_bench_realtime", help="PostgreSQL database")
    parser.add_argument("--profile", help="directory for py-spy profiles of the three processes")
    parser.add_argument("--summarise", help="print a py-spy raw profile's top functions")
    parser.add_argument("--produce", help=argparse.SUPPRESS)
    parser.add_argument("--orgs-file", help=argparse.SUPPRESS)
    parser.add_argument("--hold-clients", dest="clients", help=argparse.SUPPRESS)
    parser.add_argument("--tokens-file", help=argparse.SUPPRESS)
    parser.add_argument("--part", default="0/1", help=argparse.SUPPRESS)
    parser.add_argument("--ws-url", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    import uvloop

    if arguments.summarise:
        summarise(arguments.summarise)
    elif arguments.produce:
        uvloop.run(produce(arguments))
    elif arguments.clients:
        uvloop.run(hold_clients(arguments))
    else:
        arguments.port = arguments.port or free_port()
        asyncio.run(main(arguments))
