"""Campaigns are paced to min(send_rate_limit, their number's throughput), and campaigns on one
number share its throughput. Asserted on what is observable whatever the machine's load: the
pace the API shows, and lower bounds on how long the simulator took to receive the sends
(load only makes a run slower)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from pytake.campaign.pacing import Ask, share
from tests.campaign.support import Campaigns
from tests.message.sending.support import eventually


def _ask(channel: uuid.UUID, limit: int | None, throughput: int, factor: float = 1.0) -> Ask:
    return Ask(uuid.uuid4(), channel, limit, throughput, factor)


def test_a_numbers_throughput_is_shared_max_min_fairly() -> None:
    one, two, three = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    alone = _ask(one, 1000, 80)
    small, big, bigger = _ask(two, 10, 100), _ask(two, 500, 100), _ask(two, None, 100)
    rates = share([alone, small, big, bigger])
    assert rates[alone.campaign_id] == 80  # min(send_rate_limit, throughput)
    assert rates[small.campaign_id] == 10  # asks less than an equal share: keeps its ask
    assert rates[big.campaign_id] == rates[bigger.campaign_id] == 45
    assert share([_ask(one, 30, 1000)]).popitem()[1] == 30
    # A throttled number (factor 0.5) takes half its throughput, whoever runs on it.
    assert share([_ask(three, 1000, 100, factor=0.5)]).popitem()[1] == 50
    throttled = share([_ask(three, 1000, 100, factor=0.5), _ask(three, 10, 100, factor=0.5)])
    assert sorted(throttled.values()) == [10, 40]


async def _throughput(camps: Campaigns, value: int) -> None:
    resp = await camps.http.patch(
        f"/v1/whatsapp-configs/{camps.shop.number.id}",
        json={"throughput": value},
        headers=camps.headers,
    )
    assert resp.status_code == 200, resp.text


async def _campaign(camps: Campaigns, tag: str, n: int, rate: int) -> dict[str, Any]:
    for i in range(n):
        await camps.contact(f"Cliente {i}", tags=[tag])
    template = await camps.template(body="Oi {{1}}")
    return await camps.create(
        {
            "name": f"Paced {tag}",
            "target_type": "tags",
            "target_filters": {"tags": [tag]},
            "template_id": str(template.id),
            "message_content": {"variables": {"1": "{{contact.name}}"}},
            "send_rate_limit": rate,
        }
    )


def _started(campaign: dict[str, Any]) -> float:
    return datetime.fromisoformat(campaign["started_at"]).timestamp()


def _send_times(camps: Campaigns) -> list[float]:
    pnid = camps.shop.number.pnid
    return sorted(m.created_at for m in camps.shop.sim.state.sent if m.channel == pnid)


async def test_a_campaign_is_paced_to_its_numbers_throughput(camps: Campaigns) -> None:
    await _throughput(camps, 5)
    created = await _campaign(camps, "slow-number", 11, rate=1000)
    await camps.act(created["id"], "start")
    running = await camps.get(created["id"])
    assert running["current_rate"] == 5.0  # the number's 5/s, not the campaign's 1,000/s
    done = await camps.wait_status(created["id"], "completed", within=30)
    assert done["sent_count"] == 11 and done["current_rate"] is None
    times = _send_times(camps)
    assert len(times) == 11
    # 11 sends at 5/s: the last one's slot is 10 × 0.2 s after the first's, which is not
    # before the start (a message is never sent before its slot; it may be sent later).
    assert times[-1] >= _started(done) + 10 / 5 - 0.01


async def test_campaigns_on_one_number_share_its_throughput(camps: Campaigns) -> None:
    await _throughput(camps, 8)
    first = await _campaign(camps, "share-a", 12, rate=1000)
    second = await _campaign(camps, "share-b", 12, rate=1000)
    await asyncio.gather(camps.act(first["id"], "start"), camps.act(second["id"], "start"))

    async def both_at_half() -> bool:
        got = [await camps.get(c["id"]) for c in (first, second)]
        return [g["current_rate"] for g in got] == [4.0, 4.0]

    await eventually(both_at_half, timeout=10)
    started = []
    for created in (first, second):
        done = await camps.wait_status(created["id"], "completed", within=30)
        assert done["sent_count"] == 12
        started.append(_started(done))
    times = _send_times(camps)
    assert len(times) == 24
    # Together at most 8/s: each campaign's first message is due at once, its next 11 at
    # 4/s, so the last send is at least 11 / 4 s after the later start.
    assert times[-1] >= max(started) + 11 / 4 - 0.01
