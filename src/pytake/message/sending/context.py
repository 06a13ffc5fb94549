"""What sending needs from the app: sessions, providers, tuning, its background sends."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.config import Settings
from pytake.message.sending.dispatcher import ProviderCache, SendingTuning, worker_id


@dataclass
class SendingContext:
    """What sending needs from the app: sessions, providers, tuning, and the sends still
    waiting on the provider after their request answered (held so they are not collected)."""

    factory: async_sessionmaker[AsyncSession]
    settings: Settings
    providers: ProviderCache
    tuning: SendingTuning
    worker: str
    background: set[asyncio.Task[Any]] = field(default_factory=set)


def sending_context(state: Any) -> SendingContext:
    """The app's SendingContext (built on first use from `app.state`)."""
    ctx: SendingContext | None = getattr(state, "sending", None)
    if ctx is None:
        tuning = getattr(state, "sending_tuning", None) or SendingTuning.from_settings(
            state.settings
        )
        providers = ProviderCache(
            state.session_factory, state.settings, state.http, tuning.provider_cache_seconds
        )
        ctx = SendingContext(
            state.session_factory, state.settings, providers, tuning, worker_id("api")
        )
        state.sending = ctx
    return ctx
