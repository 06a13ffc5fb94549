"""Background work of the contacts domain: resuming CSV imports that lost their runner.

The loop runs wherever the background loops run (`pytake worker`, or `serve` in-process;
worker/runtime.py); the job's file is in the database, so it resumes jobs any process received.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.contact import importer
from pytake.db import unit_of_work

# Uploads start their own job at once; this loop only picks up what a restart or a crash left
# behind (pending, or running without a heartbeat for importer.STALE_AFTER), so it asks to poll
# slowly (the runner of the background loops may look sooner: worker_poll_seconds caps a sleep).
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
