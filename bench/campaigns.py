"""Campaign throughput on PostgreSQL against the simulator, the whole system as deployed.

Creates a fresh database, migrates it, seeds an organisation, `--numbers` Meta numbers (tokens
encrypted as the app does), an APPROVED template per number and `--recipients` contacts split
between the numbers by tag. Child processes, each on its own:

- the simulator: `--latency-ms` on every Graph call, each number's throughput limit at
  `--rate` messages/s (it answers 130429 beyond), and status webhooks ON — sent, delivered
  and read for every message, signed, to the serve process;
- `pytake serve` (no background loops): the Meta webhook endpoint ingesting those statuses;
- `--workers` × `pytake worker`: every background loop, the campaign loop and the message
  dispatcher among them. Each number's `throughput` is `--rate`.

One campaign per number (send_rate_limit `--rate`) is created and started through the service
(the start materialises its audience in one INSERT … SELECT, timed). Sampled every second from
the database: messages sent, and the ingest backlog = messages sent whose `read` status is not
applied yet (the simulator emits all three statuses at once, so that is what ingest owes).

Figures: messages/s sustained (from 10 % to 90 % of the messages, and first to last), the
workers' and serve's CPU per message (with PostgreSQL's and the simulator's for context), the
backlog over time, and duplicates (the simulator's copy of each recipient's messages: 0).

    .venv/bin/python bench/campaigns.py --recipients 100000
    .venv/bin/python bench/campaigns.py --recipients 100000 --workers 2 --numbers 2 --simulators 2

`--simulators N` runs N simulator processes on one Graph port (SO_REUSEPORT), so the stand-in
can use more than one core; `--coalesce-ms` has it put a number's statuses in shared webhooks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from dispatch import (  # noqa: E402  (bench/dispatch.py: processes, CPU, database helpers)
    child_env,
    cpu_seconds,
    migrate,
    postgres_cpu_seconds,
    recreate_database,
    start_script,
)

DEFAULT_DB = "postgresql+asyncpg://postgres@127.0.0.1:5432/pytake_bench_campaigns"
SECRET_KEY = "bench-campaigns-secret-key-" + "x" * 40
APP_SECRET = "bench-app-secret"

SIMULATOR = """
import asyncio, json, sys
import uvloop
from aiohttp import web
from pytake.whatsapp.simulator import Simulator, SimulatorSettings

spec = json.loads(sys.stdin.readline())

