"""Chatbot replies under load on PostgreSQL: `--customers` customers each walk a 6-node flow.

Creates a fresh database and migrates it, then starts one `pytake serve` (loops off) and one
`pytake worker` (the background loops, the chatbot consumer among them) as child processes,
sharing Redis for wake-ups. The simulator runs in this process: customers post signed Cloud
API webhooks to `serve`, the worker's consumer answers, the dispatcher sends the replies to
the simulator's Graph API. The flow (keyword `start`):

    ask_name (question) -> ask_email (question, e-mail) -> tag (set_variable)
      -> check (condition) -> menu (message with 2 buttons) -> bye (end)

Each customer sends 4 messages (start, a name, an e-mail, a button tap), each only after the
answer to the previous one arrived; all customers together send at most `--rate` messages/s.

Figures: time from the webhook's 200 to the bot's answer reaching the simulator (p50, p90,
p99, max), the webhook's own round trip (post to 200: time a customer waits before that
interval starts), answers/s, and CPU per bot step: the CPU seconds of `serve` + `worker` over the
run (ingesting the customer's message and sending the answer are part of a step's cost),
divided by the answers; PostgreSQL's backends (of this database) alongside, for context.
Status webhooks are off by default (`--statuses` turns them on): they are ingest's load,
measured by bench/ingest.py.

Checks: every customer got exactly its 4 answers, in order; the inbox is empty.

`--consumer-alone`: only the chatbot consumer's own cost, in this process. `serve` ingests (no
worker, so replies stay queued); all customers send each of their 4 messages, then the
consumer's rounds run until the inbox is empty, timed by `time.process_time` (and profiled
with `--profile`): CPU and statements per step of the consumer itself, where the run above
mixes in ingest, the dispatcher and every other loop on a machine shared with PostgreSQL.
`--cpu-by-task DIR`: the worker's CPU split by the task each event-loop callback steps (its
loops by name). `--worker-nice`: the worker's priority (0 by default, as before ed87a8c).

    flock /tmp/pytake-bench.lock .venv/bin/python bench/chatbots.py
    flock /tmp/pytake-bench.lock .venv/bin/python bench/chatbots.py --customers 200 --rate 100
    flock /tmp/pytake-bench.lock .venv/bin/python bench/chatbots.py --consumer-alone --customers 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import aiohttp  # noqa: E402

from pytake.whatsapp.simulator import Simulator, SimulatorSettings  # noqa: E402

DEFAULT_DB = "postgresql+asyncpg://postgres@127.0.0.1:5432/pytake_bench_chatbots"
SECRET_KEY = "bench-chatbots-secret-key-" + "x" * 40
PASSWORD = "correct-horse-battery"

FLOW = {
    "name": "Bench", "trigger": {"type": "keyword", "keywords": ["start"]}, "entry": "ask_name",
    "nodes": [
        {"id": "ask_name", "type": "question", "text": "What is your name?",
         "variable": "name", "next": "ask_email"},
        {"id": "ask_email", "type": "question", "text": "Your e-mail, {{name}}?",
         "variable": "email", "input": {"type": "email"}, "next": "tag"},
        {"id": "tag", "type": "set_variable", "variable": "source", "value": "bench",
         "next": "check"},
        {"id": "check", "type": "condition", "rules": [{"when": {"all": [
            {"left": "email", "op": "contains", "right": "@"}]}, "next": "menu"}],
         "else": "bye"},
        {"id": "menu", "type": "message", "text": "Thanks {{name}}! Talk to sales?",
         "buttons": [{"id": "yes", "title": "Yes", "next": "bye"},
                     {"id": "no", "title": "No", "next": "bye"}]},
        {"id": "bye", "type": "end", "text": "Bye {{name}}!"},
    ],
}  # fmt: skip


def _pg(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def recreate_database(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(_pg(url.rsplit("/", 1)[0] + "/postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    from pytake.db import create_engine
    from pytake.migrate import upgrade_to_head

    engine = create_engine(url)
    await upgrade_to_head(engine)
    await engine.dispose()


def child_env(args: argparse.Namespace, graph_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTAKE_DATABASE_URL": args.db,
        "PYTAKE_REDIS_URL": args.redis,
        "PYTAKE_SECRET_KEY": SECRET_KEY,
        "PYTAKE_META_GRAPH_URL": graph_url,
        "PYTAKE_LOG_LEVEL": "WARNING",
        "PYTAKE_AUTO_MIGRATE": "false",
        "PYTAKE_RATE_LIMIT_ENABLED": "false",
        "PYTAKE_RUN_BACKGROUND_LOOPS": "false",
        "PYTHONPATH": str(ROOT / "src"),
        # The worker's own priority (PYTAKE_WORKER_NICE, 0 by default): 0 compares with the
        # figures before it; on this shared machine a niced worker waits behind everything.
        "PYTAKE_WORKER_NICE": str(args.worker_nice),
    }


# `--cpu-by-task`: the CPU time of every callback the event loop runs, by the task it steps
# (a background loop's task is named `loop-<name>`; other tasks by their coroutine), written
# as JSON when the process stops. Plain asyncio only (uvloop's handles are C), so the worker
# runs on it for such a run; cProfile instead misattributes time across SQLAlchemy's greenlet
# switches and costs several times the CPU it measures.
_CPU_BY_TASK = """
import asyncio, asyncio.events, collections, json, time
_cpu = collections.Counter()
_run = asyncio.events.Handle._run
def _timed(handle):
    t = time.process_time()
    try:
        _run(handle)
    finally:
        task = getattr(handle._callback, "__self__", None)
        if isinstance(task, asyncio.Task):
            name = task.get_name()
            if not name.startswith("loop-"):
                name = getattr(task.get_coro(), "__qualname__", name)
        else:
            name = getattr(handle._callback, "__qualname__", repr(handle._callback))
        _cpu[name] += time.process_time() - t
