"""Dispatcher throughput on PostgreSQL against the simulator: messages/s from one worker process.

Creates a fresh database, migrates it, seeds an organisation, a Meta number (its access token
encrypted as the app does) and `--customers` contacts with open conversations, then inserts
`--messages` queued text messages with Core in one go. Two child processes do the work:

- the simulator (its own process, so its CPU is not the worker's), with `--latency-ms` of added
  latency on every Graph call, the number's throughput limit raised out of the way, customers'
  24 h windows open and status webhooks off (inbound ingestion has its own bench);
- one worker: `build_dispatcher` registered with `pytake.worker.runner.Runner`, the loop runner
  `pytake worker` uses, on its provider session (`provider_session`, a pool as wide as the
  dispatcher's concurrency) and its event loop (uvloop; `--loop asyncio` for the default
  loop). It stops when it has sent every message.

Figures: messages/s (first claim to last outcome written), the worker's CPU seconds per message
(its own getrusage, from just before the runner starts; the total incl. imports comes from
wait4), the simulator's and PostgreSQL's CPU over the same run for context, and p50/p99 of
queued → sent (`sent_at - created_at`). With the whole backlog inserted before the worker starts,
that latency is mostly the drain time; `--rate` instead inserts messages at a steady rate while
the worker runs, which measures the loop's own pick-up delay.

Checks: every message `sent`, with a distinct wamid, and the simulator received each message's
callback data (our message id) exactly once — no duplicates, none lost.

    .venv/bin/python bench/dispatch.py                         # 50,000 queued, 100 ms latency
    .venv/bin/python bench/dispatch.py --rate 1000 --seconds 20  # steady 1,000/s for 20 s
    .venv/bin/python bench/dispatch.py --worker-src /tmp/old/src  # A/B: an export of older code
    .venv/bin/python bench/dispatch.py --tuning flush_seconds=0.1  # any SendingTuning field
    .venv/bin/python bench/dispatch.py --profile /tmp/w.txt      # py-spy raw stacks of the worker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The worker child imports PyTake from --worker-src, which child_env puts on PYTHONPATH: this
# tree's src must not go in front of it there (before d10424c it did, so every A/B "before" run
# measured the working tree's code).
if "--worker-child" not in sys.argv:
    sys.path.insert(0, str(ROOT / "src"))

DEFAULT_DB = "postgresql+asyncpg://postgres@127.0.0.1:5432/pytake_bench_dispatch"
SECRET_KEY = "bench-dispatch-secret-key-" + "x" * 40

SIMULATOR = """
import asyncio, json, sys
import uvloop
from pytake.whatsapp.simulator import Simulator, SimulatorSettings

spec = json.loads(sys.stdin.readline())

