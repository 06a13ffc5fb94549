"""The simulator's own CPU per message: template sends answered and three status webhooks
(sent, delivered, read) posted for each, as in a campaign run, with nothing of PyTake's behind.

Three processes: the simulator (`--latency-ms` on every Graph call, status webhooks at once,
signed), a receiver that answers 200 to every webhook and counts the statuses in them (plain
asyncio + llhttp, so it costs little), and this one, sending `--messages` template messages
through the send path's client (`GraphPool`) with `--in-flight` at once. Figures: the
simulator's CPU (user + system) per message from the first send until the receiver has every
status, the webhooks and statuses received, and how long it took.

    .venv/bin/python bench/simulator.py --messages 3000
    .venv/bin/python bench/simulator.py --messages 3000 --coalesce-ms 50
    .venv/bin/python bench/simulator.py --messages 3000 --profile /tmp/sim.prof
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from dispatch import child_env, cpu_seconds, start_script  # noqa: E402

TOKEN = "EAA-bench-simulator"
PNID = "100200300400500"
WABA = "900800700600500"

SIMULATOR = """
import asyncio, cProfile, json, signal, sys, time
import uvloop
from pytake.whatsapp.simulator import Simulator, SimulatorSettings

spec = json.loads(sys.stdin.readline())

async def main():
    extra = {"status_coalesce_seconds": spec["coalesce_ms"] / 1000} if spec["coalesce_ms"] else {}
    settings = SimulatorSettings(status_delays=(0.0, 0.0, 0.0), default_mps=10**6,
                                 webhook_retries=5, retry_backoff=0.5, **extra)
    sim = Simulator(settings, faults={"latency_ms": spec["latency_ms"]})
    url = await sim.start("127.0.0.1", 0)
    sim.register_number(spec["pnid"], spec["token"], "bench-secret", waba_id=spec["waba"],
                        webhook_url=spec["webhook_url"])
    sim.register_template(spec["waba"], "bench_promo", "pt_BR",
                          components=[{"type": "BODY", "text": "Ola {{1}}, 20% hoje"}],
                          category="MARKETING")
    print(json.dumps({"graph_url": sim.graph_url}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()

profile = cProfile.Profile(time.process_time) if spec["profile"] else None
if profile:
    profile.enable()
try:
    uvloop.run(main())
finally:
    if profile:
        profile.disable()
        profile.dump_stats(spec["profile"])
"""

RECEIVER = """
import asyncio, json, sys
import httptools, orjson, uvloop

counts = {"webhooks": 0, "statuses": 0}
OK = b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n"

class Receiver(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.body = []
    def data_received(self, data):
        self.parser.feed_data(data)
    def on_body(self, body):
        self.body.append(body)
    def on_message_complete(self):
        raw, self.body = b"".join(self.body), []
        if self.parser.get_method() == b"GET":
            answer = json.dumps(counts).encode()
            self.transport.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(answer)
                                 + answer)
            return
        counts["webhooks"] += 1
        for entry in orjson.loads(raw)["entry"]:
            for change in entry["changes"]:
                counts["statuses"] += len(change["value"].get("statuses", []))
        self.transport.write(OK)

async def main():
    server = await asyncio.get_running_loop().create_server(Receiver, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
"""


def received(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
        counts: dict[str, int] = json.loads(response.read())
    return counts


async def send_all(graph_url: str, messages: int, in_flight: int) -> None:
    import aiohttp

    from pytake.whatsapp.cloud.client import CloudProvider, GraphConnector
    from pytake.whatsapp.provider import OutboundMessage

    connector = GraphConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        provider = CloudProvider(
            session, base_url=graph_url, access_token=TOKEN, phone_number_id=PNID
        )
        slots = asyncio.Semaphore(in_flight)

        async def one(n: int) -> None:
            template = {
                "name": "bench_promo",
                "language": {"code": "pt_BR"},
                "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": f"Cliente {n}"}]}
                ],
            }
            message = OutboundMessage(
                to=f"5511{900000000 + n}", type="template", content=template, callback_data=str(n)
            )
            async with slots:
                await provider.send(message)

        await asyncio.gather(*(one(n) for n in range(messages)))


def run(args: argparse.Namespace) -> dict[str, Any]:
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER], env=child_env(), stdout=subprocess.PIPE, text=True
    )
    assert receiver.stdout is not None
    port = int(receiver.stdout.readline())
    spec = {
        "pnid": PNID,
        "waba": WABA,
        "token": TOKEN,
        "latency_ms": args.latency_ms,
        "coalesce_ms": args.coalesce_ms,
        "webhook_url": f"http://127.0.0.1:{port}/webhook",
        "profile": args.profile,
    }
    sim, started = start_script(SIMULATOR, spec)
    graph_url = started["graph_url"]
    try:
        time.sleep(1)
        load0 = os.getloadavg()[0]
        cpu0, began = cpu_seconds([sim.pid]), time.perf_counter()
        asyncio.run(send_all(graph_url, args.messages, args.in_flight))
        sent_s = time.perf_counter() - began
        counts = received(port)
        while counts["statuses"] < 3 * args.messages and time.perf_counter() - began < 600:
            time.sleep(0.2)
            counts = received(port)
        elapsed = time.perf_counter() - began
        cpu = cpu_seconds([sim.pid]) - cpu0
        return {
            "messages": args.messages,
            "in_flight": args.in_flight,
            "latency_ms": args.latency_ms,
            "coalesce_ms": args.coalesce_ms,
            "sends_s": round(sent_s, 1),
            "all_statuses_s": round(elapsed, 1),
            "webhooks": counts["webhooks"],
            "statuses": counts["statuses"],
            "sim_cpu_us_per_message": round(cpu / args.messages * 1e6),
            "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
        }
    finally:
        sim.terminate()
        sim.wait(30)
        receiver.terminate()
        receiver.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument(
        "--coalesce-ms", type=float, default=0.0, help="the simulator's status_coalesce_seconds"
    )
    parser.add_argument("--profile", help="write the simulator's cProfile (CPU time) here")
    print(json.dumps(run(parser.parse_args()), indent=1))


if __name__ == "__main__":
    main()
