"""Background work of the contacts domain: resuming CSV imports that lost their runner."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.config import Settings
from pytake.contact import importer
from pytake.db import unit_of_work
from pytake.worker.runner import Runner

# Uploads start their own job at once; this loop only picks up what a restart or a crash left
# behind (pending, or running without a heartbeat for importer.STALE_AFTER), so it polls slowly.
POLL_SECONDS = 15.0


class ContactImportLoop:
    """Claims one pending or stale import job at a time and runs it to the end."""

    name = "contact-imports"

    def __init__(
        self, factory: async_sessionmaker[AsyncSession], worker_id: str | None = None
    ) -> None:
        self.factory = factory
        self.worker_id = worker_id or f"imports-{uuid.uuid4().hex[:8]}"

    async def run_once(self) -> float | None:
        """Run one job if there is one; 0 (look again at once) after a job, else the poll."""
        async with unit_of_work(self.factory) as session:
            job_id = await importer.claim_import_job(session, self.worker_id)
        if job_id is None:
            return POLL_SECONDS
        await importer.process_claimed_job(self.factory, job_id, self.worker_id)
        return 0


def start_import_loop(
    factory: async_sessionmaker[AsyncSession], settings: Settings
) -> Runner | None:
    """The import loop running in this process when it runs the background loops, else None."""
    if not settings.background_loops_in_process:
        return None
    runner = Runner([ContactImportLoop(factory)], POLL_SECONDS)
    runner.start()
    return runner
