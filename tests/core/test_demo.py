"""`pytake demo`'s seed: a demo organisation, its admin and a default simulated number, once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from pytake.config import Settings
from pytake.db import create_engine, create_session_factory
from pytake.demo import DEMO_EMAIL, DEMO_PNID, seed
from pytake.models import Channel, User


async def test_seed_is_idempotent(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}")
    await seed(settings)
    await seed(settings)  # a second `pytake demo` on the same data keeps what is there
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            users = await session.scalar(
                select(func.count()).select_from(User).where(User.email == DEMO_EMAIL)
            )
            numbers = list(await session.scalars(select(Channel)))
    finally:
        await engine.dispose()
    assert users == 1
    assert [(n.phone_number_id, n.is_default) for n in numbers] == [(DEMO_PNID, True)]
