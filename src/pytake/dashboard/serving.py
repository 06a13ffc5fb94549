"""`/app`: the console's built files, deep links answered with `index.html`, `/` sent to `/app`.

The console is built by Vite into `static/` (`python3 dev.py serve` builds it when its sources
changed). Hashed files under `assets/` never change, so they are cached for a year; `index.html`
is revalidated on every load and carries a strict Content-Security-Policy: scripts only from
this origin, styles from this origin or a `<style>` carrying the per-response nonce (the
component library writes its CSS variables into one), no inline script at all.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

STATIC_DIR = Path(__file__).resolve().parent / "static"
PREFIX = "/app"
NONCE_PLACEHOLDER = "__CSP_NONCE__"
IMMUTABLE = "public, max-age=31536000, immutable"

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PyTake console not built</title></head>
<body><h1>The PyTake console has not been built</h1>
<p>The API is running (see <a href="/docs">/docs</a>). To build the console, install
Node.js 20 or newer and run <code>python3 dev.py serve</code> (it builds the console when
its sources change), or build it by hand: <code>cd web &amp;&amp; npm ci &amp;&amp;
npm run build</code>.</p></body></html>
"""


def content_security_policy(nonce: str) -> str:
    """The console's policy: everything from this origin; `/ws` is same-origin too."""
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            f"style-src 'self' 'nonce-{nonce}'",
            "img-src 'self' data: blob:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def _security_headers(nonce: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(nonce),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def _index(static_dir: Path) -> Response:
    index = static_dir / "index.html"
    nonce = secrets.token_urlsafe(16)
    headers = {**_security_headers(nonce), "Cache-Control": "no-cache"}
    if not index.is_file():
        return HTMLResponse(NOT_BUILT, status_code=503, headers=headers)
    html = index.read_text(encoding="utf-8").replace(NONCE_PLACEHOLDER, nonce)
    return HTMLResponse(html, headers=headers)


def _file(static_dir: Path, path: str) -> Path | None:
    """The built file at `path`, or None (never a file outside `static_dir`)."""
    root = static_dir.resolve()
    candidate = (root / path).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def mount_console(app: FastAPI, static_dir: Path = STATIC_DIR) -> None:
    """Serve the console at `/app` and redirect `/` there (neither is in the API schema)."""

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    @app.get(PREFIX, include_in_schema=False)
    async def console_root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    @app.get(PREFIX + "/{path:path}", include_in_schema=False)
    async def console(request: Request, path: str) -> Response:
        if path in ("", "index.html"):
            return _index(static_dir)
        found = _file(static_dir, path)
        if found is not None:
            immutable = path.startswith("assets/")
            cache = IMMUTABLE if immutable else "no-cache"
            return FileResponse(
                found, headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
            )
        last = path.rsplit("/", 1)[-1]
        if path.startswith("assets/") or "." in last:
            # A missing file is a 404, not the page: a stale chunk must fail loudly.
            return HTMLResponse("Not found", status_code=404)
        return _index(static_dir)  # a deep link: the router inside the page takes it from here
