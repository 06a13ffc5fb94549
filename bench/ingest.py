"""Inbound webhook ingestion on PostgreSQL: events stored per second, against a no-work route.

Creates a fresh database, migrates it, registers an organisation and a Meta number through the
API, and pre-creates outbound messages (COPY) for the status bodies to move. Then, for 1 and for
2 server processes, serves the app with uvicorn exactly as `pytake serve` does (same options,
PYTAKE_REDIS_URL set, logging at WARNING, no access log) and drives it from a separate client
process with a fixed number of keep-alive connections:

- `GET /bench/noop`: a route this script adds to the app in its own factory (`bench_app`), so
  it passes the same middleware, on the same server, in the same run; it does no work;
- 1-message bodies: one inbound text per webhook, unique message ids, customers round-robin;
- 10-status bodies: ten `delivered` statuses per webhook, each for a pre-created outbound message.

Every webhook is signed (X-Hub-Signature-256 with the config's app secret). Afterwards the
database must hold exactly the events that were acknowledged: no loss, no duplicates.

The client is a minimal HTTP/1.1 keep-alive client on uvloop rather than aiohttp: on 2 cores,
aiohttp's per-request cost would take a large share of the CPU the server is measured on. Its CPU
time is printed with the results.

    .venv/bin/python bench/ingest.py
    .venv/bin/python bench/ingest.py --workers 1 --messages 10000 --statuses 3000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import secrets
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pytake.whatsapp.cloud import sign  # noqa: E402

WEBHOOK = "/api/v1/whatsapp/webhook"
NOOP = "/bench/noop"
PASSWORD = "bench-password-123"
BASE_TS = 1_760_000_000


def bench_app() -> Any:
    """The app of `pytake serve` plus one route that does nothing (the bench's yardstick)."""
    from fastapi.responses import PlainTextResponse

    from pytake.app import create_app

    app = create_app()

    @app.get(NOOP, include_in_schema=False)
    async def noop() -> PlainTextResponse:
        return PlainTextResponse("ok")

    return app


# ---------------------------------------------------------------- database and server


def _pg(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def recreate_database(url: str) -> None:
    import asyncpg

    base, name = _pg(url).rsplit("/", 1)
    conn = await asyncpg.connect(base + "/postgres")
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
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


SERVE = """
import uvicorn
from pytake.config import get_settings
from pytake.observability import configure_logging
settings = get_settings()
configure_logging(settings.log_level, settings.log_json)
import os
profile = os.environ.get("PYTAKE_BENCH_PROFILE")
if profile:  # --profile: cProfile of the (single) server process, dumped when uvicorn returns
    import cProfile
    import signal
    import sys
    profiler = cProfile.Profile()
    def dump(*_):  # uvicorn re-raises the SIGTERM it caught once it has shut down
        profiler.disable()
        profiler.dump_stats(profile)
        sys.exit(0)
    signal.signal(signal.SIGTERM, dump)
    profiler.enable()
# The options of `pytake serve` (src/pytake/cli.py), with the bench's factory.
uvicorn.run("ingest:bench_app", factory=True, host="127.0.0.1", port={port}, workers={workers},
            access_log=False, log_config=None, proxy_headers=True)
if profile:
    dump()
"""


class Server:
    def __init__(
        self, db: str, redis: str, port: int, workers: int, profile: str | None = None
    ) -> None:
        env = {
            **os.environ,
            "PYTAKE_DATABASE_URL": db,
            "PYTAKE_REDIS_URL": redis,
            "PYTAKE_LOG_LEVEL": "WARNING",
            "PYTAKE_AUTO_MIGRATE": "false",
            "PYTAKE_RATE_LIMIT_ENABLED": "false",
            "PYTHONPATH": f"{ROOT / 'bench'}:{ROOT / 'src'}",
        }
        if profile:
            env["PYTAKE_BENCH_PROFILE"] = profile
        self.port = port
        code = SERVE.replace("{port}", str(port)).replace("{workers}", str(workers))
        self.proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)

    async def wait(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}{NOOP}") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError("server did not start")

    def pids(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        found = [self.proc.pid]
        if children.exists():
            found += [int(p) for p in children.read_text().split()]
        return found

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each process that still exists."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return found


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    # Processes alive at both samples only (the pooled backends, the server processes).
    return sum(after[pid] - before[pid] for pid in before if pid in after)


async def postgres_pids(db: str) -> list[int]:
    """The backends serving the bench database (other databases on this PostgreSQL, and its
    shared WAL writer and checkpointer, are left out)."""
    import asyncpg

    conn = await asyncpg.connect(_pg(db))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [row["pid"] for row in rows]


@dataclass
class Number:
    organization_id: str
    config_id: str
    pnid: str
    waba: str
    app_secret: str


async def setup_number(port: int) -> Number:
    """An organisation and a Meta number, through the API as a user would."""
    import aiohttp

    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
        body = {"email": email, "password": PASSWORD, "name": "Ingest bench"}
        async with http.post(f"{base}/api/v1/auth/register", json=body) as r:
            assert r.status == 201, await r.text()
            user = await r.json()
        pnid = str(10**14 + secrets.randbelow(9 * 10**14))
        waba, app_secret = str(10**14 + secrets.randbelow(9 * 10**14)), secrets.token_hex(16)
        config = {
            "name": "Bench number",
            "provider": "official",
            "phone_number_id": pnid,
            "business_account_id": waba,
            "access_token": "EAA" + secrets.token_hex(16),
            "app_secret": app_secret,
            "webhook_verify_token": "verify-bench",
        }
        headers = {"Authorization": f"Bearer {user['token']}"}
        async with http.post(f"{base}/api/v1/whatsapp-configs", json=config, headers=headers) as r:
            assert r.status == 201, await r.text()
            created = await r.json()
    return Number(
        user["user"]["organization_id"],
        created["id"],
        pnid,
        waba,
        app_secret,
    )


async def seed_outbound(db: str, number: Number, count: int) -> None:
    """`count` sent outbound messages (wamid.out-<i>) spread over 1,000 conversations."""
    import asyncpg

    conn = await asyncpg.connect(_pg(db))
    org, channel = uuid.UUID(number.organization_id), uuid.UUID(number.config_id)
    now = time_now()
    people = []
    for i in range(1000):
        wa = f"5521{9_0000_0000 + i:09d}"
        people.append((uuid.uuid4(), uuid.uuid4(), wa))
    await conn.copy_records_to_table(
        "contacts",
        columns=["id", "organization_id", "whatsapp_id", "match_key", "wa_id", "attributes",
                 "opt_in", "is_blocked", "created_at", "updated_at"],
        records=[(c, org, "+" + wa, wa, wa, "{}", True, False, now, now) for c, _, wa in people],
    )  # fmt: skip
    await conn.copy_records_to_table(
        "conversations",
        columns=["id", "organization_id", "contact_id", "channel_id", "status", "is_bot_active",
                 "message_count", "unread_count", "tags", "created_at", "updated_at"],
        records=[(v, org, c, channel, "open", True, 0, 0, "[]", now, now) for c, v, _ in people],
    )  # fmt: skip
    records = []
    for i in range(count):
        contact, conversation, wa = people[i % len(people)]
        records.append((uuid.uuid4(), org, conversation, contact, channel, "outbound", "text",
                        '{"text": "hi"}', "sent", f"wamid.out-{i}", now, now, now, "+" + wa, 1))  # fmt: skip
    await conn.copy_records_to_table(
        "messages",
        columns=["id", "organization_id", "conversation_id", "contact_id", "channel_id",
                 "direction", "type", "content", "status", "provider_message_id", "sent_at",
                 "created_at", "updated_at", "recipient", "attempts"],
        records=records,
    )  # fmt: skip
    await conn.execute("VACUUM ANALYZE")
    await conn.close()


def time_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


# ---------------------------------------------------------------- request bodies


def _envelope(number: Number, value: dict[str, Any]) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": number.pnid},
        **value,
    }
    entry = {"id": number.waba, "changes": [{"field": "messages", "value": value}]}
    return {"object": "whatsapp_business_account", "entry": [entry]}


def message_body(number: Number, tag: str, i: int, customers: int) -> bytes:
    wa = f"5511{9_0000_0000 + i % customers:09d}"
    item = {
        "from": wa,
        "id": f"wamid.bench-{tag}-{i}",
        "timestamp": str(BASE_TS + i),
        "type": "text",
        "text": {"body": f"Olá! Pedido número {i}, pode confirmar a entrega?"},
    }
    value = {"contacts": [{"profile": {"name": f"Cliente {i % customers}"}, "wa_id": wa}]}
    return json.dumps(_envelope(number, {**value, "messages": [item]})).encode()


def status_body(number: Number, first: int, status: str = "delivered") -> bytes:
    items = [
        {
            "id": f"wamid.out-{n}",
            "status": status,
            "timestamp": str(BASE_TS + n),
            "recipient_id": f"5521{9_0000_0000 + n % 1000:09d}",
            "conversation": {"id": "c" + str(n % 1000), "origin": {"type": "service"}},
            "pricing": {"billable": True, "pricing_model": "PMP", "category": "service"},
        }
        for n in range(first, first + 10)
    ]
    return json.dumps(_envelope(number, {"statuses": items})).encode()


def http_request(port: int, path: str, body: bytes | None, secret: str) -> bytes:
    if body is None:
        return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nX-Hub-Signature-256: {sign(secret, body)}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def build_requests(spec: dict[str, Any]) -> list[bytes]:
    number = Number(**spec["number"])
    port, kind, count = spec["port"], spec["kind"], spec["count"]
    if kind == "noop":
        return [http_request(port, NOOP, None, "")] * count
    if kind == "messages":
        bodies = [message_body(number, spec["tag"], i, spec["customers"]) for i in range(count)]
    else:
        bodies = [status_body(number, spec["first"] + 10 * i) for i in range(count)]
    return [http_request(port, WEBHOOK, body, number.app_secret) for body in bodies]


# ---------------------------------------------------------------- the load client


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"transfer-encoding":
            raise RuntimeError("chunked responses are not expected from these routes")
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    port: int, requests: list[bytes], counter: Any, latencies: list[float], statuses: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (i := next(counter)) < len(requests):
            started = time.perf_counter()
            writer.write(requests[i])
            statuses[i] = await _read_response(reader)
            latencies[i] = time.perf_counter() - started
    finally:
        writer.close()


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Send every request once over `connections` keep-alive connections; time each."""
    requests = build_requests(spec)
    latencies = [0.0] * len(requests)
    statuses = [0] * len(requests)
    counter = itertools.count()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _connection(spec["port"], requests, counter, latencies, statuses)
            for _ in range(spec["connections"])
        )
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    ordered = sorted(latencies)
    return {
        "requests": len(requests),
        "seconds": elapsed,
        "ok": sum(1 for s in statuses if s == 200),
        "errors": {str(s): statuses.count(s) for s in set(statuses) if s != 200},
        "failed_indexes": [i for i, s in enumerate(statuses) if s != 200][:20],
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        "max_ms": ordered[-1] * 1000,
        "over_1s": sum(1 for x in latencies if x > 1.0),
        "client_cpu_s": cpu,
    }


def client_main(spec_json: str) -> None:
    import uvloop

    result = uvloop.run(drive(json.loads(spec_json)))
    print(json.dumps(result))


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (anything not idle or waiting on I/O) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


async def run_client(spec: dict[str, Any], server: Server, db: str) -> dict[str, Any]:
    """Run the load in a separate process; also count the server's, PostgreSQL's and the whole
    machine's CPU over the run (the machine figure shows anything else that was running)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", json.dumps(spec), stdout=subprocess.PIPE
    )
    await asyncio.sleep(0.5)  # the pool's PostgreSQL backends exist by now (warm-up ran)
    pg = await postgres_pids(db)
    # Sampled around the whole client process, whose request building (before its clock starts)
    # is idle time for the server: the per-second figures are a slight underestimate.
    server_cpu, pg_cpu, busy = cpu_by_pid(server.pids()), cpu_by_pid(pg), machine_busy_seconds()
    out, _ = await proc.communicate()
    result: dict[str, Any] = json.loads(out)
    seconds = result["seconds"]
    result["server_cpu_per_s"] = cpu_delta(server_cpu, cpu_by_pid(server.pids())) / seconds
    result["postgres_cpu_per_s"] = cpu_delta(pg_cpu, cpu_by_pid(pg)) / seconds
    result["machine_busy_per_s"] = (machine_busy_seconds() - busy) / seconds
    return result


