"""An import's CSV is stored in the database: any process (another host's `pytake worker`) can
resume the job, records spanning chunk boundaries read exactly, and the chunks go with the job."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.app import create_app
from pytake.config import Settings
from pytake.contact import import_file, importer
from pytake.contact.tasks import ContactImportLoop
from pytake.db import create_engine, create_session_factory, unit_of_work
from pytake.models.contact import ContactImportChunk, ContactImportJob
from pytake.worker.runtime import start_runtime
from tests.conftest import Org, client_for, register_org
from tests.contact.test_import_resume import _csv, _job, _noop_start, _until_finished, _upload

# Where the importer wrote uploads before they went into the database.
OLD_IMPORT_DIR = Path(tempfile.gettempdir()) / "pytake-imports"


@asynccontextmanager
async def _running_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def _chunks(factory: async_sessionmaker[AsyncSession], job_id: str) -> int:
    async with factory() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(ContactImportChunk)
            .where(ContactImportChunk.job_id == uuid.UUID(job_id))
        )
    return int(count or 0)


async def _contacts(client: httpx.AsyncClient, org: Org) -> dict[str, dict[str, Any]]:
    listed = await client.get("/v1/contacts", params={"limit": 100}, headers=org.headers)
    return {c["whatsapp_id"]: c for c in listed.json()["data"]}


async def test_an_import_interrupted_on_one_host_is_finished_by_a_worker_on_another(
    fresh_database_url: str,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`serve` receives the upload and dies after three batches; `pytake worker`'s runtime,
    with an engine of its own and no access to that server's disk, finishes the job."""
    settings = make_settings(database_url=fresh_database_url, run_background_loops=False)
    content, expected = _csv()
    monkeypatch.setattr(importer, "BATCH_ROWS", 10)
    monkeypatch.setattr(import_file, "CHUNK_BYTES", 64)
    monkeypatch.setattr(importer, "start_import", _noop_start)
    async with _running_app(settings) as serve, client_for(serve) as client:
        org = await register_org(client)
        job_id = await _upload(client, org, content)
        assert not (OLD_IMPORT_DIR / f"{job_id}.csv").exists()  # nothing on this host's disk
        assert await _chunks(serve.state.session_factory, job_id) == math.ceil(len(content) / 64)

        applied = 0
        apply_batch = importer._apply_batch

        async def die_in_fourth_batch(*args: Any) -> Any:
            nonlocal applied
            applied += 1
            if applied == 4:
                raise asyncio.CancelledError
            return await apply_batch(*args)

        monkeypatch.setattr(importer, "_apply_batch", die_in_fourth_batch)
        with pytest.raises(asyncio.CancelledError):
            await importer.run_import_job(serve.state.session_factory, uuid.UUID(job_id), "serve")
        assert (await _job(client, org, job_id))["rows_processed"] == 30
        monkeypatch.setattr(importer, "_apply_batch", apply_batch)
        monkeypatch.setattr(importer, "STALE_AFTER", timedelta(0))

        engine = create_engine(fresh_database_url)
        worker = await start_runtime(
            settings, engine, create_session_factory(engine), run_loops=True
        )
        try:
            assert worker.runner is not None
            assert any(isinstance(loop, ContactImportLoop) for loop in worker.runner.loops)
            job = await _until_finished(client, org, job_id)
        finally:
            await worker.stop()
            await engine.dispose()
        assert job["status"] == "completed", job
        assert job["rows_processed"] == 95
        assert {k: job[k] for k in expected} == expected
        assert len(await _contacts(client, org)) == expected["created"]
        assert await _chunks(serve.state.session_factory, job_id) == 0


# A BOM, a quoted field with a newline (and with CRLF), doubled quotes, multi-byte characters,
# a blank line and a last line without a newline.
TRICKY = (
    "\ufeffwhatsapp_id,name,notes\n"
    '+5511911120001,João,"first line\nsecond line"\n'
    '+5511911120002,Zé Ñandú,"a ""quoted"" word, and more"\r\n'
    "\n"
    '+5511911120003,"Ana\r\nMaria",plain ção\n'
    '+5511911120004,Último,"ends\nhere"'
).encode()
NEWLINE_IN_QUOTES = TRICKY.index(b"first line\n") + len(b"first line")


