"""The dispatcher's provider cache rebuilds an expired number once, however many sends wait."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

from pytake.message.sending.dispatcher import ProviderCache
from pytake.whatsapp.provider import ProviderError, WhatsAppProvider


class _Counting(ProviderCache):
    def __init__(self) -> None:
        super().__init__(
            cast(Any, None), cast(Any, None), cast(Any, None), ttl=0.5
        )  # margin for a loaded machine
        self.builds = 0

    async def _build(self, channel_id: uuid.UUID) -> WhatsAppProvider | ProviderError:
        self.builds += 1
        await asyncio.sleep(0.02)  # a query and a decryption: other sends arrive meanwhile
        return cast(WhatsAppProvider, object())


async def test_an_expired_number_is_rebuilt_once_for_all_waiting_sends() -> None:
    cache, number = _Counting(), uuid.uuid4()
    first = await asyncio.gather(*(cache.get(number) for _ in range(200)))
    assert cache.builds == 1 and len({id(p) for p in first}) == 1
    await asyncio.sleep(0.6)  # expired
    again = await asyncio.gather(*(cache.get(number) for _ in range(200)))
    assert cache.builds == 2 and len({id(p) for p in again}) == 1
    other = uuid.uuid4()
    await asyncio.gather(cache.get(other), cache.get(number))
    assert cache.builds == 3
