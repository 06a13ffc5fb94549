"""Argon2id password hashing at the cost the settings give, run off the event loop (at the
default cost a hash is ~0.25 s of CPU)."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from pytake.config import Settings


class Passwords:
    """Hashes new passwords at one cost; verifies hashes made at any cost (an Argon2 hash
    names its own parameters) and says when a stored one should be made again at this one."""

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int) -> None:
        hasher = Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._hash = PasswordHash((hasher,))
        # Verified against when the account does not exist, so both paths take the same time.
        self._dummy = self._hash.hash("pytake-timing-equaliser")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hash.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> tuple[bool, str | None]:
        """(whether it matches, a new hash when the stored one was made at another cost)."""
        target = password_hash or self._dummy
        ok, updated = await asyncio.to_thread(self._hash.verify_and_update, password, target)
        if password_hash is None:
            return False, None
        return ok, updated if ok else None


def passwords_for(settings: Settings) -> Passwords:
    return _passwords(
        settings.password_hash_time_cost,
        settings.password_hash_memory_kib,
        settings.password_hash_parallelism,
    )


@lru_cache(maxsize=8)
def _passwords(time_cost: int, memory_kib: int, parallelism: int) -> Passwords:
    return Passwords(time_cost, memory_kib, parallelism)
