"""What a process runs besides HTTP: the events bus, the realtime registry and, when asked, the
background loops (`pytake serve` in-process on the embedded default, or `pytake worker`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass

import aiohttp
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pytake.campaign.dispatch import CampaignLoop
from pytake.channel.health import ChannelHealthLoop
from pytake.chatbot.tasks import ChatbotConsumer
from pytake.config import Settings
from pytake.contact.tasks import ContactImportLoop
from pytake.events.bus import EventBus
from pytake.events.relay import EventsRelay
from pytake.kit.net_guard import guarded_session
from pytake.kit.sql import is_postgresql
from pytake.media.fetch import MediaFetchLoop
from pytake.media.retention import MediaRetentionLoop
from pytake.media.storage import MediaStorage, build_storage
from pytake.message.sending.dispatcher import SendingTuning, build_dispatcher
from pytake.message.sending.pruning import IdempotencyPruner
from pytake.realtime.registry import Registry
from pytake.template.tasks import TemplateSyncLoop
from pytake.webhook.delivery import WebhookDeliveryLoop
from pytake.whatsapp.cloud.client import GraphConnector
from pytake.worker.runner import BackgroundLoop, Runner

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    engine: AsyncEngine
    bus: EventBus
    registry: Registry
    redis: Redis | None = None
    runner: Runner | None = None
    http: aiohttp.ClientSession | None = None
    provider_http: aiohttp.ClientSession | None = None
    media_storage: MediaStorage | None = None
    # How long the loops get to finish what they have in flight (settings).
    shutdown_grace_seconds: float = 0.0

    async def stop(self) -> None:
        """Stop gracefully: the loops claim nothing more and finish what is in flight (for up
        to `shutdown_grace_seconds`), then the bus publishes what they recorded; then every
        connection is closed (HTTP sessions, Redis)."""
        if self.runner is not None:
            await self.runner.stop(self.shutdown_grace_seconds)
        await self.bus.stop(self.engine)
        if self.media_storage is not None:
            await self.media_storage.close()
        for session in (self.http, self.provider_http):
            if session is not None:
                await session.close()
        if self.redis is not None:
            await self.redis.aclose()


async def start_runtime(
    settings: Settings,
    engine: AsyncEngine,
    factory: async_sessionmaker[AsyncSession],
    *,
    run_loops: bool,
) -> Runtime:
    """Start the bus (and Redis fan-out), the registry, and optionally the background loops."""
    redis = (
        # A connection attempt to a Redis that is down or unreachable gives up soon: Redis is
        # optional, what uses it degrades (see redis_check).
        Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
            client_name=settings.redis_client_name("events"),
        )
        if settings.redis_url
        else None
    )
    bus = EventBus(factory, redis, settings.events_channel_name)
    registry = Registry(queue_size=settings.ws_send_queue_size)
    bus.on_events(registry.dispatch)
    media_storage = build_storage(settings)
    runtime = Runtime(engine, bus, registry, redis, media_storage=media_storage)
    runtime.shutdown_grace_seconds = settings.worker_shutdown_grace_seconds
    if run_loops:
        runtime.http = guarded_session(
            allow_private=settings.allow_private_urls,
            timeout_seconds=settings.webhook_timeout_seconds,
            limit=settings.webhook_concurrency,
        )
        tuning = SendingTuning.from_settings(settings)
        runtime.provider_http = provider_session(tuning.concurrency)
        loops: list[BackgroundLoop] = [
            WebhookDeliveryLoop(factory, settings, runtime.http, postgres=is_postgresql(engine)),
            EventsRelay(factory, bus, settings.events_relay_grace_seconds),
            build_dispatcher(factory, settings, runtime.provider_http, tuning),
            IdempotencyPruner.from_settings(factory, settings),
            ContactImportLoop(factory),
            CampaignLoop(factory, settings),
            ChatbotConsumer(
                factory,
                runtime.http,
                allow_private=settings.allow_private_urls,
                postgres=is_postgresql(engine),
            ),
        ]
        loops.append(ChannelHealthLoop(factory, settings, runtime.provider_http))
        loops.append(MediaFetchLoop(factory, settings, runtime.provider_http, media_storage))
        loops.append(MediaRetentionLoop(factory, settings, media_storage))
        if settings.template_sync_interval_seconds > 0:
            loops.append(TemplateSyncLoop(factory, settings, runtime.provider_http))
        runtime.runner = Runner(loops, settings.worker_poll_seconds)
        bus.on_wake(runtime.runner.wake)
    await bus.start(engine)
    if runtime.runner is not None:
        runtime.runner.start()
    return runtime


REDIS_CONNECT_TIMEOUT = 1.0


async def redis_check(redis: Redis) -> str:
    """ "ok", or "down" when Redis does not answer a PING within a second. Without it rate
    limits count per process, realtime events reach this process's sockets only (the relay
    carries the rest once it is back), and background loops wake on their poll."""
    try:
        async with asyncio.timeout(REDIS_CONNECT_TIMEOUT):
            await redis.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("health check: Redis unreachable: %s", exc)
        return "down"
    return "ok"


def provider_session(concurrency: int) -> aiohttp.ClientSession:
    """HTTP to WhatsApp providers: a pool as wide as the dispatcher's sends in flight (Little's
    law: 1,000 messages/s at 100 ms needs 100), orjson bodies, and the Cloud adapter's lean
    keep-alive pool for sends (`GraphConnector`). Not the webhook session: the provider URLs
    are Meta's (from settings) or gateways checked by `provider_for`."""
    return aiohttp.ClientSession(
        connector=GraphConnector(limit=concurrency, limit_per_host=concurrency),
        timeout=aiohttp.ClientTimeout(total=30),
        json_serialize=lambda obj: orjson.dumps(obj).decode(),
    )


