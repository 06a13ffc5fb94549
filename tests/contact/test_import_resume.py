"""CSV imports interrupted mid-file are resumed by the import loop and finish with exact counts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from pytake.contact import importer
from pytake.contact.tasks import ContactImportLoop
from tests.conftest import Org, register_org


def _csv() -> tuple[bytes, dict[str, int]]:
    """95 rows in batches of 10: every 10th row invalid, every 15th repeats a number seen before."""
    lines, seen, counts = (
        ["whatsapp_id,name,tags"],
        set(),
        {"created": 0, "updated": 0, "failed": 0},
    )
    for i in range(95):
        if i % 10 == 9:
            number = "not-a-number"
            counts["failed"] += 1
        else:
            number = f"+55119{7500_0000 + (i - 14 if i % 15 == 14 else i)}"
            counts["updated" if number in seen else "created"] += 1
            seen.add(number)
        lines.append(f"{number},Row {i},resumed")
    return ("\n".join(lines) + "\n").encode(), counts


async def _upload(client: httpx.AsyncClient, org: Org, content: bytes) -> str:
    resp = await client.post(
        "/v1/contacts/import", files={"file": ("c.csv", content, "text/csv")}, headers=org.headers
    )
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


async def _job(client: httpx.AsyncClient, org: Org, job_id: str) -> dict[str, Any]:
    return dict((await client.get(f"/v1/contacts/import/{job_id}", headers=org.headers)).json())


async def _until_finished(client: httpx.AsyncClient, org: Org, job_id: str) -> dict[str, Any]:
    for _ in range(500):
        job = await _job(client, org, job_id)
        if job["status"] in ("completed", "failed"):
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"import did not finish: {job}")


async def _noop_start(*_: Any) -> None:
    """Stands in for the upload's own task: the job is left for a runner of the test's choice."""


async def test_import_stopped_after_three_batches_is_resumed_exactly(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await register_org(client)
    content, expected = _csv()
    monkeypatch.setattr(importer, "BATCH_ROWS", 10)
    monkeypatch.setattr(importer, "start_import", _noop_start)
    job_id = await _upload(client, org, content)

    applied = 0
    apply_batch = importer._apply_batch

    async def stop_in_fourth_batch(*args: Any) -> Any:
        nonlocal applied
        applied += 1
        if applied == 4:  # the process goes away in the middle of a batch
            raise asyncio.CancelledError
        return await apply_batch(*args)

    monkeypatch.setattr(importer, "_apply_batch", stop_in_fourth_batch)
    factory = app.state.session_factory
    with pytest.raises(asyncio.CancelledError):
        await importer.run_import_job(factory, uuid.UUID(job_id), "crashed-runner")
    stopped = await _job(client, org, job_id)
    assert stopped["status"] == "running"
    assert stopped["rows_processed"] == 30  # three batches committed, the fourth rolled back
    assert 0 < stopped["progress"] < 1

    monkeypatch.setattr(importer, "_apply_batch", apply_batch)
    monkeypatch.setattr(importer, "STALE_AFTER", timedelta(0))  # its heartbeat is now stale
    await ContactImportLoop(factory).run_once()
    job = await _until_finished(client, org, job_id)
    assert job["status"] == "completed", job
    assert job["rows_processed"] == 95
    assert {k: job[k] for k in expected} == expected
    assert job["progress"] == 1.0
    assert len(job["errors"]) == expected["failed"]
    assert len({e["row"] for e in job["errors"]}) == expected["failed"]
    listed = await client.get(
        "/v1/contacts", params={"tags": "resumed", "limit": 100}, headers=org.headers
    )
    assert listed.json()["meta"]["total"] == expected["created"]
    numbers = [c["whatsapp_id"] for c in listed.json()["data"]]
    assert len(numbers) == len(set(numbers)) == expected["created"]


async def test_import_loop_runs_a_pending_job_nobody_started(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await register_org(client)
    content, expected = _csv()
    monkeypatch.setattr(importer, "start_import", _noop_start)
    job_id = await _upload(client, org, content)
    assert (await _job(client, org, job_id))["status"] == "pending"
    await ContactImportLoop(app.state.session_factory).run_once()
    job = await _until_finished(client, org, job_id)
    assert {k: job[k] for k in expected} == expected


async def test_a_claimed_job_is_not_claimed_again_while_it_is_fresh(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await register_org(client)
    monkeypatch.setattr(importer, "start_import", _noop_start)
    job_id = uuid.UUID(await _upload(client, org, _csv()[0]))
    factory = app.state.session_factory
    async with factory() as session:
        assert await importer.claim_import_job(session, "first", job_id) == job_id
        await session.commit()
    async with factory() as session:
        assert await importer.claim_import_job(session, "second", job_id) is None
        await session.commit()
    await importer.process_claimed_job(factory, job_id, "first")
    assert (await _job(client, org, str(job_id)))["status"] == "completed"
