"""Helpers for campaign tests: a shop (tests.message.sending.support) with contacts, approved
templates (in PyTake and in the simulator) and a campaign loop running beside the shared
app's dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.campaign.dispatch import CampaignLoop
from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.models import MessageTemplate
from pytake.whatsapp.simulator import Simulator
from tests.campaign.workers import CAMPAIGN_TEST_SETTINGS, run_loop, worker
from tests.message.sending.support import Shop, eventually, new_customer


def campaign_settings(base: Settings, **overrides: Any) -> Settings:
    return base.model_copy(update={**CAMPAIGN_TEST_SETTINGS, **overrides})


@contextlib.asynccontextmanager
async def looping(loop: CampaignLoop) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(run_loop(loop))
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def add_template(
    factory: async_sessionmaker[AsyncSession],
    sim: Simulator,
    shop: Shop,
    *,
    name: str | None = None,
    body: str = "Hi {{1}}, use {{2}}",
    parameter_format: str = "POSITIONAL",
    status: str = "APPROVED",
    language: str = "pt_BR",
) -> MessageTemplate:
    """A template Meta approved: known to the simulator and in PyTake's copy."""
    name = name or "promo_" + uuid.uuid4().hex[:10]
    components: list[dict[str, Any]] = [{"type": "BODY", "text": body}]
    sim.register_template(
        shop.number.waba,
        name,
        language,
        components=components,
        status=status,
        category="MARKETING",
        parameter_format=parameter_format,
    )
    async with unit_of_work(factory) as session:
        template = MessageTemplate(
            organization_id=uuid.UUID(shop.org.id),
            channel_id=uuid.UUID(shop.number.id),
            business_account_id=shop.number.waba,
            name=name,
            language=language,
            category="MARKETING",
            parameter_format=parameter_format,
            components=components,
            status=status,
        )
        session.add(template)
    return template


@dataclass
class Campaigns:
    """A shop running campaigns through the API."""

    http: httpx.AsyncClient
    shop: Shop
    app: FastAPI
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return self.shop.headers

    @property
    def factory(self) -> async_sessionmaker[AsyncSession]:
        factory: async_sessionmaker[AsyncSession] = self.app.state.session_factory
        return factory

    async def contact(
        self,
        name: str | None = None,
        *,
        tags: list[str] | None = None,
        attributes: dict[str, Any] | None = None,
        opt_in: bool = True,
        number: str | None = None,
    ) -> dict[str, Any]:
        body = {
            "whatsapp_id": "+" + (number or new_customer()),
            "name": name,
            "tags": tags or [],
            "attributes": attributes or {},
            "opt_in": opt_in,
        }
        resp = await self.http.post("/v1/contacts", json=body, headers=self.headers)
        assert resp.status_code == 201, resp.text
        contact: dict[str, Any] = resp.json()
        self.contacts[contact["id"]] = contact
        return contact

    async def template(self, **kwargs: Any) -> MessageTemplate:
        return await add_template(self.factory, self.shop.sim, self.shop, **kwargs)

    async def create(self, body: dict[str, Any], expect: int = 201) -> dict[str, Any]:
        resp = await self.http.post("/v1/campaigns", json=body, headers=self.headers)
        assert resp.status_code == expect, resp.text
        result: dict[str, Any] = resp.json()
        return result

    async def get(self, campaign_id: str) -> dict[str, Any]:
        resp = await self.http.get(f"/v1/campaigns/{campaign_id}", headers=self.headers)
        assert resp.status_code == 200, resp.text
        result: dict[str, Any] = resp.json()
        return result

    async def act(self, campaign_id: str, action: str, expect: int = 200) -> dict[str, Any]:
        resp = await self.http.post(f"/v1/campaigns/{campaign_id}/{action}", headers=self.headers)
        assert resp.status_code == expect, resp.text
        result: dict[str, Any] = resp.json()
        return result

    async def recipients(self, campaign_id: str, **params: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            resp = await self.http.get(
                f"/v1/campaigns/{campaign_id}/recipients",
                params={"page": page, "limit": 100, **params},
                headers=self.headers,
            )
            assert resp.status_code == 200, resp.text
            body = resp.json()
            rows += body["data"]
            if page >= body["meta"]["total_pages"]:
                return rows
            page += 1

    async def wait_status(
        self, campaign_id: str, status: str, within: float = 30.0
    ) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            got = await self.get(campaign_id)
            return got if got["status"] == status else None

        result: dict[str, Any] = await eventually(reached, timeout=within)
        return result


def sent_to(sim: Simulator, pnid: str) -> list[str]:
    """The `to` of every message the simulator accepted from this number."""
    return [m.to for m in sim.state.sent if m.channel == pnid]


__all__ = [
    "Campaigns",
    "campaign_settings",
    "eventually",
    "looping",
    "run_loop",
    "sent_to",
    "worker",
]