def run_worker_process(settings: Settings) -> None:
    """`pytake worker`'s entry point: `run_worker` on the event loop settings choose.

    uvloop by default: the dispatcher spends most of its CPU in socket reads, writes and
    polling, which uvloop does in C (bench/dispatch.py measures both); plain asyncio where
    uvloop is not installed (it comes with uvicorn[standard], except on Windows).
    """
    lower_priority(settings.worker_nice)
    if settings.worker_event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed; the worker runs on the default asyncio loop")
        else:
            uvloop.run(run_worker(settings))
            return
    asyncio.run(run_worker(settings))


def lower_priority(nice: int) -> None:
    """Run this process at niceness `nice` at least (settings' `worker_nice`).

    Before the event loop and any thread start: on Linux niceness belongs to each thread and a
    new thread inherits its creator's, so setting it here covers every thread the worker runs
    (executor, DNS, database drivers). Never raised back: an unprivileged process cannot lower
    its niceness, and one started under `nice -n 15` keeps what its operator chose.
    """
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if current < nice:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    log.info("running at niceness %d", os.getpriority(os.PRIO_PROCESS, 0))


async def run_worker(settings: Settings) -> None:
    """`pytake worker`: the background loops only, until SIGINT/SIGTERM."""
    from pytake.db import create_engine, create_session_factory
    from pytake.kit.gc_tuning import tune_for_serving

    engine = create_engine(settings.database_url)
    runtime = await start_runtime(settings, engine, create_session_factory(engine), run_loops=True)
    tune_for_serving(settings.gc_tuning)  # after start-up: see kit/gc_tuning.py
    log.info("background loops started")
    stop = asyncio.Event()

    def on_signal(name: str) -> None:
        if stop.is_set():
            log.warning("%s again: cancelling what is in flight (left to its lease)", name)
            if runtime.runner is not None:
                runtime.runner.hurry()
            return
        log.info(
            "%s: claiming nothing more; up to %.1f s for what is in flight",
            name,
            settings.worker_shutdown_grace_seconds,
        )
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal, sig.name)
    try:
        await stop.wait()
    finally:
        await runtime.stop()
        await engine.dispose()
        log.info("stopped")


async def start_for_app(app: object) -> None:
    """Lifespan hook of `create_app`: app.state.runtime and app.state.realtime."""
    state = app.state  # type: ignore[attr-defined]
    settings: Settings = state.settings
    state.runtime = await start_runtime(
        settings,
        state.engine,
        state.session_factory,
        run_loops=settings.background_loops_in_process,
    )
    state.realtime = state.runtime.registry


async def stop_for_app(app: object) -> None:
    runtime: Runtime | None = getattr(app.state, "runtime", None)  # type: ignore[attr-defined]
    if runtime is not None:
        await runtime.stop()
