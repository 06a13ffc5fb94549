"""`pytake demo` / `pytake serve --demo`: PyTake plus the simulator in one process, with a demo
organisation whose default number is a simulated Cloud API number.

Open the simulator page (the customer's phone), write to the business, and the message
arrives in PyTake through the real signed-webhook path.
"""

from __future__ import annotations

import asyncio

import uvicorn
from sqlalchemy import select

from pytake.auth.scopes import Role
from pytake.auth.service import create_user
from pytake.config import Settings
from pytake.db import create_engine, create_session_factory, unit_of_work
from pytake.kit.crypto import secret_box
from pytake.migrate import upgrade_to_head
from pytake.models import Channel, User
from pytake.models.base import utcnow
from pytake.organization.service import create_organization

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "pytake-demo"
DEMO_PNID = "100000000000001"
DEMO_TOKEN = "EAA-demo-token"
DEMO_APP_SECRET = "demo-app-secret"
DEMO_VERIFY = "demo-verify-token"


async def seed(settings: Settings) -> None:
    """Create the demo organisation, its admin and its default number (idempotent)."""
    engine = create_engine(settings.database_url)
    try:
        await upgrade_to_head(engine)
        async with unit_of_work(create_session_factory(engine)) as session:
            if await session.scalar(select(User.id).where(User.email == DEMO_EMAIL)):
                return
            org = await create_organization(session, "PyTake Demo")
            await create_user(
                session, settings, org.id, DEMO_EMAIL, DEMO_PASSWORD, "Demo Admin", Role.ORG_ADMIN
            )
            box = secret_box(settings)
            session.add(
                Channel(
                    organization_id=org.id,
                    name="Simulated number",
                    provider="official",
                    phone_number_id=DEMO_PNID,
                    business_account_id="200000000000002",
                    display_phone_number="+1 555 010 0001",
                    access_token_encrypted=box.encrypt(DEMO_TOKEN),
                    app_secret_encrypted=box.encrypt(DEMO_APP_SECRET),
                    webhook_verify_token=DEMO_VERIFY,
                    is_active=True,
                    is_default=True,
                    health_status="unknown",
                    created_by=DEMO_EMAIL,
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
    finally:
        await engine.dispose()


async def run_demo(settings: Settings, host: str, port: int, sim_port: int) -> None:
    """Start the simulator, point PyTake's Graph URL at it, seed, and serve both."""
    from pytake.app import create_app
    from pytake.whatsapp.simulator import Simulator

    sim = Simulator()
    sim_url = await sim.start("127.0.0.1", sim_port)
    settings = settings.model_copy(
        update={"meta_graph_url": sim.graph_url, "allow_private_urls": True}
    )
    await seed(settings)
    local = f"http://127.0.0.1:{port}"
    sim.register_number(
        DEMO_PNID,
        DEMO_TOKEN,
        DEMO_APP_SECRET,
        display_phone_number="15550100001",
        waba_id="200000000000002",
        webhook_url=f"{local}/api/v1/whatsapp/webhook",
        verified_name="PyTake Demo",
        verify_token=DEMO_VERIFY,
    )
    print(
        f"PyTake demo on {local}  (sign in as {DEMO_EMAIL} / {DEMO_PASSWORD})\n"
        f"Customer's phone (simulator) on {sim_url}/ - write to the business from there.\n"
        f"Sign-in token: POST {local}/api/v1/auth/login; API docs at {local}/docs"
    )
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_config=None)
    try:
        await uvicorn.Server(config).serve()
    finally:
        await sim.stop()


def main(settings: Settings, host: str, port: int, sim_port: int) -> None:
    asyncio.run(run_demo(settings, host, port, sim_port))
