"""WebSocket counts across every `serve` process, for GET /api/v1/ws/stats.

Without Redis a process only knows its own sockets, so the stats are its own. With Redis each
process writes its counters (per organisation and in total) into a hash of its own every
`ws_stats_report_seconds`, with a TTL of three periods, and lists itself in a sorted set scored
by when its entry expires. Stats add up the live entries of the other processes to this
process's own counters (read live, so a process always sees its own sockets at once). A process
that stops removes its entry; one that dies stops counting when its entry expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pytake.realtime.registry import COUNTER_NAMES, Registry

log = logging.getLogger(__name__)

TOTALS_FIELD = "*"
STARTED_FIELD = "started_at"


class SharedStats:
    """This process's entry in Redis, and the sum of every live process's entries."""

    def __init__(self, registry: Registry, redis: Redis, prefix: str, period: float) -> None:
        self._registry = registry
        self._redis = redis
        self._period = period
        self._ttl_ms = max(1, int(period * 3 * 1000))
        self._processes_key = f"{prefix}:ws-stats"
        self._id = uuid.uuid4().hex
        self._started_at = time.time() - registry.uptime()

    def _entry_key(self, process_id: str) -> str:
        return f"{self._processes_key}:{process_id}"

    async def run(self) -> None:
        """Refresh this process's entry every period until cancelled; then remove it."""
        try:
            while True:
                try:
                    await self.write()
                except (RedisError, OSError):
                    log.warning("could not write WebSocket stats to Redis", exc_info=True)
                await asyncio.sleep(self._period)
        finally:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await asyncio.wait_for(self._remove(), 1.0)

    async def write(self) -> None:
        mapping: dict[str, bytes] = {
            org: orjson.dumps(self._registry.counters_of(org))
            for org in self._registry.organisations()
        }
        mapping[TOTALS_FIELD] = orjson.dumps(self._registry.counters_of(None))
        mapping[STARTED_FIELD] = orjson.dumps(self._started_at)
        key = self._entry_key(self._id)
        expires_at = time.time() * 1000 + self._ttl_ms
        # One MULTI: a reader never sees the entry emptied between DEL and HSET.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
            pipe.pexpire(key, self._ttl_ms)
            pipe.zadd(self._processes_key, {self._id: expires_at})
            pipe.zremrangebyscore(self._processes_key, "-inf", time.time() * 1000)
            pipe.pexpire(self._processes_key, self._ttl_ms)
            await pipe.execute()

    async def _remove(self) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._entry_key(self._id))
            pipe.zrem(self._processes_key, self._id)
            await pipe.execute()

    async def stats(self, organization_id: uuid.UUID | None) -> dict[str, int]:
        """This process's live figures plus every other live process's last written ones."""
        own = self._registry.stats(organization_id)
        field = TOTALS_FIELD if organization_id is None else str(organization_id)
        try:
            others = await self._others(field)
        except (RedisError, OSError):
            log.warning("could not read WebSocket stats from Redis; this process's only")
            return own
        for counters, started_at in others:
            for name, value in zip(COUNTER_NAMES, counters, strict=False):
                own[name] += int(value)
            if started_at is not None:
                own["uptime_seconds"] = max(own["uptime_seconds"], int(time.time() - started_at))
        return own

    async def _others(self, field: str) -> list[tuple[list[int], float | None]]:
        now_ms = time.time() * 1000
        live = await self._redis.zrangebyscore(self._processes_key, now_ms, "+inf")
        ids = [p.decode() if isinstance(p, bytes) else str(p) for p in live]
        ids = [p for p in ids if p != self._id]
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for process_id in ids:
                pipe.hmget(self._entry_key(process_id), [field, STARTED_FIELD])
            replies: list[list[Any]] = await pipe.execute()
        found = []
        for counters, started_at in replies:
            if counters is None and started_at is None:
                continue  # expired between the two reads
            found.append(
                (
                    orjson.loads(counters) if counters is not None else [],
                    orjson.loads(started_at) if started_at is not None else None,
                )
            )
        return found


def shared_stats(app: Any) -> SharedStats | None:
    """The app's SharedStats, started on first use, or None without Redis.

    Started lazily from the realtime endpoints (a process with no socket and no stats request
    has nothing to report) and run by the bus, which cancels it when the process stops.
    """
    state = app.state
    runtime = getattr(state, "runtime", None)
    if runtime is None or runtime.redis is None:
        return None
    shared: SharedStats | None = getattr(state, "ws_shared_stats", None)
    if shared is None:
        settings = state.settings
        shared = SharedStats(
            runtime.registry,
            runtime.redis,
            settings.events_channel_name,
            settings.ws_stats_report_seconds,
        )
        state.ws_shared_stats = shared
        runtime.bus.run_alongside(shared.run, name="ws-stats")
    return shared