asyncio.events.Handle._run = _timed
"""


def start(
    command: list[str],
    env: dict[str, str],
    profile: str | None = None,
    cpu_by_task: str | None = None,
) -> subprocess.Popen[bytes]:
    code = f"from pytake.cli import app; app({command!r})"
    if cpu_by_task:
        out = f"{cpu_by_task}/{command[0]}.cpu.json"
        env = {**env, "PYTAKE_WORKER_EVENT_LOOP": "asyncio"}
        code = (
            f"{_CPU_BY_TASK}\ntry:\n    {code}\nfinally:\n"
            f"    open({out!r}, 'w').write(json.dumps(_cpu))\n"
        )
    elif profile:  # CPU-time cProfile of the process, written when it stops (SIGTERM: clean)
        out = f"{profile}/{command[0]}.prof"
        code = (
            "import cProfile, time\n"
            "p = cProfile.Profile(time.process_time)\n"
            f"try:\n    p.runctx({code!r}, globals(), None)\n"
            f"finally:\n    p.dump_stats({out!r})\n"
        )
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)


def cpu_of(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def postgres_pids(db: str) -> list[int]:
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


async def wait_up(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(f"{base}/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{base} did not start")


async def setup(base: str, sim: Simulator) -> str:
    """An organisation, a Meta number registered in the simulator, and the published bot;
    returns the number's phone_number_id."""
    async with aiohttp.ClientSession(base_url=base) as http:
        email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
        body = {"email": email, "password": PASSWORD, "name": "Chatbot bench"}
        async with http.post("/api/v1/auth/register", json=body) as r:
            assert r.status == 201, await r.text()
            headers = {"Authorization": f"Bearer {(await r.json())['token']}"}
        pnid = str(10**14 + secrets.randbelow(9 * 10**14))
        token, app_secret = "EAA" + secrets.token_hex(16), secrets.token_hex(16)
        number = sim.register_number(
            pnid, token, app_secret, display_phone_number="15550783881",
            waba_id="1" + pnid[1:], webhook_url=f"{base}/api/v1/whatsapp/webhook",
        )  # fmt: skip
        number.mps = 10**6
        config = {"name": "Bench", "provider": "official", "phone_number_id": pnid,
                  "access_token": token, "app_secret": app_secret, "is_default": True}  # fmt: skip
        async with http.post("/api/v1/whatsapp-configs", json=config, headers=headers) as r:
            assert r.status == 201, await r.text()
        async with http.post("/v1/chatbots", json={"name": "Bench"}, headers=headers) as r:
            assert r.status == 201, await r.text()
            bot = (await r.json())["id"]
        async with http.post(f"/v1/chatbots/{bot}/flows", json=FLOW, headers=headers) as r:
            assert r.status == 201, await r.text()
            flow = (await r.json())["id"]
        async with http.post(f"/v1/chatbots/{bot}/flows/{flow}/publish", headers=headers) as r:
            assert r.status == 201, await r.text()
    return pnid


