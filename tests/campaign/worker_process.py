"""A campaign worker (campaign loop + message dispatcher) in its own process, for the test
that kills one mid-campaign with SIGKILL.

Usage: python -m tests.campaign.worker_process <database_url> <graph_url> <secret_key>
"""

from __future__ import annotations

import asyncio
import os
import sys

from pytake.config import Settings
from tests.campaign.workers import CAMPAIGN_TEST_SETTINGS, WORKER_TUNING, worker


async def main(database_url: str, graph_url: str, secret_key: str) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env="test",
        database_url=database_url,
        meta_graph_url=graph_url,
        secret_key=secret_key,
        allow_private_urls=True,
        **CAMPAIGN_TEST_SETTINGS,
    )
    async with worker(settings, WORKER_TUNING):
        print("ready", flush=True)
        await _exit_when_orphaned(os.getppid())


async def _exit_when_orphaned(parent: int) -> None:
    # If the test run is killed, don't linger as a busy orphan polling a deleted database.
    while os.getppid() == parent:  # noqa: ASYNC110 - no event exists for parent death
        await asyncio.sleep(0.5)
    os._exit(3)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
