"""/app: the built console with deep links, immutable hashed assets and a strict CSP."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pytake.dashboard.serving import NONCE_PLACEHOLDER, mount_console

INDEX = f'<html><head><meta name="csp-nonce" content="{NONCE_PLACEHOLDER}"></head></html>'


def _client(static: Path) -> httpx.AsyncClient:
    app = FastAPI()
    mount_console(app, static)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.fixture
def built(tmp_path: Path) -> Path:
    (tmp_path / "secret.txt").write_text("outside the build")
    tmp_path = tmp_path / "static"
    (tmp_path / "assets").mkdir(parents=True)
    (tmp_path / "index.html").write_text(INDEX)
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    return tmp_path


async def test_index_carries_a_strict_policy_with_a_fresh_nonce(built: Path) -> None:
    async with _client(built) as client:
        first = await client.get("/app/")
        second = await client.get("/app/")
    assert first.status_code == 200
    policy = first.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce and f'content="{nonce.group(1)}"' in first.text
    assert NONCE_PLACEHOLDER not in first.text
    assert first.headers["content-security-policy"] != second.headers["content-security-policy"]
    assert first.headers["cache-control"] == "no-cache"


async def test_deep_links_get_the_page_and_missing_files_a_404(built: Path) -> None:
    async with _client(built) as client:
        deep = await client.get("/app/inbox/0b1e9a7e-3c39-4b7e-9d5b-111111111111")
        missing_asset = await client.get("/app/assets/index-gone.js")
        missing_file = await client.get("/app/robots.txt")
        escape = await client.get("/app/..%2F..%2Fetc%2Fpasswd")
        escape_file = await client.get("/app/..%2Fsecret.txt")
    assert deep.status_code == 200 and "csp-nonce" in deep.text
    assert "content-security-policy" in deep.headers
    assert missing_asset.status_code == 404
    assert missing_file.status_code == 404
    # Nothing outside the build is ever read: a path without a file name is just a deep link.
    assert "root:" not in escape.text and "csp-nonce" in escape.text
    assert escape_file.status_code == 404


async def test_hashed_assets_are_cached_for_good(built: Path) -> None:
    async with _client(built) as client:
        resp = await client.get("/app/assets/index-abc123.js")
    assert resp.status_code == 200 and resp.text == "console.log(1)"
    assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "javascript" in resp.headers["content-type"]


async def test_root_and_bare_prefix_redirect_to_the_console(built: Path) -> None:
    async with _client(built) as client:
        root = await client.get("/")
        bare = await client.get("/app")
    assert root.status_code == 307 and root.headers["location"] == "/app/"
    assert bare.status_code == 307 and bare.headers["location"] == "/app/"


async def test_without_a_build_the_page_says_how_to_build(tmp_path: Path) -> None:
    async with _client(tmp_path / "nothing") as client:
        resp = await client.get("/app/inbox")
    assert resp.status_code == 503
    assert "Node.js 20" in resp.text and "python3 dev.py serve" in resp.text


async def test_the_app_serves_the_console_outside_the_api_schema(client: httpx.AsyncClient) -> None:
    root = await client.get("/")
    assert root.status_code == 307 and root.headers["location"] == "/app/"
    page = await client.get("/app/contacts")
    assert page.status_code in (200, 503)  # 503 when this checkout has no build
    assert "content-security-policy" in page.headers
    schema = (await client.get("/openapi.json")).json()
    assert not any(p == "/" or p.startswith("/app") for p in schema["paths"])
