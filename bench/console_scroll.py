"""The inbox's conversation list with 10,000 conversations: does it scroll without jank?

    python3 dev.py console && .venv/bin/python bench/console_scroll.py [--conversations 10000]

Starts `pytake demo` (PyTake plus the simulator, SQLite in a temporary folder) on free ports,
has that many customers write through the simulator (signed webhooks, the real ingest path),
then signs in with Debian's Chromium (Playwright) and scrolls the list from the top to its end,
one step per animation frame, while the list pages in more conversations as it goes. Prints the
frame times seen by requestAnimationFrame (p50, p95, p99, max), how many frames took longer than
50 ms (a "long frame": visible jank), how many conversations were loaded at the end, and the
most list rows the DOM held at once (the virtualised list keeps that constant).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DEMO_PNID = "100000000000001"
ROW_HEIGHT = 68  # web/src/pages/inbox/ConversationList.tsx
CHROMIUM = os.environ.get("PYTAKE_CHROMIUM", "/usr/bin/chromium")

_SCROLL = """
async ([step, limit]) => {
  const nav = document.querySelector('nav[aria-label="Conversations"]');
  const scroller = nav;  // the list's navigation landmark is its scroll container
  const frames = [];
  let rows = 0, last = performance.now(), stuck = 0, previous = -1;
  const started = last;
  while (performance.now() - started < limit) {
    await new Promise((r) => requestAnimationFrame(r));
    const now = performance.now();
    frames.push(now - last);
    last = now;
    rows = Math.max(rows, nav.querySelectorAll('a[href*="/inbox/"]').length);
    scroller.scrollTop += step;
    const end = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 2;
    stuck = end && scroller.scrollHeight === previous ? stuck + 1 : 0;
    previous = scroller.scrollHeight;
    if (stuck > 600) break;  // ten seconds at the end with nothing more to load
  }
  return {frames, rows, height: scroller.scrollHeight};
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _seed(sim_url: str, count: int) -> float:
    started = time.perf_counter()
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(i: int) -> None:
            async with gate:
                r = await client.post(
                    f"{sim_url}/_sim/numbers/{DEMO_PNID}/inbound",
                    json={
                        "from": f"5511{900000000 + i}",
                        "profile_name": f"Customer {i:05}",
                        "type": "text",
                        "text": f"Hello, I am customer {i}",
                    },
                )
                r.raise_for_status()

        await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - started


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _scroll(url: str, step: int) -> dict[str, object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        await page.goto(f"{url}/app/")
        await page.get_by_label("Email").fill("demo@example.com")
        await page.get_by_label("Password", exact=True).fill("pytake-demo")
        await page.get_by_role("button", name="Sign in").click()
        nav = page.get_by_role("navigation", name="Conversations")
        await nav.get_by_role("link").first.wait_for()
        result: dict[str, object] = await page.evaluate(_SCROLL, [step, 600_000])
        await browser.close()
        return result


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--conversations", type=int, default=10_000)
    p.add_argument("--step", type=int, default=600, help="pixels scrolled per frame")
    args = p.parse_args()
    port, sim_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "PYTAKE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/scroll.db",
            "PYTAKE_SECRET_KEY": "bench-secret-key-long-enough-for-hs256-signing",
        }
        env.pop("PYTAKE_REDIS_URL", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytake.cli", "demo", "--port", str(port),
             "--simulator-port", str(sim_port)],
            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url, sim_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sim_port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            seconds = asyncio.run(_seed(sim_url, args.conversations))
            print(f"seeded {args.conversations} conversations in {seconds:.1f} s")
            result = asyncio.run(_scroll(url, args.step))
        finally:
            proc.terminate()
            proc.wait(10)
    frames = [float(f) for f in result["frames"]][1:]  # type: ignore[attr-defined]
    rows_px = int(result["height"])  # type: ignore[call-overload]
    print(f"frames: {len(frames)}, scrolled {rows_px:,} px in {sum(frames) / 1000:.1f} s")
    p50, p95, p99 = (_percentile(frames, q) for q in (0.5, 0.95, 0.99))
    long_frames = sum(1 for f in frames if f > 50)
    print(
        f"frame ms: p50 {p50:.1f}, p95 {p95:.1f}, p99 {p99:.1f}, max {max(frames):.1f}; "
        f"frames over 50 ms: {long_frames}"
    )
    print(
        f"conversations loaded at the end: {rows_px // ROW_HEIGHT:,} (list height {rows_px:,} px); "
        f"most rows in the DOM at once: {result['rows']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
