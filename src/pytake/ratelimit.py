"""Rate limits with the `limits` library: moving windows in memory, or in Redis across processes."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.requests import HTTPConnection

from pytake.errors import RateLimited

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
    """Checks a request against one policy (e.g. "1000/minute;100/second") for one key."""

    def __init__(self, redis_url: str | None, key_prefix: str, enabled: bool = True) -> None:
        self.enabled = enabled
        self.storage: Storage
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            self.storage = RedisStorage(uri, implementation="redispy", key_prefix=key_prefix)
        else:
            self.storage = MemoryStorage()
        self._strategy = MovingWindowRateLimiter(self.storage)
        self._parsed: dict[str, list[RateLimitItem]] = {}

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
            allowed = await self._strategy.hit(item, namespace, key)
            reset_at, remaining = await self._strategy.get_window_stats(item, namespace, key)
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
            if not await self._strategy.test(item, namespace, key):
                reset_at, _ = await self._strategy.get_window_stats(item, namespace, key)
                return max(1, math.ceil(reset_at - time.time()))
        return None

    async def record(self, policy: str, namespace: str, key: str) -> None:
        """Count an event (e.g. a failed login) against the policy without checking it."""
        for item in self._items(policy):
            await self._strategy.hit(item, namespace, key)

    async def clear(self, policy: str, namespace: str, key: str) -> None:
        for item in self._items(policy):
            await self._strategy.clear(item, namespace, key)


async def enforce(conn: HTTPConnection, policy: str, namespace: str, key: str) -> None:
    """Apply a policy to this request and remember its state for the response headers."""
    limiter: RateLimiter = conn.app.state.rate_limiter
    state = await limiter.check(policy, namespace, key)
    if state is not None:
        conn.scope.setdefault("state", {})[STATE_KEY] = state


def client_address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"
