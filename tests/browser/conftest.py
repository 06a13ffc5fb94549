"""The console in a real browser: Debian's Chromium driven by Playwright against a real
`pytake demo` process (PyTake plus the WhatsApp simulator) on loopback ports.

One server and one browser serve the whole session; each test gets a fresh browser context.
Every page collects console errors, uncaught exceptions, failed requests and error responses,
and a test fails on any it did not declare. Screenshots go to test-artifacts/browser/ (ignored
by git) at 1280×800 and 390×844.

Needs /usr/bin/chromium (`apt-get install -y chromium`; PYTAKE_CHROMIUM overrides the path)
and a built console (`python3 dev.py test` builds it first when its sources changed).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CHEAP_PASSWORD_HASHING

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("PYTAKE_CHROMIUM", "/usr/bin/chromium")
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "pytake-demo"
# Short-lived access tokens, so the background refresh happens during the tests.
ACCESS_TOKEN_TTL = 6
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _console_build_state() -> str | None:
    """None when the build is current, else why it is not."""
    if not (ROOT / "src/pytake/dashboard/static/index.html").is_file():
        return "the console is not built: run `python3 dev.py console` (needs Node.js 20+)"
    spec = importlib.util.spec_from_file_location("pytake_dev", ROOT / "dev.py")
    assert spec and spec.loader
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    stamp = dev.CONSOLE_STAMP
    if not stamp.is_file() or stamp.read_text() != dev._console_sources_digest():
        return "the console's build is stale: run `python3 dev.py console`"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    mine = [i for i in items if Path(str(i.fspath)).is_relative_to(here)]
    if not mine:
        return
    reason = None
    if importlib.util.find_spec("playwright") is None:
        reason = "playwright is not installed (pip install -e .[dev])"
    elif not Path(CHROMIUM).is_file():
        reason = f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    if reason:
        for item in mine:
            item.add_marker(pytest.mark.skip(reason=reason))
        return


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    sim_url: str
    log: Path

    async def sim(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the simulator's control API (`/_sim/...`)."""
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.request(method, f"{self.sim_url}/_sim{path}", **kwargs)
        resp.raise_for_status()
        return resp.json()

    async def api(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Call PyTake's API, as the demo admin unless told otherwise (`token=""`: anonymous)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            if token is None:
                login = await client.post(
                    "/v1/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
                )
                login.raise_for_status()
                token = str(login.json()["access_token"])
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return await client.request(method, path, headers=headers, **kwargs)


@contextmanager
def _database_url(tmp: Path) -> Iterator[str]:
    pg = os.environ.get("PYTAKE_TEST_DATABASE_URL")
    if not pg:
        yield f"sqlite+aiosqlite:///{tmp / 'browser.db'}"
        return
    import asyncio

    from tests.conftest import _create_postgres_database, _drop_postgres_database

    url, admin = asyncio.run(_create_postgres_database(pg.rsplit("/", 1)[0] + "/pt_browser"))
    yield url
    asyncio.run(_drop_postgres_database(admin, url))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`pytake demo` in its own process, with its own database, on free loopback ports."""
    stale = _console_build_state()
    if stale:  # a stale build would test yesterday's console: fail, don't skip
        pytest.fail(stale)
    tmp = tmp_path_factory.mktemp("browser")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "server.log"
    port, sim_port = _free_port(), _free_port()
    with _database_url(tmp) as database_url:
        env = {
            **os.environ,
            "PYTAKE_ENV": "test",
            "PYTAKE_DATABASE_URL": database_url,
            "PYTAKE_SECRET_KEY": "browser-test-secret-key-long-enough-for-hs256",
            "PYTAKE_ACCESS_TOKEN_TTL_SECONDS": str(ACCESS_TOKEN_TTL),
            "PYTAKE_ALLOW_PRIVATE_URLS": "true",
            "PYTAKE_GC_TUNING": "false",
            **{f"PYTAKE_{k.upper()}": str(v) for k, v in CHEAP_PASSWORD_HASHING.items()},
        }
        env.pop("PYTAKE_REDIS_URL", None)
        with log.open("w") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pytake.cli",
                    "demo",
                    "--port",
                    str(port),
                    "--simulator-port",
                    str(sim_port),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(proc, url, log)
            yield Server(url, f"http://127.0.0.1:{sim_port}", log)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_until_up(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"pytake demo exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"pytake demo did not start in 60 s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield browser
        await browser.close()


@dataclass
class Problems:
    """What went wrong on a page; `expect` declares an error response a test provokes."""

    found: list[str] = field(default_factory=list)
    expected: list[tuple[int, str]] = field(default_factory=list)
    watching: bool = True

    def expect(self, status: int, url_part: str) -> None:
        self.expected.append((status, url_part))

    def _expected(self, status: int, url: str) -> bool:
        return any(status == s and part in url for s, part in self.expected)

    def on_console(self, message: Any) -> None:
        if not self.watching or message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        text = message.text
        if "Failed to load resource" in text and any(
            f"status of {s}" in text and part in url for s, part in self.expected
        ):
            return
        self.found.append(f"console error: {text} ({url})")

    def on_response(self, response: Any) -> None:
        if (
            self.watching
            and response.status >= 400
            and not self._expected(response.status, response.url)
        ):
            self.found.append(f"{response.status} {response.request.method} {response.url}")

    def on_failed(self, request: Any) -> None:
        if self.watching:
            self.found.append(f"request failed: {request.method} {request.url} {request.failure}")


@dataclass
class Console:
    """A page of the console in a fresh browser context, watched for problems."""

    page: Any
    server: Server
    problems: Problems

    def url(self, path: str = "/") -> str:
        return f"{self.server.url}/app{path}"

    async def sign_in(self, *, open_console: bool = True) -> None:
        page = self.page
        if open_console:
            await page.goto(self.url("/"))
        await page.get_by_label("Email").fill(DEMO_EMAIL)
        await page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("button", name="Sign out").wait_for()

    async def unnamed_controls(self) -> list[str]:
        """Visible controls with no accessible name (an approximation of the computed name:
        aria-label, aria-labelledby, a label, text content, title, an image's alt)."""
        found: list[str] = await self.page.evaluate(_UNNAMED_CONTROLS)
        return found

    async def tab_through(self, presses: int) -> list[dict[str, Any]]:
        """Press Tab `presses` times; what had the focus after each press, and whether its
        focus indicator shows (an outline or a ring of box-shadow, as the browser draws it)."""
        seen: list[dict[str, Any]] = []
        for _ in range(presses):
            await self.page.keyboard.press("Tab")
            seen.append(await self.page.evaluate(_FOCUSED))
        return seen

    async def screenshot(self, name: str) -> None:
        """The page at desktop and phone widths, into test-artifacts/browser/; every visible
        control must have an accessible name."""
        page = self.page
        unnamed = await self.unnamed_controls()
        assert unnamed == [], f"{name}: controls without an accessible name: {unnamed}"
        await page.screenshot(path=str(ARTIFACTS / f"{name}-1280x800.png"))
        await page.set_viewport_size(PHONE)
        await page.wait_for_timeout(150)  # let the layout settle at the new width
        await page.screenshot(path=str(ARTIFACTS / f"{name}-390x844.png"))
        # Works on a phone: nothing pushes the page sideways (a wide table scrolls inside its
        # own box), and the phone layout's controls are named too.
        wider: list[str] = await page.evaluate(_WIDER_THAN_THE_SCREEN)
        unnamed = await self.unnamed_controls()
        await page.set_viewport_size(DESKTOP)
        assert wider == [], f"{name}: at {PHONE['width']} px the page scrolls sideways: {wider}"
        assert unnamed == [], f"{name}: at phone width, controls without a name: {unnamed}"


_FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return {control: null, visible: false};
  // The ring may be drawn on the box around the field (a tags input's pills and its input).
  const shows = (node) => {
    const style = getComputedStyle(node);
    const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
    return outline || (style.boxShadow && style.boxShadow !== 'none');
  };
  let visible = false;
  for (let node = el, up = 0; node && node !== document.body && up < 3; node = node.parentElement, up++) {
    visible = visible || shows(node);
  }
  const name = (el.getAttribute('aria-label') || (el.labels && el.labels[0]
    && el.labels[0].innerText) || el.innerText || el.getAttribute('title') || '').trim();
  return {control: `${el.tagName.toLowerCase()} "${name.slice(0, 40)}"`, visible};
}"""

# The page's own horizontal overflow, and the outermost elements reaching past the screen.
_WIDER_THAN_THE_SCREEN = """() => {
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= width) return [];
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.right <= width + 1 || getComputedStyle(el).position === 'fixed') continue;
    if (out.some((outer) => outer.contains(el))) continue;
    out.push(el);
  }
  return out.slice(0, 5).map((el) => el.outerHTML.slice(0, 160));
}"""

_UNNAMED_CONTROLS = """() => {
  const selector = 'button, a[href], input:not([type=hidden]), select, textarea, [role=button],'
    + ' [role=combobox], [role=checkbox], [role=radio], [role=tab], [role=switch]';
  const text = (el) => (el ? (el.innerText || el.textContent || '').trim() : '');
  const out = [];
  for (const el of document.querySelectorAll(selector)) {
    if (el.closest('[aria-hidden=true]') || el.getClientRects().length === 0) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none') continue;
    const byIds = (el.getAttribute('aria-labelledby') || '').split(/\\s+/)
      .map((id) => text(document.getElementById(id))).join(' ').trim();
    const labels = el.labels ? [...el.labels].map(text).join(' ').trim() : '';
    const img = el.querySelector('img[alt]');
    const name = (el.getAttribute('aria-label') || '').trim() || byIds || labels
      || (el.tagName === 'INPUT' ? '' : text(el)) || (el.getAttribute('title') || '').trim()
      || (img ? img.getAttribute('alt') : '');
    if (!name) out.push(el.outerHTML.slice(0, 160));
  }
  return out;
}"""


@pytest.fixture
async def console(browser: Any, server: Server) -> AsyncIterator[Console]:
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = await context.new_page()
    page.set_default_timeout(10_000)
    problems = Problems()
    page.on("console", problems.on_console)
    page.on("pageerror", lambda exc: problems.found.append(f"uncaught: {exc}"))
    page.on("response", problems.on_response)
    page.on("requestfailed", problems.on_failed)
    try:
        yield Console(page, server, problems)
    finally:
        problems.watching = False  # closing aborts what is in flight: not the console's fault
        await context.close()
    assert problems.found == [], "\n".join(problems.found)
