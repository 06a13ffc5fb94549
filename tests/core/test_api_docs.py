"""/docs and /redoc load everything from the app itself: they work on an offline host."""

from __future__ import annotations

import re

import httpx
import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_and_their_assets_come_from_the_app(
    client: httpx.AsyncClient, page: str
) -> None:
    resp = await client.get(page)
    assert resp.status_code == 200, resp.text
    html = resp.text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", html)  # Swagger UI's openapi url
    urls += re.findall(r"""spec-url=["']([^"']+)["']""", html)  # ReDoc's
    assert urls, html
    sizes = {}
    for url in urls:
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
        asset = await client.get(url)
        assert asset.status_code == 200, url
        sizes[url] = len(asset.content)
    assert "/openapi.json" in urls
    scripts = [u for u in urls if u.endswith(".js")]
    # The real bundles (hundreds of kB), not stubs.
    assert scripts and all(sizes[u] > 100_000 for u in scripts), sizes