# ---------------------------------------------------------------- verification


async def verify_messages(db: str, number: Number, tag: str, acked: int, sent: int) -> str:
    """Messages stored for this run: all acknowledged ones, at most the sent ones, once each."""
    import asyncpg

    conn = await asyncpg.connect(_pg(db))
    try:
        total, distinct = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT provider_message_id) FROM messages "
            "WHERE channel_id = $1 AND provider_message_id LIKE $2",
            uuid.UUID(number.config_id),
            f"wamid.bench-{tag}-%",
        )
        split = await conn.fetchval(
            "SELECT count(*) FROM (SELECT contact_id FROM conversations WHERE channel_id = $1 "
            "AND status = 'open' GROUP BY contact_id HAVING count(*) > 1) AS s",
            uuid.UUID(number.config_id),
        )
        counted, inbound = await conn.fetchrow(
            "SELECT (SELECT coalesce(sum(message_count), 0) FROM conversations "
            "WHERE channel_id = $1), (SELECT count(*) FROM messages WHERE channel_id = $1 "
            "AND direction = 'inbound')",
            uuid.UUID(number.config_id),
        )
    finally:
        await conn.close()
    ok = acked <= total <= sent and total == distinct and split == 0 and counted == inbound
    return (
        f"{'OK' if ok else 'MISMATCH'}: {total} stored ({distinct} distinct) for {acked} "
        f"acknowledged of {sent} sent; customers with >1 open conversation: {split}; "
        f"conversation counters {counted} = inbound rows {inbound}"
    )


