"""Rate limits with the `limits` library: moving windows in memory, or in Redis across processes."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool
from starlette.requests import HTTPConnection

from pytake.errors import RateLimited

log = logging.getLogger(__name__)
T = TypeVar("T")

STATE_KEY = "rate_limit"


@dataclass(frozen=True)
class LimitState:
    limit: int
    remaining: int
    reset: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }


class RateLimiter:
    """Checks a request against one policy (e.g. "1000/minute;100/second") for one key.

    With Redis the windows are shared by every process. While Redis cannot be reached they
    fall back to this process's memory (a warning says so once per outage), and Redis is tried
    again every RETRY_SECONDS: a Redis outage loosens the limits, it never fails a request.
    """

    RETRY_SECONDS = 5.0

    def __init__(
        self,
        redis_url: str | None,
        key_prefix: str,
        enabled: bool = True,
        client_name: str | None = None,
    ) -> None:
        self.enabled = enabled
        self.storage: Storage
        # Ours rather than the library's, so that close() can end its connections.
        self._pool: ConnectionPool | None = None
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            self._pool = ConnectionPool.from_url(
                redis_url.removeprefix("async+"),
                client_name=client_name,
                # A Redis that stops answering must not hold requests for long.
                socket_connect_timeout=1.0,
                socket_timeout=1.0,
            )
            self.storage = RedisStorage(
                uri,
                implementation="redispy",
                key_prefix=key_prefix,
                wrap_exceptions=True,
                connection_pool=self._pool,  # type: ignore[arg-type]
            )
        else:
            self.storage = MemoryStorage()
        self._shared = MovingWindowRateLimiter(self.storage)
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._strategy = self._shared
        self._retry_at = 0.0
        self._parsed: dict[str, list[RateLimitItem]] = {}

    async def close(self) -> None:
        """Close the Redis connections (the app's lifespan ends)."""
        if self._pool is not None:
            await self._pool.aclose()

    @property
    def degraded(self) -> bool:
        """True while the shared (Redis) windows are out of reach."""
        return self._strategy is not self._shared

    def _current(self) -> MovingWindowRateLimiter:
        if self.degraded and time.monotonic() >= self._retry_at:
            self._strategy = self._shared  # try Redis again
        return self._strategy

    def _fall_back(self, exc: Exception) -> MovingWindowRateLimiter:
        if not self.degraded:
            log.warning(
                "rate limits: Redis unreachable (%s); counting in this process's memory until "
                "it is back",
                exc,
            )
        self._strategy = self._local
        self._retry_at = time.monotonic() + self.RETRY_SECONDS
        return self._local

    async def _using_storage(self, op: Callable[[MovingWindowRateLimiter], Awaitable[T]]) -> T:
        strategy = self._current()
        try:
            result = await op(strategy)
        except StorageError as exc:
            return await op(self._fall_back(exc))
        if strategy is self._shared and self._retry_at:
            self._retry_at = 0.0
            log.warning("rate limits: Redis is back; limits are shared again")
        return result

    def _items(self, policy: str) -> list[RateLimitItem]:
        items = self._parsed.get(policy)
        if items is None:
            items = self._parsed[policy] = parse_many(policy)
        return items

    async def check(self, policy: str, namespace: str, key: str) -> LimitState | None:
        """Count one request; raise RateLimited when any window of the policy is exhausted.

        Returns the state of the policy's first (headline) window for the response headers.
        """
        if not self.enabled:
            return None
        headline: LimitState | None = None
        for item in self._items(policy):
            allowed, reset_at, remaining = await self._using_storage(
                partial(_hit, item=item, namespace=namespace, key=key)
            )
            state = LimitState(item.amount, max(0, remaining), math.ceil(reset_at))
            if headline is None:
                headline = state
            if not allowed:
                retry_after = max(1, math.ceil(reset_at - time.time()))
                raise RateLimited(retry_after, headers=state.headers())
        return headline

    async def is_exhausted(self, policy: str, namespace: str, key: str) -> int | None:
        """Seconds until the policy admits `key` again, or None when it is admitted now."""
        for item in self._items(policy):
            wait = await self._using_storage(
                partial(_wait, item=item, namespace=namespace, key=key)
            )
            if wait is not None:
                return wait
        return None

    async def record(self, policy: str, namespace: str, key: str) -> None:
        """Count an event (e.g. a failed login) against the policy without checking it."""
        for item in self._items(policy):
            await self._using_storage(partial(_record, item=item, namespace=namespace, key=key))

    async def clear(self, policy: str, namespace: str, key: str) -> None:
        for item in self._items(policy):
            await self._using_storage(partial(_clear, item=item, namespace=namespace, key=key))


async def _hit(
    strategy: MovingWindowRateLimiter, item: RateLimitItem, namespace: str, key: str
) -> tuple[bool, float, int]:
    allowed = await strategy.hit(item, namespace, key)
    reset_at, remaining = await strategy.get_window_stats(item, namespace, key)
    return allowed, reset_at, remaining


async def _record(
    strategy: MovingWindowRateLimiter, item: RateLimitItem, namespace: str, key: str
) -> None:
    await strategy.hit(item, namespace, key)


async def _clear(
    strategy: MovingWindowRateLimiter, item: RateLimitItem, namespace: str, key: str
) -> None:
    await strategy.clear(item, namespace, key)


async def _wait(
    strategy: MovingWindowRateLimiter, item: RateLimitItem, namespace: str, key: str
) -> int | None:
    if await strategy.test(item, namespace, key):
        return None
    reset_at, _ = await strategy.get_window_stats(item, namespace, key)
    return max(1, math.ceil(reset_at - time.time()))


async def enforce(conn: HTTPConnection, policy: str, namespace: str, key: str) -> None:
    """Apply a policy to this request and remember its state for the response headers."""
    limiter: RateLimiter = conn.app.state.rate_limiter
    state = await limiter.check(policy, namespace, key)
    if state is not None:
        conn.scope.setdefault("state", {})[STATE_KEY] = state


def client_address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"
