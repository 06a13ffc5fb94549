"""POST /v1/templates/sync reads Meta's list page by page: templates made in Meta's own tools
appear, changes at Meta are applied, templates gone at Meta are marked DELETED."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from pytake.models import TemplateSyncState
from pytake.template.tasks import TemplateSyncLoop
from tests.channel.support import create_official
from tests.message.sending.support import Shop
from tests.template.support import NAMED_ORDER, body_of, create, review


async def test_sync_picks_up_templates_created_at_meta_across_pages(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    waba = shop.number.waba
    # More than one page: the Cloud adapter asks for 100 a page.
    for index in range(130):
        shop.sim.register_template(
            waba, f"made_at_meta_{index:03}", "pt_BR", body="Oi {{1}}", category="MARKETING"
        )
    shop.sim.register_template(waba, "paused_one", "en_US", body="Hi", status="PAUSED")
    resp = await http.post("/v1/templates/sync", headers=shop.headers)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "channels": 1,
        "fetched": 131,
        "created": 131,
        "updated": 0,
        "unchanged": 0,
        "errors": [],
    }
    listed = await http.get(
        "/v1/templates",
        params={"name": "made_at_meta_129", "language": "pt_BR"},
        headers=shop.headers,
    )
    (template,) = listed.json()["data"]
    meta = shop.sim.state.templates[(waba, "made_at_meta_129", "pt_BR")]
    assert template["meta_template_id"] == meta.id
    assert template["status"] == "APPROVED" and template["category"] == "MARKETING"
    assert template["components"] == [{"type": "BODY", "text": "Oi {{1}}"}]
    assert template["variables"] == ["1"]
    assert template["last_synced_at"] is not None
    paused = await http.get("/v1/templates", params={"status": "PAUSED"}, headers=shop.headers)
    assert [t["name"] for t in paused.json()["data"]] == ["paused_one"]

    # Changes at Meta are applied; a template deleted there is marked DELETED here.
    meta.status = "DISABLED"
    del shop.sim.state.templates[(waba, "made_at_meta_000", "pt_BR")]
    again = await http.post("/v1/templates/sync", headers=shop.headers)
    assert again.json()["updated"] == 1 and again.json()["unchanged"] == 129
    deleted = await http.get(
        "/v1/templates", params={"name": "made_at_meta_000"}, headers=shop.headers
    )
    assert deleted.json()["data"][0]["status"] == "DELETED"
    disabled = await http.get("/v1/templates", params={"status": "DISABLED"}, headers=shop.headers)
    assert [t["name"] for t in disabled.json()["data"]] == ["made_at_meta_129"]


async def test_sync_keeps_pytake_created_templates_matched(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    with review(shop.sim, template_auto_review=False):
        created = await create(http, shop, body_of(NAMED_ORDER, "ours"))
    resp = await http.post(
        "/v1/templates/sync", params={"channel_id": shop.number.id}, headers=shop.headers
    )
    assert resp.status_code == 200
    assert resp.json()["fetched"] == 1 and resp.json()["created"] == 0
    listed = await http.get("/v1/templates", headers=shop.headers)
    assert [t["id"] for t in listed.json()["data"]] == [created["id"]]


async def test_sync_needs_a_cloud_number(http: httpx.AsyncClient) -> None:
    from tests.conftest import register_org

    lonely = await register_org(http, "Nobody")
    resp = await http.post("/v1/templates/sync", headers=lonely.headers)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "channel_id"


async def test_the_worker_loop_syncs_due_numbers(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI
) -> None:
    shop.sim.register_template(shop.number.waba, "from_meta_tools", "en_US", body="Hi")
    broken = await create_official(
        http, shop.org, shop.sim, str(http.base_url), name="Revoked", configured_token="EAAwrong"
    )
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    async with send_app.state.session_factory() as session, session.begin():
        for number in (shop.number, broken):
            session.add(
                TemplateSyncState(
                    channel_id=uuid.UUID(number.id),
                    organization_id=uuid.UUID(shop.org.id),
                    next_sync_at=long_ago,  # due before any other number in the database
                )
            )
    state = send_app.state
    loop = TemplateSyncLoop(state.session_factory, state.settings, state.http)
    await loop.run_once()
    listed = await http.get(
        "/v1/templates", params={"name": "from_meta_tools"}, headers=shop.headers
    )
    assert listed.json()["meta"]["total"] == 1
    async with state.session_factory() as session:
        good = await session.get(TemplateSyncState, uuid.UUID(shop.number.id))
        bad = await session.get(TemplateSyncState, uuid.UUID(broken.id))
    assert good is not None and bad is not None
    assert good.last_error is None and good.last_synced_at is not None
    assert good.next_sync_at - good.last_synced_at == timedelta(
        seconds=state.settings.template_sync_interval_seconds
    )
    assert good.leased_until is None
    assert bad.last_error and "token" in bad.last_error
    assert bad.last_synced_at is None and bad.next_sync_at > datetime.now(UTC)


async def test_concurrent_syncs_of_one_account_create_each_template_once(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    # The API and the worker's loop may sync one Business Account at the same moment: both
    # read no copy of a new template, and the second insert used to fail the request (500).
    waba = shop.number.waba
    for index in range(20):
        shop.sim.register_template(waba, f"raced_{index:02}", "en_US", body="Hi {{1}}")
    answers = await asyncio.gather(
        *(http.post("/v1/templates/sync", headers=shop.headers) for _ in range(3))
    )
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    assert sum(a.json()["created"] for a in answers) == 20
    listed = await http.get(
        "/v1/templates", params={"name": "raced_07", "language": "en_US"}, headers=shop.headers
    )
    assert len(listed.json()["data"]) == 1