async def verify_statuses(db: str, number: Number, first: int, acked: int, sent: int) -> str:
    import asyncpg

    conn = await asyncpg.connect(_pg(db))
    try:
        moved = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE channel_id = $1 AND status = 'delivered' "
            "AND delivered_at IS NOT NULL AND provider_message_id = ANY($2::text[])",
            uuid.UUID(number.config_id),
            [f"wamid.out-{n}" for n in range(first, first + 10 * sent)],
        )
        pending = await conn.fetchval("SELECT count(*) FROM pending_statuses")
    finally:
        await conn.close()
    ok = 10 * acked <= moved <= 10 * sent and pending == 0
    return (
        f"{'OK' if ok else 'MISMATCH'}: {moved} messages moved to delivered for "
        f"{10 * acked} acknowledged statuses of {10 * sent} sent; pending statuses: {pending}"
    )


# ---------------------------------------------------------------- the run


def _line(name: str, r: dict[str, Any], events: int, noop: float | None) -> str:
    rps = r["ok"] / r["seconds"]
    ratio = f"{rps / noop:.2f}" if noop else "—"
    errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "none"
    return (
        f"| {name} | {r['requests']:,} | {rps:,.0f} | {rps * events:,.0f} | {ratio} "
        f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.0f} | {r['over_1s']} "
        f"| {errors} | {r['server_cpu_per_s']:.2f} | {r['postgres_cpu_per_s']:.2f} "
        f"| {r['client_cpu_s'] / r['seconds']:.2f} | {r['machine_busy_per_s']:.2f} "
        f"| {cpu_ms(r):.2f} |"
    )


