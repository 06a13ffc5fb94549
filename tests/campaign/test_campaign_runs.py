"""Campaigns running through the simulator: variables per contact, pause / resume / cancel,
policy errors, opt-outs mid-campaign, metrics from status webhooks and replies, events."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from websockets.asyncio.client import connect

from pytake.models import OutboxEvent
from tests.campaign.support import Campaigns, sent_to
from tests.message.sending.support import eventually


async def _campaign(
    camps: Campaigns, tag: str, *, rate: int | None = None, body: str = "Oi {{1}}", **vars: Any
) -> dict[str, Any]:
    template = await camps.template(body=body)
    created = await camps.create(
        {
            "name": f"Run {tag}",
            "target_type": "tags",
            "target_filters": {"tags": [tag]},
            "template_id": str(template.id),
            "message_content": {"variables": vars or {"1": "{{contact.name}}"}},
            **({"send_rate_limit": rate} if rate else {}),
        }
    )
    return created


async def _crowd(camps: Campaigns, tag: str, n: int) -> list[dict[str, Any]]:
    return [await camps.contact(f"Cliente {i}", tags=[tag]) for i in range(n)]


def _numbers(contacts: list[dict[str, Any]]) -> set[str]:
    return {c["whatsapp_id"].lstrip("+") for c in contacts}


def _per_number(camps: Campaigns) -> Counter[str]:
    return Counter(sent_to(camps.shop.sim, camps.shop.number.pnid))


@contextlib.contextmanager
def sim_settings(camps: Campaigns, **changes: Any) -> Iterator[None]:
    state = camps.shop.sim.state
    before = state.settings
    state.settings = dataclasses.replace(before, **changes)
    try:
        yield
    finally:
        state.settings = before


async def _events(camps: Campaigns, kind: str) -> list[dict[str, Any]]:
    async with camps.factory() as session:
        rows = await session.scalars(
            select(OutboxEvent).where(
                OutboxEvent.organization_id == uuid.UUID(camps.shop.org.id),
                OutboxEvent.type == kind,
            )
        )
        return [row.payload for row in rows]


async def _claimed_ones_finished(camps: Campaigns, campaign_id: str) -> None:
    """Wait until no recipient is in flight: after a pause or cancel the messages no worker had
    claimed are withdrawn at once, those already claimed finish sending."""

    async def none_sending() -> bool:
        return not await camps.recipients(campaign_id, status="sending")

    await eventually(none_sending, timeout=20)


async def test_variables_rendered_per_contact_and_the_campaign_completes(
    camps: Campaigns,
) -> None:
    ana = await camps.contact("Ana Souza", tags=["city"], attributes={"city": "Recife"})
    bia = await camps.contact("Bia Lima", tags=["city"], attributes={"city": "Natal"})
    nocity = await camps.contact("Sem Cidade", tags=["city"])
    created = await _campaign(
        camps,
        "city",
        body="Oi {{1}}, ofertas em {{2}}: {{3}}",
        **{"1": "{{contact.name}}", "2": "{{contact.attributes.city}}", "3": "50%"},
    )
    assert created["total_recipients"] == 3
    started = await camps.act(created["id"], "start")
    assert started["status"] == "running" and started["started_at"]
    done = await camps.wait_status(created["id"], "completed")
    assert done["completed_at"] and done["sent_count"] == 2
    assert done["skipped_reasons"] == {"missing_variable": 1}
    bodies = {
        m.to: m.body for m in camps.shop.sim.state.sent if m.channel == camps.shop.number.pnid
    }
    for contact, city in ((ana, "Recife"), (bia, "Natal")):
        template = bodies[contact["whatsapp_id"].lstrip("+")]["template"]
        params = template["components"][0]["parameters"]
        assert [p["text"] for p in params] == [contact["name"], city, "50%"]
        assert template["language"]["code"] == "pt_BR"
    assert nocity["whatsapp_id"].lstrip("+") not in bodies
    rows = {r["contact_id"]: r for r in await camps.recipients(created["id"])}
    assert rows[nocity["id"]]["status"] == "skipped"
    assert rows[nocity["id"]]["skip_reason"] == "missing_variable"
    assert rows[ana["id"]]["whatsapp_message_id"]
    started_events = await _events(camps, "campaign.started")
    completed = await _events(camps, "campaign.completed")
    assert any(e["campaign"]["id"] == created["id"] for e in started_events)
    [event] = [e for e in completed if e["campaign"]["id"] == created["id"]]
    assert event["metrics"]["sent_count"] == 2


async def test_pause_resume_and_cancel(camps: Campaigns) -> None:
    crowd = await _crowd(camps, "paced", 12)
    created = await _campaign(camps, "paced", rate=4)
    cid = created["id"]
    await camps.act(cid, "start")

    async def some_sent() -> bool:
        return (await camps.get(cid))["sent_count"] >= 2

    await eventually(some_sent, timeout=10)
    paused = await camps.act(cid, "pause")
    assert paused["status"] == "paused" and paused["pause_reason"] == "paused by request"
    assert (await _events(camps, "campaign.paused"))[-1]["campaign"]["id"] == cid
    await _claimed_ones_finished(camps, cid)
    frozen = sum(_per_number(camps)[n] for n in _numbers(crowd))
    await asyncio.sleep(1.0)
    assert sum(_per_number(camps)[n] for n in _numbers(crowd)) == frozen < 12
    await camps.act(cid, "pause", expect=409)
    await camps.act(cid, "resume")
    done = await camps.wait_status(cid, "completed", within=20)
    assert done["sent_count"] == 12
    counts = _per_number(camps)
    assert all(counts[n] == 1 for n in _numbers(crowd))

    others = await _crowd(camps, "cancelled", 10)
    second = await _campaign(camps, "cancelled", rate=3)
    await camps.act(second["id"], "start")

    async def one_sent() -> bool:
        return (await camps.get(second["id"]))["sent_count"] >= 1

    await eventually(one_sent, timeout=10)
    cancelled = await camps.act(second["id"], "cancel")
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"]
    await _claimed_ones_finished(camps, second["id"])
    frozen = sum(_per_number(camps)[n] for n in _numbers(others))
    await asyncio.sleep(1.0)
    assert sum(_per_number(camps)[n] for n in _numbers(others)) == frozen < 10
    rows = await camps.recipients(second["id"], status="cancelled")
    assert len(rows) == 10 - frozen
    await camps.act(second["id"], "resume", expect=409)


async def test_a_run_of_131049_pauses_the_campaign_131026_only_fails(camps: Campaigns) -> None:
    sim, pnid = camps.shop.sim, camps.shop.number.pnid
    await _crowd(camps, "engagement", 14)
    created = await _campaign(camps, "engagement", rate=5)
    sim.set_faults(error={"code": 131049, "count": 100, "channel": pnid})
    try:
        await camps.act(created["id"], "start")
        paused = await camps.wait_status(created["id"], "paused", within=15)
    finally:
        sim.state.faults.errors = [f for f in sim.state.faults.errors if f.channel != pnid]
    assert "131049" in paused["pause_reason"]
    assert paused["failed_count"] >= 5 and paused["sent_count"] == 0
    assert paused["pending_count"] > 0
    reasons = [e["reason"] for e in await _events(camps, "campaign.paused")]
    assert any("131049" in (r or "") for r in reasons)
    await camps.act(created["id"], "resume")
    done = await camps.wait_status(created["id"], "completed")
    assert done["failed_count"] + done["sent_count"] == 14
    failed = await camps.recipients(created["id"], status="failed")
    assert {r["error"]["code"] for r in failed} == {131049}

    await _crowd(camps, "undeliverable", 8)
    second = await _campaign(camps, "undeliverable", rate=20)
    sim.set_faults(error={"code": 131026, "count": 7, "channel": pnid})
    try:
        await camps.act(second["id"], "start")
        done = await camps.wait_status(second["id"], "completed")
    finally:
        sim.state.faults.errors = [f for f in sim.state.faults.errors if f.channel != pnid]
    assert done["failed_count"] == 7 and done["sent_count"] == 1
    assert done["pause_reason"] is None


async def test_an_opt_out_mid_campaign_takes_effect(camps: Campaigns) -> None:
    crowd = await _crowd(camps, "stop", 6)
    created = await _campaign(camps, "stop", rate=2)
    cid = created["id"]
    await camps.act(cid, "start")

    async def one_sent() -> bool:
        return (await camps.get(cid))["sent_count"] >= 1

    await eventually(one_sent, timeout=10)
    await camps.act(cid, "pause")
    pending = await camps.recipients(cid, status="pending")
    assert pending
    quitter = pending[0]
    await camps.shop.customer_writes(quitter["phone"].lstrip("+"), "STOP")
    await camps.act(cid, "resume")
    done = await camps.wait_status(cid, "completed", within=20)
    assert done["skipped_reasons"] == {"opted_out": 1}
    rows = {r["contact_id"]: r for r in await camps.recipients(cid)}
    assert rows[quitter["contact_id"]]["status"] == "skipped"
    counts = _per_number(camps)
    assert counts[quitter["phone"].lstrip("+")] == 0
    assert sum(counts[n] for n in _numbers(crowd)) == 5


async def test_metrics_match_delivered_read_failed_webhooks_and_replies(
    camps: Campaigns,
) -> None:
    shop = camps.shop
    crowd = await _crowd(camps, "metrics", 5)
    numbers = [c["whatsapp_id"].lstrip("+") for c in crowd]
    # The fourth customer wrote before the campaign: not a reply to it.
    await shop.customer_writes(numbers[3], "oi, antes da campanha")
    created = await _campaign(camps, "metrics")
    with sim_settings(camps, auto_read=False, not_on_whatsapp=frozenset({numbers[4]})):
        await camps.act(created["id"], "start")
        done = await camps.wait_status(created["id"], "completed")
        assert done["sent_count"] == 4 and done["failed_count"] == 1
        assert done["delivered_count"] == 4 and done["read_count"] == 0
        wamids = {
            r["phone"].lstrip("+"): r["whatsapp_message_id"]
            for r in await camps.recipients(created["id"])
        }
        for number in numbers[:2]:
            await shop.sim.customer_reads(wamids[number])
        await shop.sim.customer_reads(wamids[numbers[0]])  # a duplicate read changes nothing
        await shop.customer_writes(numbers[0], "quero!")
        await shop.customer_writes(numbers[2], "quanto custa?")
        await shop.customer_writes(numbers[2], "e o frete?")  # one recipient, one reply
    got = await camps.get(created["id"])
    assert {k: got[k] for k in ("sent_count", "delivered_count", "read_count")} == {
        "sent_count": 4,
        "delivered_count": 4,
        "read_count": 2,
    }
    assert got["failed_count"] == 1 and got["replied_count"] == 2
    assert (got["delivery_rate"], got["read_rate"], got["reply_rate"]) == (100.0, 50.0, 50.0)
    assert got["reply_window_hours"] == 72.0
    rows = {r["phone"].lstrip("+"): r for r in await camps.recipients(created["id"])}
    assert rows[numbers[0]]["status"] == "read" and rows[numbers[0]]["replied_at"]
    assert rows[numbers[1]]["status"] == "read" and rows[numbers[1]]["replied_at"] is None
    assert rows[numbers[3]]["status"] == "delivered" and rows[numbers[3]]["replied_at"] is None
    assert rows[numbers[4]]["status"] == "failed"
    assert rows[numbers[4]]["error"]["code"] == 131026
    failed = await camps.recipients(created["id"], status="failed")
    assert [r["phone"].lstrip("+") for r in failed] == [numbers[4]]


async def test_statuses_coalesced_in_shared_webhooks_are_each_applied(camps: Campaigns) -> None:
    # Meta's payload allows several `statuses` in one webhook; the simulator sends them so when
    # asked (`status_coalesce_seconds`), as a load test's stand-in does.
    await _crowd(camps, "coalesced", 6)
    created = await _campaign(camps, "coalesced")

    async def all_read() -> dict[str, Any] | None:
        got = await camps.get(created["id"])
        return got if got["read_count"] == 6 else None

    with sim_settings(camps, status_coalesce_seconds=0.5):
        await camps.act(created["id"], "start")
        got = await eventually(all_read, timeout=30)
        await camps.shop.sim.idle()
    assert (got["sent_count"], got["delivered_count"], got["failed_count"]) == (6, 6, 0)
    rows = await camps.recipients(created["id"])
    assert {r["status"] for r in rows} == {"read"}
    wamids = {r["whatsapp_message_id"] for r in rows}
    carried = [
        sum(1 for item in change["value"].get("statuses", []) if item["id"] in wamids)
        for hook in camps.shop.sim.state.webhook_log
        for entry in hook["body"].get("entry", [])
        for change in entry["changes"]
    ]
    assert sum(carried) == 18 and max(carried) > 1


async def test_campaign_events_reach_the_websocket(camps: Campaigns, send_url: str) -> None:
    await _crowd(camps, "live", 2)
    created = await _campaign(camps, "live")
    ws = await connect(send_url.replace("http://", "ws://") + "/ws")
    async with ws:
        await ws.send(json.dumps({"type": "auth", "token": camps.shop.org.token}))
        assert json.loads(await ws.recv()) == {"type": "auth_ok"}
        await camps.act(created["id"], "start")
        seen: dict[str, dict[str, Any]] = {}
        async with asyncio.timeout(20):
            while "campaign.completed" not in seen:
                frame = json.loads(await ws.recv())
                if frame.get("type") == "campaign":
                    seen[frame["event"]] = frame["data"]
    assert seen["campaign.started"]["campaign"]["id"] == created["id"]
    assert seen["campaign.completed"]["campaign"]["status"] == "completed"
    assert seen["campaign.completed"]["metrics"]["sent_count"] == 2