class Pacer:
    """At most `rate` starts per second, shared by every customer."""

    def __init__(self, rate: float) -> None:
        self.gap = 1.0 / rate
        self.next = time.monotonic()
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self.lock:
            now = time.monotonic()
            if self.next > now:
                await asyncio.sleep(self.next - now)
            self.next = max(self.next, now) + self.gap


class Answers:
    """Watches the simulator's sent messages and wakes the customer each one is for."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.seen = 0
        self.by_customer: dict[str, list[Any]] = {}
        self.waiters: dict[str, asyncio.Event] = {}

    async def watch(self) -> None:
        while True:
            sent = self.sim.state.sent
            for message in sent[self.seen :]:
                self.by_customer.setdefault(message.to, []).append(message)
                waiter = self.waiters.get(message.to)
                if waiter is not None:
                    waiter.set()
            self.seen = len(sent)
            await asyncio.sleep(0.002)

    async def nth(self, customer: str, n: int, timeout: float) -> Any:  # noqa: ASYNC109
        event = self.waiters.setdefault(customer, asyncio.Event())
        deadline = time.monotonic() + timeout
        while len(self.by_customer.get(customer, [])) < n:
            event.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{customer}: answer {n} never came")
            try:
                await asyncio.wait_for(event.wait(), left)
            except TimeoutError:
                continue
        return self.by_customer[customer][n - 1]


async def customer(
    sim: Simulator,
    pnid: str,
    wa_id: str,
    pacer: Pacer,
    answers: Answers,
    latencies: list[float],
    posts: list[float],
) -> None:
    said: list[dict[str, Any]] = [
        {"type": "text", "text": "start"},
        {"type": "text", "text": "Ana"},
        {"type": "text", "text": f"{wa_id}@example.com"},
        {"type": "button_reply", "reply_id": "yes", "title": "Yes"},
    ]
    for n, spec in enumerate(said, 1):
        await pacer.wait()
        posted = time.time()
        record = await sim.customer_sends(pnid, sender=wa_id, **spec)
        acked = time.time()
        posts.append(acked - posted)
        if record.webhook_status != 200:
            raise RuntimeError(f"webhook answered {record.webhook_status}")
        answer = await answers.nth(wa_id, n, timeout=60)
        latencies.append(answer.created_at - acked)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def verify(sim: Simulator, answers: Answers, customers: list[str], db: str) -> str:
    import asyncpg

    for wa_id in customers:
        got = [m.body for m in answers.by_customer.get(wa_id, [])]
        kinds = [b["type"] for b in got]
        if kinds != ["text", "text", "interactive", "text"]:
            return f"FAILED: {wa_id} got {kinds}"
        if got[3]["text"]["body"] != "Bye Ana!":
            return f"FAILED: {wa_id} last answer {got[3]}"
    conn = await asyncpg.connect(_pg(db))
    try:
        left = await conn.fetchval("SELECT count(*) FROM chatbot_inbox")
        sessions = await conn.fetchval(
            "SELECT count(*) FROM chatbot_sessions WHERE status = 'ended'"
        )
    finally:
        await conn.close()
    if left or sessions != len(customers):
        return f"FAILED: inbox {left}, ended sessions {sessions}"
    return "OK: every customer got its 4 answers in order; inbox empty"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=500.0, help="inbound messages/s")
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--port", type=int, default=8731)
    parser.add_argument("--statuses", action="store_true", help="send status webhooks too")
    parser.add_argument("--profile", metavar="DIR", help="cProfile serve and worker into DIR")
    parser.add_argument("--worker-nice", type=int, default=0,
                        help="the worker's nice value (PYTAKE_WORKER_NICE)")  # fmt: skip
    parser.add_argument("--cpu-by-task", metavar="DIR",
                        help="the worker's CPU by task into DIR (on plain asyncio)")  # fmt: skip
    parser.add_argument(
        "--consumer-alone",
        action="store_true",
        help="time the chatbot consumer alone, in this process",
    )
    parser.add_argument("--per-transaction", type=int, default=50,
                        help="--consumer-alone: conversations per consumer transaction")  # fmt: skip
    args = parser.parse_args()
    if args.consumer_alone:
        await consumer_alone(args)
        return

    await recreate_database(args.db)
    async with Simulator(SimulatorSettings.for_tests()) as sim:
        if not args.statuses:
            sim.state.faults.drop_statuses = {"sent", "delivered", "read"}
        env = child_env(args, sim.graph_url)
        base = f"http://127.0.0.1:{args.port}"
        serve = start(["serve", "--port", str(args.port)], env, args.profile)
        worker = start(["worker"], env, args.profile, args.cpu_by_task)
        try:
            await wait_up(base)
            pnid = await setup(base, sim)
            await asyncio.sleep(1.0)  # let the worker's loops settle
            answers = Answers(sim)
            watcher = asyncio.create_task(answers.watch())
            customers = ["55119" + f"{i:08d}" for i in range(args.customers)]
            pacer, latencies, posts = Pacer(args.rate), [], []
            pids = [serve.pid, worker.pid]
            pg = await postgres_pids(args.db)
            cpu0, pg0, t0 = cpu_of(pids), cpu_of(pg), time.monotonic()
            own0 = time.process_time()
            each0 = [cpu_of([pid]) for pid in pids]
            await asyncio.gather(
                *(customer(sim, pnid, c, pacer, answers, latencies, posts) for c in customers)
            )
            elapsed, own = time.monotonic() - t0, time.process_time() - own0
            pg = sorted(set(pg) | set(await postgres_pids(args.db)))
            cpu, pg_cpu = cpu_of(pids) - cpu0, cpu_of(pg) - pg0
            each = [cpu_of([pid]) - c for pid, c in zip(pids, each0, strict=True)]
            watcher.cancel()
            outcome = await verify(sim, answers, customers, args.db)
        finally:
            for proc in (serve, worker):
                proc.terminate()
            for proc in (serve, worker):
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    steps = len(latencies)
    ms = [v * 1000 for v in latencies]
    print(f"customers {args.customers}, rate {args.rate:g}/s, steps {steps} in {elapsed:.1f} s "
          f"({steps / elapsed:.0f} answers/s)")  # fmt: skip
    print(f"webhook 200 -> answer at the simulator: p50 {percentile(ms, 50):.0f} ms, "
          f"p90 {percentile(ms, 90):.0f} ms, p99 {percentile(ms, 99):.0f} ms, "
          f"max {max(ms):.0f} ms, mean {statistics.mean(ms):.0f} ms")  # fmt: skip
    print(f"CPU per step: serve + worker {cpu / steps * 1000:.2f} ms "
          f"({cpu:.1f} s: serve {each[0] / steps * 1000:.2f}, worker {each[1] / steps * 1000:.2f}), "
          f"PostgreSQL {pg_cpu / steps * 1000:.2f} ms ({pg_cpu:.1f} s)")  # fmt: skip
    # The webhook's own round trip is not in the latency above: a customer whose post waits
    # for its 200 is queued before the measured interval starts.
    wait = [v * 1000 for v in posts]
    print(f"webhook post -> 200: p50 {percentile(wait, 50):.0f} ms, p99 {percentile(wait, 99):.0f} ms; "
          f"this process (simulator + customers) {own / steps * 1000:.2f} ms CPU per step")  # fmt: skip
    print(outcome)
    if args.cpu_by_task:
        print_cpu_by_task(f"{args.cpu_by_task}/worker.cpu.json", steps)


def print_cpu_by_task(path: str, steps: int) -> None:
    import json

    with open(path) as f:
        cpu: dict[str, float] = json.load(f)
    total = sum(cpu.values())
    print(f"worker CPU by task, ms per step (of {total / steps * 1000:.2f}):")
    for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {seconds / steps * 1000:6.3f}  {name}")


async def consumer_alone(args: argparse.Namespace) -> None:
    """Each of the customers' 4 messages ingested by `serve`, then answered by the consumer
    in this process; only the consumer's rounds are timed."""
    import cProfile

    import asyncpg
    from sqlalchemy import event

    from pytake.chatbot.tasks import ChatbotConsumer
    from pytake.db import create_engine, create_session_factory

    await recreate_database(args.db)
    engine = create_engine(args.db)
    statements = [0]
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda *_: statements.__setitem__(0, statements[0] + 1))  # fmt: skip
    consumer = ChatbotConsumer(create_session_factory(engine), None, allow_private=False,
                               postgres=True, per_transaction=args.per_transaction)  # fmt: skip
    profile = cProfile.Profile(time.process_time) if args.profile else None
    async with Simulator(SimulatorSettings.for_tests()) as sim:
        sim.state.faults.drop_statuses = {"sent", "delivered", "read"}
        base = f"http://127.0.0.1:{args.port}"
        serve = start(["serve", "--port", str(args.port)], child_env(args, sim.graph_url))
        try:
            await wait_up(base)
            pnid = await setup(base, sim)
            warm = ["55118" + f"{i:08d}" for i in range(20)]
            customers = ["55119" + f"{i:08d}" for i in range(args.customers)]
            said = [{"type": "text", "text": "start"}, {"type": "text", "text": "Ana"},
                    {"type": "text", "text": "ana@example.com"},
                    {"type": "button_reply", "reply_id": "yes", "title": "Yes"}]  # fmt: skip
            cpu = wall = 0.0
            limit = asyncio.Semaphore(32)

            async def send(wa_id: str, spec: dict[str, Any]) -> None:
                async with limit:
                    record = await sim.customer_sends(pnid, sender=wa_id, **spec)
                    assert record.webhook_status == 200

            # A first walk untimed: statements compiled, mappers configured, flows cached.
            for spec in said:
                await asyncio.gather(*(send(c, spec) for c in warm))
                while await consumer.run_once() == 0:
                    pass
            consumer.steps = 0
            for spec in said:
                await asyncio.gather(*(send(c, spec) for c in customers))
                t0, w0, s0 = time.process_time(), time.monotonic(), statements[0]
                if profile:
                    profile.enable()
                while await consumer.run_once() == 0:
                    pass
                if profile:
                    profile.disable()
                cpu, wall = cpu + time.process_time() - t0, wall + time.monotonic() - w0
                print(f"  {spec.get('text') or spec['reply_id']!r}: "
                      f"statements {statements[0] - s0}")  # fmt: skip
            conn = await asyncpg.connect(_pg(args.db))
            try:
                left = await conn.fetchval("SELECT count(*) FROM chatbot_inbox")
                queued = await conn.fetchval(
                    "SELECT count(*) FROM messages WHERE direction = 'outbound'"
                ) - 4 * len(warm)
            finally:
                await conn.close()
        finally:
            serve.terminate()
            serve.wait(30)
    await engine.dispose()
    steps = consumer.steps
    print(f"consumer alone: {steps} steps, {queued} replies queued, inbox left {left}; "
          f"CPU {cpu * 1000 / steps:.3f} ms per step ({cpu:.2f} s), wall {wall:.2f} s")  # fmt: skip
    if profile:
        os.makedirs(args.profile, exist_ok=True)
        profile.dump_stats(f"{args.profile}/consumer.prof")


if __name__ == "__main__":
    asyncio.run(main())
