"""Inbound media on PostgreSQL + Redis: webhook 200 → stored, worker memory, text ingest beside.

Starts a fresh database, `pytake serve` (uvicorn, background loops off), `pytake worker` (the
loops: the media fetch among them) and a media simulator (`pytake simulator`: it posts the image
webhooks and serves their downloads, as Meta and its CDN would) as separate processes; a second
simulator in this process posts the text webhooks. Then:

1. text alone: `--text-clients` customers each send texts back to back for `--seconds`;
   webhooks answered per second and their latency;
2. live: `--images` images of `--size` bytes arrive at `--rate` per second, fetched as they
   come, the same text load beside; for each image the time from its webhook's 200 to its media
   row's `stored_at` (p50, p99), and the worker's RSS sampled every 0.1 s;
3. the two halves apart: the image webhooks again with the worker stopped (SIGSTOP: ingest
   only), then the worker fetching that backlog (SIGCONT) with only text arriving — the fetch's
   own effect on text ingest, and the worker's CPU per image;
4. memory against file size: `--big` images of `--big-size` bytes, the worker's RSS again.

    .venv/bin/python bench/media.py
    .venv/bin/python bench/media.py --images 200 --rate 50 --seconds 4
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import aiohttp  # noqa: E402

from pytake.whatsapp.simulator import Simulator, SimulatorSettings  # noqa: E402

PASSWORD = "bench-password-123"

SERVE = """
import uvicorn
uvicorn.run("pytake.app:create_app", factory=True, host="127.0.0.1", port={port},
            access_log=False, log_config=None)