async def main():
    extra = {"status_coalesce_seconds": spec["coalesce_ms"] / 1000} if spec["coalesce_ms"] else {}
    settings = SimulatorSettings(status_delays=tuple(spec["status_delays"]), default_mps=spec["mps"],
                                 webhook_retries=5, retry_backoff=0.5, **extra)
    sim = Simulator(settings, faults={"latency_ms": spec["latency_ms"]})
    url = await sim.start("127.0.0.1", 0)  # its own port: the control API of this process
    if spec["shared_port"]:
        # The Graph port every simulator process listens on (SO_REUSEPORT: the kernel spreads
        # the workers' connections between them).
        await web.TCPSite(sim._runner, "127.0.0.1", spec["shared_port"], reuse_port=True).start()
    graph = f"http://127.0.0.1:{spec['shared_port']}/v23.0" if spec["shared_port"] else sim.graph_url
    for number in spec["numbers"]:
        sim.register_number(number["pnid"], number["token"], spec["app_secret"],
                            waba_id=number["waba"], webhook_url=spec["webhook_url"],
                            mps=spec["mps"])
        sim.register_template(number["waba"], spec["template"], "pt_BR",
                              components=[{"type": "BODY", "text": "Olá {{1}}, 20% hoje"}],
                              category="MARKETING")
    print(json.dumps({"url": url, "graph_url": graph}), flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
"""


# `--profile DIR`: the first worker and serve run under cProfile (DIR/worker.prof,
# DIR/serve.prof, written when they stop; read them with `python -m pstats`). The clock is the
# process's CPU time: with wall time, every await counts as time spent in what awaited.
PROFILED = """
import cProfile, sys, time
from pytake.cli import app
out = sys.argv[1]
sys.argv = ["pytake"] + sys.argv[2:]
profile = cProfile.Profile(time.process_time)
try:
    profile.runcall(app)
except SystemExit:
    pass
finally:
    profile.dump_stats(out)
"""


def command(pytake: str, args: list[str], profile: str | None, name: str) -> list[str]:
    if profile is None:
        return [pytake, *args]
    Path(profile).mkdir(parents=True, exist_ok=True)
    return [sys.executable, "-c", PROFILED, str(Path(profile) / f"{name}.prof"), *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(db: str, graph_url: str, worker_nice: int = 0) -> dict[str, str]:
    return {
        **child_env(),
        # The workers' priority (PYTAKE_WORKER_NICE, 0 by default): 0 here, so
        # figures stay comparable with the runs before it existed.
        "PYTAKE_WORKER_NICE": str(worker_nice),
        "PYTAKE_ENV": "test",
        "PYTAKE_DATABASE_URL": db,
        "PYTAKE_SECRET_KEY": SECRET_KEY,
        "PYTAKE_META_GRAPH_URL": graph_url,
        "PYTAKE_ALLOW_PRIVATE_URLS": "true",
        "PYTAKE_AUTO_MIGRATE": "false",
        "PYTAKE_RUN_BACKGROUND_LOOPS": "false",
        "PYTAKE_RATE_LIMIT_ENABLED": "false",
        "PYTAKE_LOG_LEVEL": "WARNING",
        "PYTAKE_WORKER_POLL_SECONDS": "0.2",
    }


async def seed(db: str, spec: dict[str, Any], recipients: int) -> dict[str, Any]:
    """Organisation, numbers, templates, contacts (Core, in chunks) tagged per number."""
    from sqlalchemy import insert

    from pytake.config import Settings
    from pytake.contact.search import contact_search_text
    from pytake.db import create_engine, create_session_factory
    from pytake.kit.crypto import secret_box
    from pytake.models import Channel, MessageTemplate, Organization, Tag
    from pytake.models.contact import contact_tags_table, contacts_table

    settings = Settings(_env_file=None, secret_key=SECRET_KEY)  # type: ignore[call-arg]
    box = secret_box(settings)
    engine = create_engine(db)
    org_id = uuid.uuid4()
    tags: list[uuid.UUID] = []
    async with create_session_factory(engine)() as session:
        session.add(Organization(id=org_id, name="Campaign bench"))
        await session.flush()
        for index, number in enumerate(spec["numbers"]):
            number["id"] = uuid.uuid4()
            session.add(
                Channel(
                    id=number["id"],
                    organization_id=org_id,
                    name=f"Number {index}",
                    provider="official",
                    phone_number_id=number["pnid"],
                    business_account_id=number["waba"],
                    access_token_encrypted=box.encrypt(number["token"]),
                    app_secret_encrypted=box.encrypt(APP_SECRET),
                    is_active=True,
                    is_default=index == 0,
                    throughput=spec["rate"],
                )
            )
            await session.flush()
            number["template_id"] = uuid.uuid4()
            session.add(
                MessageTemplate(
                    id=number["template_id"],
                    organization_id=org_id,
                    channel_id=number["id"],
                    business_account_id=number["waba"],
                    name=spec["template"],
                    language="pt_BR",
                    category="MARKETING",
                    parameter_format="POSITIONAL",
                    components=[{"type": "BODY", "text": "Olá {{1}}, 20% hoje"}],
                    status="APPROVED",
                )
            )
            tag = Tag(id=uuid.uuid4(), organization_id=org_id, name=f"n{index}")
            tag.created_at = datetime.now(UTC)
            session.add(tag)
            tags.append(tag.id)
        await session.commit()
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        for start in range(0, recipients, 5000):
            contacts, links = [], []
            for n in range(start, min(recipients, start + 5000)):
                cid, phone = uuid.uuid4(), f"5511{9_0000_0000 + n:09d}"
                name = f"Cliente {n}"
                contacts.append(
                    {
                        "id": cid,
                        "organization_id": org_id,
                        "whatsapp_id": "+" + phone,
                        "match_key": phone,
                        "wa_id": phone,
                        "name": name,
                        "attributes": {},
                        "opt_in": True,
                        "is_blocked": False,
                        "search_text": contact_search_text(name, None, "+" + phone),
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                links.append(
                    {
                        "contact_id": cid,
                        "tag_id": tags[n % len(tags)],
                        "contact_created_at": now,
                    }
                )
            await conn.execute(insert(contacts_table), contacts)
            await conn.execute(insert(contact_tags_table), links)
        await conn.exec_driver_sql("ANALYZE")
    await engine.dispose()
    return {"org_id": org_id}


async def start_campaigns(db: str, spec: dict[str, Any], org_id: uuid.UUID, rate: int) -> float:
    """Create and start one campaign per number through the service; returns the seconds the
    starts (materialisation) took."""
    from pytake.auth.principal import Principal
    from pytake.auth.scopes import ROLE_SCOPES, Role
    from pytake.campaign import service
    from pytake.campaign.schemas import CampaignCreateIn
    from pytake.db import create_engine, create_session_factory, unit_of_work

    engine = create_engine(db)
    factory = create_session_factory(engine)
    principal = Principal(org_id, Role.ORG_ADMIN, ROLE_SCOPES[Role.ORG_ADMIN])
    ids = []
    for index, number in enumerate(spec["numbers"]):
        body = CampaignCreateIn.model_validate(
            {
                "name": f"Bench {index}",
                "target_type": "tags",
                "target_filters": {"tags": [f"n{index}"]},
                "template_id": str(number["template_id"]),
                "message_content": {"variables": {"1": "{{contact.name}}"}},
                "send_rate_limit": rate,
                "channel_id": str(number["id"]),
            }
        )
        async with unit_of_work(factory) as session:
            ids.append((await service.create_campaign(session, principal, body)).id)
    started = time.perf_counter()
    for campaign_id in ids:
        async with unit_of_work(factory) as session:
            await service.act(session, principal, campaign_id, "start")
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return elapsed


async def backend_pids(db: str) -> list[int]:
    """The PostgreSQL backends connected to this database (but this query's)."""
    import asyncpg

    conn = await asyncpg.connect(db.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [int(row["pid"]) for row in rows]


def backend_cpu(db: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to this database."""
    found = {}
    for pid in asyncio.run(backend_pids(db)):
        found[pid] = cpu_seconds([pid])
    return found


async def sample(conn: Any) -> tuple[int, int, int]:
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE sent_at IS NOT NULL),"
        " count(*) FILTER (WHERE status = 'read'), count(*) FILTER (WHERE status = 'failed')"
        " FROM messages WHERE direction = 'outbound'"
    )
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


async def sample_statements(dsn: str, every: float, seen: Counter[str]) -> None:
    """A sampling profile of this database's statements: every `every` s, the text of each
    statement its backends are running (the server does not preload pg_stat_statements; a
    statement's share of the samples is its share of the backends' busy time)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        while True:
            rows = await conn.fetch(
                "SELECT query, wait_event_type FROM pg_stat_activity"
                " WHERE datname = current_database() AND state = 'active'"
                " AND pid <> pg_backend_pid()"
            )
            # What it waits on (Lock, IO, LWLock…) or CPU: a statement waiting on a row lock
            # is active too.
            seen.update(
                f"[{row['wait_event_type'] or 'CPU'}] " + " ".join(str(row["query"]).split())[:400]
                for row in rows
            )
            await asyncio.sleep(every)
    finally:
        await conn.close()


async def analyze_tables(dsn: str, every: float, tables: tuple[str, ...]) -> None:
    """ANALYZE the growing tables every `every` s, as autovacuum would on a server where it is
    on (this one runs with it off: generic plans would otherwise use an empty table's
    statistics)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        while True:
            await asyncio.sleep(every)
            await conn.execute("ANALYZE " + ", ".join(tables))
    finally:
        await conn.close()


GROWING = ("messages", "campaign_recipients", "conversations", "events", "pending_statuses")


async def watch(
    db: str,
    total: int,
    give_up_after: float,
    analyze_every: float = 0.0,
    statements: Counter[str] | None = None,
) -> dict[str, Any]:
    """Sample every second (one connection: the server is shared) until every message is
    sent and its statuses are in, or 60 s after the last send."""
    import asyncpg

    dsn = db.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    helpers = []
    if analyze_every > 0:
        helpers.append(asyncio.create_task(analyze_tables(dsn, analyze_every, GROWING)))
    if statements is not None:
        helpers.append(asyncio.create_task(sample_statements(dsn, 0.05, statements)))
    began = time.perf_counter()
    series: list[tuple[float, int, int]] = []
    marks: dict[str, float] = {}
    failed = 0
    try:
        while True:
            # Every 2 s: the count reads the whole messages table (no index may mention
            # `status`), a cost that grows with the run; at 1 s it was ~8 % of this
            # database's busy time at 9,000 messages.
            await asyncio.sleep(2.0)
            sent, read, failed = await sample(conn)
            now = time.perf_counter() - began
            series.append((now, sent, sent - read))
            for name, fraction in (("p10", 0.1), ("p90", 0.9)):
                if name not in marks and sent >= total * fraction:
                    marks[name] = now
            if sent + failed >= total and "done" not in marks:
                marks["done"] = now
            if "done" in marks and (sent - read <= 0 or now - marks["done"] > 60):
                return {"series": series, "marks": marks, "failed": failed}
            if now > give_up_after:
                raise RuntimeError(f"timed out: {sent} of {total} sent")
    finally:
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        await conn.close()


def sim_sent(url: str) -> Counter[str]:
    with urllib.request.urlopen(f"{url}/_sim/messages", timeout=300) as response:
        items = json.loads(response.read())
    return Counter(f"{m['channel']}:{m['to']}" for m in items)


def run(args: argparse.Namespace) -> dict[str, Any]:
    db = args.db
    port = free_port()
    spec: dict[str, Any] = {
        "rate": args.rate,
        "latency_ms": args.latency_ms,
        "app_secret": APP_SECRET,
        "webhook_url": f"http://127.0.0.1:{port}/api/v1/whatsapp/webhook",
        "template": "bench_promo",
        "numbers": [
            {
                "pnid": str(10**14 + secrets.randbelow(9 * 10**14)),
                "waba": str(10**14 + secrets.randbelow(9 * 10**14)),
                "token": "EAA" + secrets.token_hex(16),
            }
            for _ in range(args.numbers)
        ],
    }
    # `--simulators N`: N processes on one Graph port (SO_REUSEPORT), each knowing every number
    # and limiting each to rate / N (each sees about 1/N of a number's sends).
    spec["shared_port"] = free_port() if args.simulators > 1 else 0
    spec["mps"] = max(1, args.rate // args.simulators)
    spec["coalesce_ms"] = args.coalesce_ms
    spec["status_delays"] = [float(x) for x in args.status_delays.split(",")]
    sims, sim_infos = [], []
    for _ in range(args.simulators):
        sim, info = start_script(SIMULATOR, spec)
        sim_infos.append(info)
        sims.append(sim)
    sim_info = sim_infos[0]
    children: list[subprocess.Popen[bytes]] = []
    try:
        asyncio.run(recreate_database(db))
        asyncio.run(migrate(db))
        t = time.perf_counter()
        seeded = asyncio.run(seed(db, spec, args.recipients))
        seed_s = time.perf_counter() - t
        env = env_for(db, sim_info["graph_url"], args.worker_nice)
        pytake = str(Path(sys.executable).parent / "pytake")
        serve_args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
        serve = subprocess.Popen(
            command(pytake, serve_args, args.profile, "serve"), env=env, cwd=ROOT
        )
        children.append(serve)
        workers = [
            subprocess.Popen(command(pytake, ["worker"], args.profile, "worker"), env=env, cwd=ROOT)
        ]
        workers += [
            subprocess.Popen([pytake, "worker"], env=env, cwd=ROOT) for _ in range(args.workers - 1)
        ]
        children += workers
        time.sleep(4)  # imports and start-up, before CPU is counted
        pids = {
            "workers": [w.pid for w in workers],
            "serve": [serve.pid],
            "sim": [sim.pid for sim in sims],
        }
        cpu0 = {k: cpu_seconds(v) for k, v in pids.items()}
        pg0 = postgres_cpu_seconds()
        mine0 = backend_cpu(db)
        load0 = os.getloadavg()[0]
        start_s = asyncio.run(start_campaigns(db, spec, seeded["org_id"], args.rate))
        total = args.recipients
        statements: Counter[str] | None = Counter() if args.statements else None
        watched = asyncio.run(watch(db, total, args.timeout, args.analyze_every, statements))
        cpu1 = {k: cpu_seconds(v) for k, v in pids.items()}
        pg1 = postgres_cpu_seconds()
        mine1 = backend_cpu(db)
        series, marks, failed = watched["series"], watched["marks"], watched["failed"]
        first = next(s for s in series if s[1] > 0)
        sustained = 0.8 * total / (marks["p90"] - marks["p10"])
        overall = total / marks["done"]
        per = {k: (cpu1[k] - cpu0[k]) / total * 1e6 for k in pids}
        counts: Counter[str] = Counter()
        for info in sim_infos:
            counts += sim_sent(info["url"])
        duplicates = sum(n - 1 for n in counts.values() if n > 1)
        return {
            "recipients": total,
            "workers": args.workers,
            "numbers": args.numbers,
            "simulators": args.simulators,
            "coalesce_ms": args.coalesce_ms,
            "status_delays": args.status_delays,
            "rate_limit_per_number": args.rate,
            "latency_ms": args.latency_ms,
            "seed_s": round(seed_s, 1),
            "start_s": round(start_s, 2),
            "sustained_per_s": round(sustained, 1),
            "first_to_last_per_s": round(overall, 1),
            "first_sent_at_s": round(first[0], 1),
            "done_s": round(marks["done"], 1),
            "failed": failed,
            "cpu_us_per_message": {k: round(v) for k, v in per.items()},
            # Every PostgreSQL process on the machine (other databases' work included) …
            "postgres_cpu_us_per_message": round((pg1 - pg0) / total * 1e6),
            # … and only this database's backends alive at the end (from their start or the
            # run's, whichever is later; a backend closed mid-run is missed).
            "postgres_own_backends_cpu_us_per_message": round(
                sum(v - mine0.get(pid, 0.0) for pid, v in mine1.items()) / total * 1e6
            ),
            "sim_received": sum(counts.values()),
            "duplicates": duplicates,
            "backlog": [(round(s[0]), s[2]) for s in series],
            "load_avg_1m": [load0, os.getloadavg()[0]],  # at the start and at the end
            "statements": statements.most_common(args.statements) if statements else None,
        }
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(60 if args.profile else 15)
            except subprocess.TimeoutExpired:
                child.kill()
        for sim in sims:
            sim.terminate()
        for sim in sims:
            sim.wait(10)
        if not args.keep:
            asyncio.run(recreate_database(db, drop_only=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1000, help="messages/s per number")
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--numbers", type=int, default=1)
    parser.add_argument(
        "--simulators", type=int, default=1, help="simulator processes sharing the Graph port"
    )
    parser.add_argument(
        "--coalesce-ms",
        type=float,
        default=0.0,
        help="the simulator's status_coalesce_seconds (several statuses per webhook), in ms",
    )
    parser.add_argument(
        "--status-delays",
        default="0,0,0",
        help="seconds before the sent, delivered and read webhooks (the simulator's default is "
        "0.3,0.8,1.5; 0 sends `sent` the moment the send is answered, before PyTake has "
        "recorded the wamid, so every status takes the early path through pending_statuses)",
    )
    parser.add_argument("--worker-nice", type=int, default=0, help="PYTAKE_WORKER_NICE")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--profile", help="directory for cProfile output of worker and serve")
    parser.add_argument(
        "--analyze-every",
        type=float,
        default=0.0,
        help="ANALYZE the growing tables every N s (as autovacuum would; this server has it off)",
    )
    parser.add_argument(
        "--statements", type=int, default=0, help="print the N most sampled statements"
    )
    result = run(parser.parse_args())
    backlog = result.pop("backlog")
    statements = result.pop("statements")
    print(json.dumps(result, indent=1))
    if statements:
        total = sum(n for _, n in statements)
        print("statements (share of the active samples among the top; 50 ms sampling):")
        for query, n in statements:
            print(f"  {n:6d} {100 * n / total:5.1f}%  {query}")
    print("backlog (s: messages sent whose read status is not applied yet):")
    print("  " + ", ".join(f"{t}:{n}" for t, n in backlog))


if __name__ == "__main__":
    main()