async def main():
    settings = SimulatorSettings(status_delays=(0.0, 0.0, 0.0), default_mps=10**9)
    # Status webhooks have no receiver here; dropping them spares the simulator the tasks.
    faults = {"latency_ms": spec["latency_ms"], "drop_statuses": ["sent", "delivered", "read"]}
    sim = Simulator(settings, faults=faults)
    url = await sim.start("127.0.0.1", 0)
    sim.register_number(spec["pnid"], spec["token"], "bench-app-secret", mps=10**9)
    for wa_id in spec["customers"]:
        sim.state.open_window(spec["pnid"], wa_id)
    print(json.dumps({"url": url, "graph_url": sim.graph_url}), flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
"""


# ---------------------------------------------------------------- processes and CPU


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
    return pids


def child_env(src: Path = ROOT / "src") -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{src}:{ROOT}"}


def postgres_cpu_seconds() -> float:
    """PostgreSQL's CPU so far: live processes plus what exited backends left in the
    postmaster's children times (cutime, cstime), so backends that close mid-run still count."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in postgres_pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / tick


def start_script(script: str, spec: dict[str, Any]) -> tuple[subprocess.Popen[str], Any]:
    """Run `script` (python -c) in a process of its own, hand it `spec` as one JSON line on
    stdin, and return it with the JSON line it prints once it is up (its URLs)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=child_env(),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(spec) + "\n")
    proc.stdin.close()
    return proc, json.loads(proc.stdout.readline())


class SimulatorProcess:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.proc, started = start_script(SIMULATOR, spec)
        self.url: str = started["url"]
        self.graph_url: str = started["graph_url"]

    def sent_callbacks(self) -> Counter[str]:
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/_sim/messages", timeout=120) as response:
            body = json.loads(response.read())
        items = body["data"] if isinstance(body, dict) and "data" in body else body
        return Counter(m["body"].get("biz_opaque_callback_data") for m in items)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- database


def _pg(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def recreate_database(url: str, *, drop_only: bool = False) -> None:
    import asyncpg

    base, name = _pg(url).rsplit("/", 1)
    conn = await asyncpg.connect(base + "/postgres")
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if not drop_only:
        await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()


async def migrate(url: str) -> None:
    from pytake.db import create_engine
    from pytake.migrate import upgrade_to_head

    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


@dataclass
class Shop:
    organization_id: uuid.UUID
    channel_id: uuid.UUID
    pnid: str
    token: str
    # (contact id, conversation id, wa_id) per customer
    customers: list[tuple[uuid.UUID, uuid.UUID, str]]


def settings_for(db: str, graph_url: str) -> Any:
    from pytake.config import Settings

    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        env="test",
        database_url=db,
        meta_graph_url=graph_url,
        secret_key=SECRET_KEY,
        allow_private_urls=True,
        log_level="WARNING",
    )


def new_shop(customers: int) -> Shop:
    pnid = str(10**14 + secrets.randbelow(9 * 10**14))
    people = [(uuid.uuid4(), uuid.uuid4(), f"5511{9_0000_0000 + i:09d}") for i in range(customers)]
    return Shop(uuid.uuid4(), uuid.uuid4(), pnid, "EAA" + secrets.token_hex(16), people)


async def seed_shop(db: str, shop: Shop, graph_url: str) -> None:
    """The organisation, its number and its customers (few rows: the ORM is fine here)."""
    from pytake.db import create_engine, create_session_factory
    from pytake.kit.crypto import secret_box
    from pytake.models import Channel, Contact, Conversation, Organization

    box = secret_box(settings_for(db, graph_url))
    engine = create_engine(db)
    async with create_session_factory(engine)() as session:
        session.add(Organization(id=shop.organization_id, name="Dispatch bench"))
        await session.flush()
        session.add(
            Channel(
                id=shop.channel_id,
                organization_id=shop.organization_id,
                name="Bench number",
                provider="official",
                phone_number_id=shop.pnid,
                business_account_id="waba-" + shop.pnid,
                access_token_encrypted=box.encrypt(shop.token),
                app_secret_encrypted=box.encrypt("bench-app-secret"),
                is_active=True,
                is_default=True,
            )
        )
        await session.flush()
        for contact_id, conversation_id, wa_id in shop.customers:
            session.add(
                Contact(
                    id=contact_id,
                    organization_id=shop.organization_id,
                    whatsapp_id="+" + wa_id,
                    match_key=wa_id,
                    wa_id=wa_id,
                )
            )
            session.add(
                Conversation(
                    id=conversation_id,
                    organization_id=shop.organization_id,
                    contact_id=contact_id,
                    channel_id=shop.channel_id,
                    status="open",
                )
            )
        await session.commit()
    await engine.dispose()


def message_rows(shop: Shop, first: int, count: int, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for n in range(first, first + count):
        contact_id, conversation_id, wa_id = shop.customers[n % len(shop.customers)]
        mid = uuid.uuid4()
        rows.append(
            {
                "id": mid,
                "organization_id": shop.organization_id,
                "conversation_id": conversation_id,
                "contact_id": contact_id,
                "channel_id": shop.channel_id,
                "direction": "outbound",
                "type": "text",
                "content": {
                    "body": f"Olá! Seu pedido {n} saiu para entrega.",
                    "preview_url": False,
                },
                "status": "queued",
                "callback_data": str(mid),
                "recipient": "+" + wa_id,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


async def insert_messages(engine: Any, shop: Shop, first: int, count: int) -> None:
    """Queue messages with Core multi-row inserts, as campaigns do."""
    from sqlalchemy import insert

    from pytake.message.tables import messages

    now = datetime.now(UTC)
    rows = message_rows(shop, first, count, now)
    async with engine.begin() as conn:
        for start in range(0, len(rows), 2000):
            await conn.execute(insert(messages), rows[start : start + 2000])


async def queue_backlog(db: str, shop: Shop, count: int) -> float:
    from pytake.db import create_engine

    engine = create_engine(db)
    started = time.perf_counter()
    await insert_messages(engine, shop, 0, count)
    elapsed = time.perf_counter() - started
    async with engine.begin() as conn:
        await conn.exec_driver_sql("ANALYZE messages")
    await engine.dispose()
    return elapsed


async def queue_steadily(db: str, shop: Shop, rate: int, seconds: float) -> int:
    """Insert `rate` messages per second in 20 ms slices for `seconds`; returns how many."""
    from pytake.db import create_engine

    engine = create_engine(db)
    total = int(rate * seconds)
    slice_seconds, done = 0.02, 0
    started = time.perf_counter()
    while done < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        if due > done:
            await insert_messages(engine, shop, done, due - done)
            done = due
        await asyncio.sleep(slice_seconds)
    await engine.dispose()
    return done


async def check_database(db: str, expected: int) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(_pg(db))
    try:
        statuses = dict(
            await conn.fetch("SELECT status, count(*) FROM messages GROUP BY status")  # type: ignore[arg-type]
        )
        distinct_wamids = await conn.fetchval(
            "SELECT count(DISTINCT provider_message_id) FROM messages WHERE status = 'sent'"
        )
        latencies = [
            r[0]
            for r in await conn.fetch(
                "SELECT extract(epoch FROM sent_at - created_at) FROM messages"
                " WHERE status = 'sent' ORDER BY 1"
            )
        ]
        ids = {str(r[0]) for r in await conn.fetch("SELECT id FROM messages")}
    finally:
        await conn.close()
    ordered = [float(x) for x in latencies]

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else 0.0

    return {
        "statuses": statuses,
        "distinct_wamids": distinct_wamids,
        "expected": expected,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": ordered[-1] * 1000 if ordered else 0.0,
        "ids": ids,
    }


# ---------------------------------------------------------------- the worker process


async def worker_main(spec: dict[str, Any]) -> None:
    """One worker: the dispatcher under the runner `pytake worker` uses, until all are sent."""
    import logging

    import aiohttp

    import pytake
    from pytake.db import create_engine, create_session_factory
    from pytake.message.sending.dispatcher import SendingTuning, build_dispatcher
    from pytake.worker.runner import Runner

    logging.basicConfig(level=logging.WARNING)
    print(f"worker imports {Path(pytake.__file__).parent}", file=sys.stderr, flush=True)
    settings = settings_for(spec["db"], spec["graph_url"])
    engine = create_engine(spec["db"])
    tuning = SendingTuning(**spec["tuning"])
    try:  # the provider session `pytake worker` uses (a pool as wide as the concurrency)
        from pytake.worker.runtime import provider_session

        http = provider_session(tuning.concurrency)
    except ImportError:  # older code (--worker-src): the same pool, built here
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=tuning.concurrency),
            timeout=aiohttp.ClientTimeout(total=30),
        )
    async with http:
        dispatcher = build_dispatcher(create_session_factory(engine), settings, http, tuning)
        runner = Runner([dispatcher], settings.worker_poll_seconds)
        try:  # what `pytake worker` does once started (kit/gc_tuning.py)
            from pytake.kit.gc_tuning import tune_for_serving

            tune_for_serving(settings.gc_tuning)
        except ImportError:  # older code (--worker-src)
            pass
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        runner.start()
        print("started", flush=True)
        deadline = started + spec["timeout"]
        # Polls a counter the dispatcher owns; 5 ms of slack on a run of tens of seconds.
        while dispatcher.sent < spec["expected"] and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        await runner.stop()
        stop = getattr(dispatcher, "stop", None)
        if stop is not None:
            await stop()
    await engine.dispose()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = {"sent": dispatcher.sent, "seconds": elapsed, "cpu_s": cpu}
    print(json.dumps(result), flush=True)


def start_worker(spec: dict[str, Any], src: Path) -> subprocess.Popen[str]:
    """Start the worker process (PyTake imported from `src`); returns once its runner runs."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__)), "--worker-child", json.dumps(spec)],
        env=child_env(src),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    return proc


def finish_worker(proc: subprocess.Popen[str]) -> tuple[dict[str, Any], float]:
    """The worker's result and its whole CPU time (wait4, including imports and startup)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if not line:
        raise RuntimeError(f"worker exited with {proc.returncode} and no result")
    return json.loads(line), usage.ru_utime + usage.ru_stime


def start_profiler(pid: int, out: str, seconds: float) -> subprocess.Popen[bytes] | None:
    """py-spy on the worker (raw stacks into `out`), from just after its runner started."""
    if not out:
        return None
    py_spy = Path(sys.executable).parent / "py-spy"
    command = [str(py_spy), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200"]
    command += ["-f", "raw", "-o", out, "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---------------------------------------------------------------- main


def tuning_from(args: argparse.Namespace) -> dict[str, Any]:
    tuning: dict[str, Any] = {}
    if args.batch_size:
        tuning["batch_size"] = args.batch_size
    if args.concurrency:
        tuning["concurrency"] = args.concurrency
    for setting in args.tuning:  # any other SendingTuning field, e.g. flush_seconds=0.1
        name, value = setting.split("=", 1)
        tuning[name] = float(value)
    return tuning


def run(args: argparse.Namespace) -> dict[str, Any]:
    db = args.db
    shop = new_shop(args.customers)
    customers = [wa for _, _, wa in shop.customers]
    sim = SimulatorProcess(
        {
            "pnid": shop.pnid,
            "token": shop.token,
            "latency_ms": args.latency_ms,
            "customers": customers,
        }
    )
    try:
        asyncio.run(recreate_database(db))
        asyncio.run(migrate(db))
        asyncio.run(seed_shop(db, shop, sim.graph_url))
        steady = args.rate > 0
        expected = int(args.rate * args.seconds) if steady else args.messages
        insert_s = 0.0 if steady else asyncio.run(queue_backlog(db, shop, expected))
        spec = {
            "db": db,
            "graph_url": sim.graph_url,
            "tuning": tuning_from(args),
            "expected": expected,
            "timeout": args.timeout,
            "uvloop": args.uvloop,
        }
        pg_before = postgres_cpu_seconds()
        sim_before = cpu_seconds([sim.proc.pid])
        load_before = os.getloadavg()[0]
        proc = start_worker(spec, Path(args.worker_src).resolve())
        profiler = start_profiler(proc.pid, args.profile, args.profile_seconds)
        try:
            if steady:
                asyncio.run(queue_steadily(db, shop, args.rate, args.seconds))
            result, total_cpu = finish_worker(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if profiler is not None:
                profiler.wait()
        sim_cpu = cpu_seconds([sim.proc.pid]) - sim_before
        pg_cpu = postgres_cpu_seconds() - pg_before
        load_after = os.getloadavg()[0]
        stored = asyncio.run(check_database(db, expected))
        callbacks = sim.sent_callbacks()
    finally:
        sim.stop()
        if not args.keep_db:
            asyncio.run(recreate_database(db, drop_only=True))
    ids = stored.pop("ids")
    ours = Counter({k: v for k, v in callbacks.items() if k in ids})
    duplicates = sum(1 for v in ours.values() if v > 1)
    sent = result["sent"]
    return {
        "mode": f"steady {args.rate}/s x {args.seconds}s" if steady else "backlog",
        "worker_src": args.worker_src,
        "worker_loop": "uvloop" if args.uvloop else "asyncio",
        # Other work on the machine skews throughput (not CPU per message as much): say so.
        "loadavg_1m_before_after": [round(load_before, 2), round(load_after, 2)],
        "messages": expected,
        "latency_ms": args.latency_ms,
        "tuning": spec["tuning"] or "defaults",
        "insert_s": round(insert_s, 2),
        "worker_seconds": round(result["seconds"], 2),
        "messages_per_s": round(sent / result["seconds"], 1),
        "worker_cpu_s": round(result["cpu_s"], 2),
        "worker_cpu_ms_per_message": round(1000 * result["cpu_s"] / max(1, sent), 3),
        "worker_cores": round(result["cpu_s"] / result["seconds"], 2),
        "worker_cpu_total_s_incl_startup": round(total_cpu, 2),
        "simulator_cpu_s": round(sim_cpu, 2),
        "postgres_cpu_s": round(pg_cpu, 2),
        "queued_to_sent_p50_ms": round(stored["p50_ms"], 1),
        "queued_to_sent_p99_ms": round(stored["p99_ms"], 1),
        "queued_to_sent_max_ms": round(stored["max_ms"], 1),
        "statuses": stored["statuses"],
        "distinct_wamids": stored["distinct_wamids"],
        "simulator_received_distinct": len(ours),
        "simulator_duplicates": duplicates,
        "ok": (
            stored["statuses"] == {"sent": expected}
            and stored["distinct_wamids"] == expected
            and len(ours) == expected
            and duplicates == 0
        ),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker-child":
        spec = json.loads(sys.argv[2])
        if spec.get("uvloop"):
            import uvloop

            uvloop.run(worker_main(spec))
        else:  # --loop asyncio: the default loop (PYTAKE_WORKER_EVENT_LOOP=asyncio)
            asyncio.run(worker_main(spec))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=0, help="0: SendingTuning's default")
    parser.add_argument("--concurrency", type=int, default=0, help="0: SendingTuning's default")
    parser.add_argument(
        "--tuning", action="append", default=[], help="NAME=VALUE, a SendingTuning float field"
    )
    parser.add_argument("--rate", type=int, default=0, help="steady mode: messages per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="steady mode: how long")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument(
        "--profile", default="", help="py-spy raw stacks of the worker, to this file"
    )
    parser.add_argument("--profile-seconds", type=float, default=15.0)
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="the worker's event loop (pytake worker's default: uvloop)",
    )
    parser.add_argument("--uvloop", action="store_true", help="same as --loop uvloop")
    parser.add_argument(
        "--worker-src",
        default=str(ROOT / "src"),
        help="where the worker imports pytake from (e.g. an export of an older commit, for A/B)",
    )
    args = parser.parse_args()
    args.uvloop = args.uvloop or args.loop == "uvloop"
    result = run(args)
    print(json.dumps(result, indent=2))
    if not result["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
