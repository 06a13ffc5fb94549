"""A campaign loop beside the shared sending app's dispatcher, for the whole session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from pytake.campaign.dispatch import CampaignLoop
from tests.campaign.support import Campaigns, campaign_settings, looping
from tests.message.sending.support import Shop


@pytest.fixture(scope="session")
async def campaign_loop(send_app: FastAPI) -> AsyncIterator[CampaignLoop]:
    loop = CampaignLoop(send_app.state.session_factory, campaign_settings(send_app.state.settings))
    # The API reads the same settings (reply window, pace shown).
    send_app.state.settings = campaign_settings(send_app.state.settings)
    async with looping(loop):
        yield loop


@pytest.fixture
async def camps(
    http: httpx.AsyncClient, shop: Shop, send_app: FastAPI, campaign_loop: CampaignLoop
) -> Campaigns:
    return Campaigns(http, shop, send_app)