def cpu_ms(r: dict[str, Any]) -> float:
    """Server + PostgreSQL CPU milliseconds per acknowledged request: unlike requests/s, it
    hardly moves when other work on the machine takes cores away."""
    return (r["server_cpu_per_s"] + r["postgres_cpu_per_s"]) * 1000 / (r["ok"] / r["seconds"])


HEADER = [
    "| workers · body | requests | requests/s | events/s | × no-work | p50 ms | p99 ms "
    "| max ms | > 1 s | non-200 | server CPU | PostgreSQL CPU | client CPU | machine busy "
    "| CPU ms/request |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
]


async def run_workers(
    args: argparse.Namespace, number: Number, workers: int, status_first: int
) -> tuple[list[str], list[str], int]:
    profile = f"{args.profile}.{workers}.prof" if args.profile and workers == 1 else None
    server = Server(args.db, args.redis, args.port, workers, profile)
    lines: list[str] = []
    checks: list[str] = []
    try:
        await server.wait()
        base = {"port": args.port, "connections": args.connections, "number": vars(number)}
        warm = {**base, "kind": "messages", "count": 2000, "tag": f"warm{workers}",
                "customers": args.customers}  # fmt: skip
        await run_client({**base, "kind": "noop", "count": 5000}, server, args.db)
        await run_client(warm, server, args.db)
        noop = await run_client({**base, "kind": "noop", "count": args.noop}, server, args.db)
        noop_rps = noop["ok"] / noop["seconds"]
        lines.append(_line(f"{workers} · no-work GET {NOOP}", noop, 0, None))
        tag = f"w{workers}"
        spec = {**base, "kind": "messages", "count": args.messages, "tag": tag,
                "customers": args.customers}  # fmt: skip
        msgs = await run_client(spec, server, args.db)
        lines.append(_line(f"{workers} · 1 message", msgs, 1, noop_rps))
        checks.append(
            f"{workers} worker(s), 1-message bodies: "
            + await verify_messages(args.db, number, tag, msgs["ok"], args.messages)
        )
        spec = {**base, "kind": "statuses", "count": args.statuses, "first": status_first}
        stats = await run_client(spec, server, args.db)
        lines.append(_line(f"{workers} · 10 statuses", stats, 10, noop_rps))
        checks.append(
            f"{workers} worker(s), 10-status bodies: "
            + await verify_statuses(args.db, number, status_first, stats["ok"], args.statuses)
        )
        for r in (noop, msgs, stats):
            if r["errors"]:
                checks.append(f"non-200 responses: {r['errors']} (first: {r['failed_indexes']})")
    finally:
        server.stop()
    return lines, checks, status_first + 10 * args.statuses


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--db", default="postgresql+asyncpg://postgres@127.0.0.1:5432/pytake_bench_ingest"
    )
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--port", type=int, default=18780)
    p.add_argument("--workers", default="1,2", help="comma-separated server process counts")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--noop", type=int, default=30000, help="no-work requests per run")
    p.add_argument("--messages", type=int, default=30000, help="1-message webhooks per run")
    p.add_argument("--statuses", type=int, default=8000, help="10-status webhooks per run")
    p.add_argument("--customers", type=int, default=2000, help="distinct senders")
    p.add_argument(
        "--profile",
        help="cProfile the 1-process server into PROFILE.1.prof (slows it; figures not comparable)",
    )
    args = p.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    await recreate_database(args.db)
    await migrate(args.db)
    setup = Server(args.db, args.redis, args.port, 1)
    try:
        await setup.wait()
        number = await setup_number(args.port)
    finally:
        setup.stop()
    await seed_outbound(args.db, number, 10 * args.statuses * len(workers))
    lines, checks, first = list(HEADER), [], 0
    for count in workers:
        more, verified, first = await run_workers(args, number, count, first)
        lines += more
        checks += verified
        print("\n".join(more), flush=True)
    print(f"\n{args.connections} connections; {args.customers} distinct customers\n")
    print("\n".join(lines))
    print("\n".join("- " + c for c in checks))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--client":
        client_main(sys.argv[2])
    else:
        asyncio.run(main())