"""
MEDIA_SIM = """
from pytake.whatsapp.simulator import run
run("127.0.0.1", {port})
"""
WORKER = """
from pytake.config import get_settings
from pytake.worker.runtime import run_worker_process
run_worker_process(get_settings())
"""


def _pg(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def recreate_database(url: str) -> None:
    import asyncpg

    base, name = _pg(url).rsplit("/", 1)
    conn = await asyncpg.connect(base + "/postgres")
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler:
    """The worker's RSS, every 0.1 s, while running."""

    def __init__(self, pid: int) -> None:
        self.pid, self.samples, self._task = pid, [], None  # type: ignore[var-annotated]

    def start(self) -> None:
        async def loop() -> None:
            while True:
                self.samples.append(rss_mb(self.pid))
                await asyncio.sleep(0.1)

        self.samples = []
        self._task = asyncio.create_task(loop())  # type: ignore[assignment]

    def stop(self) -> tuple[float, float, float]:
        assert self._task is not None
        self._task.cancel()
        return self.samples[0], max(self.samples), self.samples[-1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """Every PostgreSQL process's CPU (the server is shared: other benches' backends too)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                total += cpu_seconds(int(entry.name))
        except (OSError, ValueError):
            continue  # ended meanwhile
    return total


async def commits(db: str) -> int:
    """Transactions committed in the bench's database so far (pg_stat_database)."""
    import asyncpg

    conn = await asyncpg.connect(_pg(db))
    try:
        return int(
            await conn.fetchval(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )
        )
    finally:
        await conn.close()


class CpuMeter:
    """CPU seconds of each process of the bench over a phase (and PostgreSQL's), and the
    transactions the bench's database committed."""

    def __init__(self, pids: dict[str, int], db: str) -> None:
        self.pids = pids
        self.db = db
        self.start: dict[str, float] = {}
        self.start_commits = 0

    def snapshot(self) -> dict[str, float]:
        taken = {role: cpu_seconds(pid) for role, pid in self.pids.items()}
        taken["postgres"] = postgres_cpu_seconds()
        return taken

    async def begin(self) -> None:
        self.start = self.snapshot()
        self.start_commits = await commits(self.db)

    async def report(self, label: str, texts: int, images: int) -> None:
        now = self.snapshot()
        # pg_stat_database lags by up to PostgreSQL's stats interval; a rough count.
        committed = await commits(self.db) - self.start_commits
        spent = {role: now[role] - self.start[role] for role in now}
        parts = ", ".join(f"{role} {seconds:.1f}" for role, seconds in spent.items())
        per_text = spent["serve"] * 1000 / max(1, texts + images)
        print(
            f"    CPU s ({label}): {parts}; serve {per_text:.2f} ms per webhook "
            f"({texts} text + {images} image); {committed} commits; "
            f"load {os.getloadavg()[0]:.1f}"
        )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def setup(base: str, sim: Simulator, media_sim: str) -> tuple[str, str]:
    """An organisation and a Cloud number pointed at the simulator; returns (pnid, token)."""
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        reg = await api.post(
            "/api/v1/auth/register",
            json={
                "email": f"bench-{uuid.uuid4().hex[:8]}@example.com",
                "password": PASSWORD,
                "name": "Bench",
            },
        )
        token = reg.json()["token"]
        pnid, access, secret = (
            str(10**14 + secrets.randbelow(10**14)),
            "EAA" + secrets.token_hex(8),
            secrets.token_hex(8),
        )
        hook = f"{base}/api/v1/whatsapp/webhook"
        number = sim.register_number(pnid, access, secret, webhook_url=hook, waba_id="w" + pnid)
        number.mps = 10**6
        registered = await api.post(
            f"{media_sim}/_sim/numbers",
            json={
                "phone_number_id": pnid,
                "access_token": access,
                "app_secret": secret,
                "webhook_url": hook,
                "waba_id": "w" + pnid,
            },
        )
        assert registered.status_code == 201, registered.text
        resp = await api.post(
            "/api/v1/whatsapp-configs",
            json={
                "name": "Bench",
                "provider": "official",
                "phone_number_id": pnid,
                "access_token": access,
                "app_secret": secret,
                "business_account_id": "w" + pnid,
                "webhook_verify_token": "v",
                "is_default": True,
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 201, resp.text
    return pnid, token


async def text_load(
    sim: Simulator, pnid: str, clients: int, seconds: float
) -> tuple[int, list[float]]:
    """Closed loop: `clients` customers each sending texts back to back."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def customer(n: int) -> None:
        sender = f"5511{70000000 + n:08d}"
        while time.monotonic() < deadline:
            start = time.monotonic()
            record = await sim.customer_sends(pnid, sender=sender, type="text", text="oi")
            assert record.webhook_status == 200, record
            latencies.append(time.monotonic() - start)

    await asyncio.gather(*(customer(n) for n in range(clients)))
    return len(latencies), latencies


async def media_load(
    http: Any, media_sim: str, pnid: str, count: int, rate: float, size: int
) -> dict[str, float]:
    """Open loop: `count` images at `rate`/s, sent by the media simulator (its own process,
    which also serves the downloads, as Meta's CDN would); returns wamid → wall time of its
    webhook's 200."""
    answered: dict[str, float] = {}
    payload = base64.b64encode(os.urandom(size)).decode()

    async def one(i: int) -> None:
        # The same bytes would be stored once (content addressing): vary the first bytes.
        data = base64.b64encode(i.to_bytes(3, "big")).decode() + payload[4:]
        body = {
            "from": f"5511{80000000 + i % 500:08d}",
            "type": "image",
            "mime_type": "image/jpeg",
            "data_base64": data,
        }
        async with http.post(f"{media_sim}/_sim/numbers/{pnid}/inbound", json=body) as answer:
            record = await answer.json()
        assert record["webhook_status"] == 200, record
        answered[record["id"]] = time.time()

    tasks = []
    start = time.monotonic()
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return answered


async def stored_times(db: str, wamids: set[str], within: float) -> dict[str, tuple[str, float]]:
    import asyncpg

    conn = await asyncpg.connect(_pg(db))
    deadline = time.monotonic() + within
    try:
        while True:
            rows = await conn.fetch(
                "SELECT m.provider_message_id, md.status, md.stored_at FROM media md "
                "JOIN messages m ON m.id = md.message_id WHERE md.status <> 'pending'"
            )
            found = {
                r[0]: (r[1], r[2].timestamp() if r[2] else 0.0) for r in rows if r[0] in wamids
            }
            if len(found) == len(wamids) or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--db", default="postgresql+asyncpg://postgres@127.0.0.1:5432/pytake_bench_media"
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--text-clients", type=int, default=8)
    parser.add_argument("--big", type=int, default=40)
    parser.add_argument("--big-size", type=int, default=4_000_000)
    parser.add_argument("--port", type=int, default=18431)
    parser.add_argument("--profile-worker", help="write the worker's cProfile stats here")
    parser.add_argument(
        "--ab", type=int, default=0, help="pairs of fetch-off/fetch-on text windows (0: none)"
    )
    parser.add_argument("--ab-seconds", type=float, default=3.0)
    parser.add_argument("--only-ab", action="store_true", help="the interleaved pairs only")
    parser.add_argument(
        "--cdn-nice",
        type=int,
        default=0,
        help="niceness of the media simulator (Meta's CDN stand-in: not on a real host)",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=None,
        help="PYTAKE_WORKER_NICE for the worker (default: the setting's default, 0)",
    )
    args = parser.parse_args()

    await recreate_database(args.db)
    data_dir = tempfile.mkdtemp(prefix="pytake-bench-media-")
    media_sim = f"http://127.0.0.1:{args.port + 1}"
    async with Simulator(SimulatorSettings.for_tests(auto_read=False)) as sim:
        env = {
            **os.environ,
            "PYTAKE_DATABASE_URL": args.db,
            "PYTAKE_REDIS_URL": args.redis,
            "PYTAKE_EVENTS_CHANNEL": f"pytake-bench-media-{uuid.uuid4().hex[:6]}",
            "PYTAKE_LOG_LEVEL": "WARNING",
            "PYTAKE_RATE_LIMIT_ENABLED": "false",
            "PYTAKE_ALLOW_PRIVATE_URLS": "true",
            "PYTAKE_META_GRAPH_URL": f"{media_sim}/v23.0",
            "PYTAKE_DATA_DIR": data_dir,
            "PYTAKE_TEMPLATE_SYNC_INTERVAL_SECONDS": "0",
            "PYTHONPATH": str(ROOT / "src"),
        }
        if args.worker_nice is not None:
            env["PYTAKE_WORKER_NICE"] = str(args.worker_nice)
        sim_process = subprocess.Popen(  # noqa: ASYNC220 - start-up, before measuring
            [sys.executable, "-c", MEDIA_SIM.replace("{port}", str(args.port + 1))],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            stdout=subprocess.DEVNULL,
        )
        if args.cdn_nice:
            os.setpriority(os.PRIO_PROCESS, sim_process.pid, args.cdn_nice)
        serve = subprocess.Popen(  # noqa: ASYNC220 - start-up, before anything is measured
            [sys.executable, "-c", SERVE.replace("{port}", str(args.port))],
            env={**env, "PYTAKE_RUN_BACKGROUND_LOOPS": "false"},
            cwd=ROOT,
        )
        worker = None
        try:
            base = f"http://127.0.0.1:{args.port}"
            await wait_healthy(base)
            command = [sys.executable, "-c", WORKER]
            if args.profile_worker:
                script = Path(data_dir) / "worker.py"
                script.write_text(WORKER)
                command = [sys.executable, "-m", "cProfile", "-o", args.profile_worker, str(script)]
            worker = subprocess.Popen(command, env=env, cwd=ROOT)  # noqa: ASYNC220
            await wait_healthy(media_sim, "/_sim/numbers")
            pnid, _ = await setup(base, sim, media_sim)
            await asyncio.sleep(2.0)  # the worker's start-up
            meter = CpuMeter(
                {
                    "serve": serve.pid,
                    "worker": worker.pid,
                    "media-sim": sim_process.pid,
                    "bench": os.getpid(),
                },
                args.db,
            )
            async with aiohttp.ClientSession() as http:
                await run(args, sim, http, media_sim, pnid, worker.pid, meter)
        finally:
            for proc in (worker, serve, sim_process):
                if proc is not None:
                    proc.terminate()
                    proc.wait(30)
    print(f"load average: {os.getloadavg()}")


async def wait_healthy(base: str, path: str = "/health") -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        for _ in range(300):
            try:
                if (await http.get(base + path)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("serve did not start")


async def run(
    args: Any,
    sim: Simulator,
    http: Any,
    media_sim: str,
    pnid: str,
    worker_pid: int,
    meter: CpuMeter,
) -> None:
    await text_load(sim, pnid, args.text_clients, 1.0)  # warm-up
    print(
        f"niceness: worker {os.getpriority(os.PRIO_PROCESS, worker_pid)}, "
        f"bench {os.getpriority(os.PRIO_PROCESS, 0)}; load {os.getloadavg()[0]:.1f}"
    )
    if args.only_ab:
        await interleaved(args, sim, http, media_sim, pnid, worker_pid)
        return
    await meter.begin()
    done, lat = await text_load(sim, pnid, args.text_clients, args.seconds)
    await meter.report("text alone", done, 0)
    alone = done / args.seconds
    print(
        f"text alone: {alone:.0f} webhooks/s, p50 {pct(lat, 0.5) * 1000:.1f} ms, "
        f"p99 {pct(lat, 0.99) * 1000:.1f} ms"
    )

    def beside(label: str, count: int, seconds: float, lat: list[float]) -> None:
        rate = count / seconds
        print(
            f"  text beside {label}: {rate:.0f} webhooks/s ({(rate / alone - 1) * 100:+.1f} % "
            f"vs alone), p50 {pct(lat, 0.5) * 1000:.1f} ms, p99 {pct(lat, 0.99) * 1000:.1f} ms"
        )

    # 1. Live: images arrive at the rate and are fetched as they come, text beside.
    sampler = Sampler(worker_pid)
    sampler.start()
    text_seconds = args.images / args.rate
    await meter.begin()
    (answered, (tdone, tlat)) = await asyncio.gather(
        media_load(http, media_sim, pnid, args.images, args.rate, args.size),
        text_load(sim, pnid, args.text_clients, text_seconds),
    )
    await meter.report("live: image webhooks + fetch", tdone, len(answered))
    stored = await stored_times(args.db, set(answered), 300.0)
    first, peak, last = sampler.stop()
    ok = {w: t for w, (status, t) in stored.items() if status == "stored"}
    delays = [ok[w] - answered[w] for w in ok]
    print(
        f"images: {len(answered)} × {args.size // 1000} KB at {args.rate:.0f}/s: "
        f"{len(ok)} stored, {len(stored) - len(ok)} failed, {len(answered) - len(stored)} pending"
    )
    print(
        f"  webhook 200 → stored: p50 {pct(delays, 0.5) * 1000:.0f} ms, "
        f"p99 {pct(delays, 0.99) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms"
    )
    print(f"  worker RSS: {first:.0f} MB at start, peak {peak:.0f} MB, {last:.0f} MB at end")
    beside("image webhooks + fetch", tdone, text_seconds, tlat)

    # 2. The two halves apart: the image webhooks with the worker stopped (SIGSTOP), then the
    # worker fetching that backlog (SIGCONT) with no image webhooks arriving.
    os.kill(worker_pid, signal.SIGSTOP)
    try:
        await meter.begin()
        (answered, (tdone, tlat)) = await asyncio.gather(
            media_load(http, media_sim, pnid, args.images, args.rate, args.size),
            text_load(sim, pnid, args.text_clients, text_seconds),
        )
        await meter.report("image webhooks only", tdone, len(answered))
    finally:
        os.kill(worker_pid, signal.SIGCONT)
    beside("image webhooks only (worker stopped)", tdone, text_seconds, tlat)
    await meter.begin()
    fetch_started, cpu_before = time.monotonic(), cpu_seconds(worker_pid)
    backlog = asyncio.create_task(stored_times(args.db, set(answered), 300.0))
    tdone, tlat, spent = 0, [], 0.0
    while not backlog.done():
        n, more = await text_load(sim, pnid, args.text_clients, 1.0)
        tdone, spent = tdone + n, spent + 1.0
        tlat += more
    stored = backlog.result()
    await meter.report("the backlog's fetch only", tdone, 0)
    drained = time.monotonic() - fetch_started
    worker_cpu = cpu_seconds(worker_pid) - cpu_before
    ok_count = sum(1 for status, _ in stored.values() if status == "stored")
    print(
        f"  backlog of {len(answered)} fetched in {drained:.1f} s "
        f"({ok_count / drained:.0f} images/s, {ok_count} stored); worker CPU "
        f"{worker_cpu * 1000 / max(1, ok_count):.1f} ms per image"
    )
    beside("the backlog's fetch only", tdone, spent, tlat)

    if args.ab:
        await interleaved(args, sim, http, media_sim, pnid, worker_pid)

    if args.big:
        sampler.start()
        answered = await media_load(http, media_sim, pnid, args.big, 10.0, args.big_size)
        stored = await stored_times(args.db, set(answered), 300.0)
        first, peak, last = sampler.stop()
        ok_big = [w for w, (status, _) in stored.items() if status == "stored"]
        print(
            f"big images: {len(ok_big)}/{args.big} × {args.big_size / 1e6:.0f} MB stored; worker "
            f"RSS {first:.0f} MB at start, peak {peak:.0f} MB, {last:.0f} MB at end"
        )


async def interleaved(
    args: Any, sim: Simulator, http: Any, media_sim: str, pnid: str, worker_pid: int
) -> None:
    """Text ingest with the fetch off and on in alternating windows over one standing backlog:
    pairs a few seconds apart see the same machine, where phases a minute apart do not (the
    other engineers' load moves the text rate ±40 % between runs)."""
    os.kill(worker_pid, signal.SIGSTOP)
    try:
        answered = await media_load(http, media_sim, pnid, args.images, args.rate, args.size)
    finally:
        os.kill(worker_pid, signal.SIGCONT)
    os.kill(worker_pid, signal.SIGSTOP)
    wamids = set(answered)
    ratios: list[float] = []
    off_rates: list[float] = []
    on_rates: list[float] = []
    try:
        fetched_at_start = len(await stored_times(args.db, wamids, 0.0))
        for n in range(args.ab):
            fetched = len(await stored_times(args.db, wamids, 0.0))
            if fetched == len(wamids):
                break  # the backlog is drained: no fetch to measure any more
            # Off first in even pairs, on first in odd ones: a drift within a pair then
            # biases half the pairs one way and half the other.
            if n % 2 == 0:
                off, _ = await text_load(sim, pnid, args.text_clients, args.ab_seconds)
                os.kill(worker_pid, signal.SIGCONT)
                on, _ = await text_load(sim, pnid, args.text_clients, args.ab_seconds)
            else:
                os.kill(worker_pid, signal.SIGCONT)
                on, _ = await text_load(sim, pnid, args.text_clients, args.ab_seconds)
                os.kill(worker_pid, signal.SIGSTOP)
                off, _ = await text_load(sim, pnid, args.text_clients, args.ab_seconds)
            os.kill(worker_pid, signal.SIGSTOP)
            off_rates.append(off / args.ab_seconds)
            on_rates.append(on / args.ab_seconds)
            ratios.append(on / max(1, off))
        # The worker only runs in the fetch-on windows: what it fetched, per second of them.
        fetched = len(await stored_times(args.db, wamids, 0.0)) - fetched_at_start
    finally:
        os.kill(worker_pid, signal.SIGCONT)
    await stored_times(args.db, wamids, 300.0)
    on_seconds = len(ratios) * args.ab_seconds
    print(
        f"fetched in the fetch-on windows: {fetched} images in {on_seconds:.0f} s "
        f"({fetched / max(1.0, on_seconds):.0f} images/s)"
    )
    # Read at the end too: at the start the worker may still be importing (not yet niced).
    print(f"niceness at the end: worker {os.getpriority(os.PRIO_PROCESS, worker_pid)}")
    pairs = ", ".join(f"{a:.0f}→{b:.0f}" for a, b in zip(off_rates, on_rates, strict=True))
    print(
        f"interleaved, {len(ratios)} pairs of {args.ab_seconds:.0f} s (text/s fetch off→on): "
        f"{pairs}; median ratio {pct(ratios, 0.5):.2f} "
        f"(min {min(ratios, default=0):.2f}, max {max(ratios, default=0):.2f}); "
        f"load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