@pytest.mark.parametrize(
    ("chunk_size", "batch_rows"),
    [
        (NEWLINE_IN_QUOTES, 1),  # a chunk boundary just before the quoted newline
        (NEWLINE_IN_QUOTES + 1, 1),  # and just after it
        (NEWLINE_IN_QUOTES, 2),
        (1, 1),  # every byte a chunk: multi-byte characters are split too
        (5, 3),
    ],
)
async def test_records_across_chunk_boundaries_import_exactly(
    app: FastAPI,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    chunk_size: int,
    batch_rows: int,
) -> None:
    monkeypatch.setattr(import_file, "CHUNK_BYTES", chunk_size)
    monkeypatch.setattr(importer, "BATCH_ROWS", batch_rows)
    monkeypatch.setattr(importer, "start_import", _noop_start)
    org = await register_org(client)
    job_id = await _upload(client, org, TRICKY)
    await importer.run_import_job(app.state.session_factory, uuid.UUID(job_id))
    job = await _job(client, org, job_id)
    assert (job["status"], job["created"], job["failed"]) == ("completed", 4, 0), job
    assert job["rows_processed"] == 5  # the blank line counts
    assert job["columns"] == ["whatsapp_id", "name", "notes"]
    contacts = await _contacts(client, org)
    assert {n: (c["name"], c["attributes"]) for n, c in contacts.items()} == {
        "+5511911120001": ("João", {"notes": "first line\nsecond line"}),
        "+5511911120002": ("Zé Ñandú", {"notes": 'a "quoted" word, and more'}),
        "+5511911120003": ("Ana\r\nMaria", {"notes": "plain ção"}),
        "+5511911120004": ("Último", {"notes": "ends\nhere"}),
    }
    assert await _chunks(app.state.session_factory, job_id) == 0


def _loader(chunks: list[bytes], loaded: list[int]) -> import_file.LoadChunk:
    async def load(seq: int) -> bytes:
        loaded.append(seq)
        return chunks[seq] if seq < len(chunks) else b""

    return load


async def test_reading_stored_chunks_matches_reading_the_whole_file() -> None:
    """Every chunk size and batch size gives the records (and resume offsets) of one reader
    over the whole file, as the importer read its file from disk."""
    header_end = TRICKY.index(b"\n") + 1
    lines = io.BytesIO(TRICKY[header_end:]).readlines()
    expected = [r for r in csv.reader(line.decode() for line in lines)]
    expected = [r if any(c.strip() for c in r) else [] for r in expected]
    for chunk_size in range(1, len(TRICKY) + 2):
        chunks = [TRICKY[i : i + chunk_size] for i in range(0, len(TRICKY), chunk_size)]
        loaded: list[int] = []
        load = _loader(chunks, loaded)
        for batch in (1, 2, 3, 10):
            rows: list[list[str]] = []
            offset = header_end
            while True:
                read = await import_file._read(load, chunk_size, len(TRICKY), offset, batch)
                if not read.rows:
                    break
                assert len(read.rows) == min(batch, len(expected) - len(rows))
                rows += read.rows
                offset = read.next_offset
            assert (rows, offset) == (expected, len(TRICKY)), (chunk_size, batch)
        assert max(loaded) <= len(TRICKY) // chunk_size  # never past the end of the file


async def test_a_failed_import_deletes_its_chunks(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_file, "CHUNK_BYTES", 100)
    monkeypatch.setattr(importer, "start_import", _noop_start)
    org = await register_org(client)
    job_id = await _upload(client, org, _csv()[0])
    assert await _chunks(app.state.session_factory, job_id) > 1

    async def broken(*_: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(importer, "_apply_batch", broken)
    await importer.run_import_job(app.state.session_factory, uuid.UUID(job_id))
    job = await _job(client, org, job_id)
    assert (job["status"], job["error"]) == ("failed", "RuntimeError: disk on fire")
    assert await _chunks(app.state.session_factory, job_id) == 0


async def test_a_job_uploaded_before_the_upgrade_is_read_from_this_hosts_disk(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A job from before migration 0011 has its file at `file_path` and no chunks."""
    monkeypatch.setattr(import_file, "CHUNK_BYTES", 50)  # the disk is read in pieces too
    monkeypatch.setattr(importer, "BATCH_ROWS", 10)
    monkeypatch.setattr(importer, "start_import", _noop_start)
    org = await register_org(client)
    content, expected = _csv()
    job_id = uuid.UUID(await _upload(client, org, content))
    path = tmp_path / f"{job_id}.csv"
    path.write_bytes(content)
    async with unit_of_work(app.state.session_factory) as session:
        await session.execute(delete(ContactImportChunk).where(ContactImportChunk.job_id == job_id))
        await session.execute(
            update(ContactImportJob)
            .where(ContactImportJob.id == job_id)
            .values(chunk_size=None, file_path=str(path))
        )
    await ContactImportLoop(app.state.session_factory).run_once()
    job = await _until_finished(client, org, str(job_id))
    assert job["status"] == "completed", job
    assert {k: job[k] for k in expected} == expected
    assert not path.exists()


async def test_a_header_line_longer_than_the_limit_is_422(
    client: httpx.AsyncClient, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_file, "HEADER_MAX_BYTES", 16)
    resp = await client.post(
        "/v1/contacts/import",
        files={"file": ("c.csv", b"whatsapp_id,name,email,city\n+5511911110001,A,,\n", "t/csv")},
        headers=org.headers,
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "file"
