"""A dispatcher in its own process, for the test that kills a worker mid-batch.

Usage: python -m tests.message.sending.worker_process <database_url> <graph_url> <secret_key> <namespace>

`namespace` is the test run's `redis_namespace`: whatever this process would put on Redis
(the events channel) stays within the run, never on the default channel other runs share.
"""

from __future__ import annotations

import asyncio
import os
import sys

import aiohttp

from pytake.config import Settings
from pytake.db import create_engine, create_session_factory
from pytake.message.sending.dispatcher import SendingTuning, build_dispatcher


async def main(database_url: str, graph_url: str, secret_key: str, namespace: str) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env="test",
        database_url=database_url,
        meta_graph_url=graph_url,
        secret_key=secret_key,
        redis_namespace=namespace,
        allow_private_urls=True,
    )
    engine = create_engine(database_url)
    tuning = SendingTuning(batch_size=40, concurrency=20, poll_seconds=0.05)
    async with aiohttp.ClientSession() as http:
        dispatcher = build_dispatcher(create_session_factory(engine), settings, http, tuning)
        print("ready", flush=True)
        watchdog = asyncio.create_task(_exit_when_orphaned(os.getppid()))
        await dispatcher.run_forever()
        watchdog.cancel()


async def _exit_when_orphaned(parent: int) -> None:
    # If the test run is killed, don't linger as a busy orphan polling a deleted database.
    while os.getppid() == parent:  # noqa: ASYNC110 - no event exists for parent death
        await asyncio.sleep(0.5)
    os._exit(3)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
