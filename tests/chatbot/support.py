"""A world for chatbot journeys: the simulator, an app with its background loops on a database
of its own, a shop with a Cloud API number, and helpers to read what customers received."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from pytake.chatbot.tasks import ChatbotConsumer
from pytake.config import Settings
from pytake.whatsapp.simulator import Simulator
from tests.channel.support import MetaNumber, create_official
from tests.conftest import TEST_DATABASE_URL, Org, client_for, register_org
from tests.events.helpers import running_app, serving
from tests.message.sending.support import new_customer


@asynccontextmanager
async def own_database(tmp: Any) -> AsyncIterator[str]:
    """An empty database for one module's apps (their loops must not meet other rows)."""
    if not TEST_DATABASE_URL:
        yield f"sqlite+aiosqlite:///{tmp / 'chatbots.db'}"
        return
    import asyncpg

    url = make_url(TEST_DATABASE_URL)
    name = f"pytake_bots_{uuid.uuid4().hex[:10]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(False)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def world_settings(make_settings: Callable[..., Settings], url: str, sim: Simulator) -> Settings:
    return make_settings(
        database_url=url,
        meta_graph_url=sim.graph_url,
        run_background_loops=True,
        worker_poll_seconds=0.1,
    )


@dataclass
class World:
    app: FastAPI
    url: str
    api: httpx.AsyncClient
    sim: Simulator


@asynccontextmanager
async def world(settings: Settings, sim: Simulator) -> AsyncIterator[World]:
    async with running_app(settings) as app, serving(app) as url, client_for(app) as api:
        yield World(app, url, api, sim)


def consumer_of(app: FastAPI) -> ChatbotConsumer:
    runner = app.state.runtime.runner
    return next(loop for loop in runner.loops if isinstance(loop, ChatbotConsumer))


@dataclass
class Shop:
    w: World
    org: Org
    number: MetaNumber

    @property
    def api(self) -> httpx.AsyncClient:
        return self.w.api

    @property
    def headers(self) -> dict[str, str]:
        return self.org.headers

    async def bot(self, *flows: dict[str, Any], **bot: Any) -> dict[str, Any]:
        """A chatbot with these flows, each published."""
        body = {"name": "Bot", **bot}
        resp = await self.api.post("/v1/chatbots", json=body, headers=self.headers)
        assert resp.status_code == 201, resp.text
        created = resp.json()
        created["flow_ids"] = []
        for flow in flows:
            created["flow_ids"].append(await self.flow(created["id"], flow))
        return created

    async def flow(self, bot_id: str, flow: dict[str, Any]) -> str:
        base = f"/v1/chatbots/{bot_id}/flows"
        resp = await self.api.post(base, json=copy.deepcopy(flow), headers=self.headers)
        assert resp.status_code == 201, resp.text
        flow_id = str(resp.json()["id"])
        resp = await self.api.post(f"{base}/{flow_id}/publish", headers=self.headers)
        assert resp.status_code == 201, resp.text
        return flow_id

    async def says(self, customer: str, text: str | None = None, **spec: Any) -> None:
        if text is not None:
            spec = {"type": "text", "text": text, **spec}
        record = await self.w.sim.customer_sends(
            self.number.pnid, sender=customer, profile_name="Maria", **spec
        )
        assert record.webhook_status == 200, record

    async def taps(self, customer: str, reply_id: str, title: str = "") -> None:
        await self.says(customer, type="button_reply", reply_id=reply_id, title=title or reply_id)

    def received(self, customer: str) -> list[str]:
        return [shown(m.body) for m in self.w.sim.state.sent_messages(to=customer)]

    async def receives(
        self,
        customer: str,
        count: int,
        timeout: float = 15.0,  # noqa: ASYNC109 - a polling deadline
    ) -> list[str]:
        """Wait until the customer has received `count` messages in all; returns them all."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received(customer)) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"received only {self.received(customer)!r}")
            await asyncio.sleep(0.03)
        return self.received(customer)

    async def conversation(self, customer: str) -> dict[str, Any]:
        resp = await self.api.get("/v1/conversations", headers=self.headers)
        for item in resp.json()["data"]:
            if item["contact"]["whatsapp_id"].lstrip("+") == customer:
                return dict(item)
        raise AssertionError(f"no conversation with {customer}")


async def open_shop(w: World) -> Shop:
    org = await register_org(w.api, "Bots")
    number = await create_official(w.api, org, w.sim, w.url, is_default=True)
    number.sim_number.mps = 10**6
    return Shop(w, org, number)


def shown(body: dict[str, Any]) -> str:
    """What a sent message shows: its text, an interactive body (with its options), or the
    name of a template."""
    kind = body.get("type")
    if kind == "text":
        return str(body["text"]["body"])
    if kind == "interactive":
        interactive = body["interactive"]
        action = interactive.get("action") or {}
        options = [b["reply"]["title"] for b in action.get("buttons") or []]
        for section in action.get("sections") or []:
            options += [r["title"] for r in section.get("rows") or []]
        return f"{interactive['body']['text']} {options}"
    if kind == "template":
        return f"template:{body['template']['name']}"
    return str(kind)


__all__ = ["Shop", "World", "new_customer", "open_shop", "world", "world_settings"]
