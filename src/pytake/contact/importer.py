"""CSV import of contacts: the upload is streamed into the database (`import_file`), a job row
tracks it, batches apply it.

Each batch of rows is applied with multi-row statements and committed together with the job's
progress (`resume_offset`, counts), so a job interrupted by a crash resumes at the next batch
when it is claimed again (`claim_import_job`), by this process or any other: no row is applied
twice, none is skipped.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from sqlalchemy import ColumnElement, bindparam, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.auth.principal import Principal
from pytake.contact import import_file
from pytake.contact import tags as tag_service
from pytake.contact.rows import new_contact_row
from pytake.contact.search import contact_search_text
from pytake.db import unit_of_work
from pytake.kit.phone import InvalidPhoneNumber, match_key, normalise_e164
from pytake.kit.sql import is_postgresql
from pytake.models.base import utcnow
from pytake.models.contact import (
    Contact,
    ContactImportError,
    ContactImportJob,
    contact_import_errors_table,
    contact_tags_table,
    contacts_table,
)
from pytake.tenancy import get_scoped

log = logging.getLogger(__name__)

BATCH_ROWS = 2000
# A bulk import into a new organisation outruns autovacuum's statistics (or autovacuum is off),
# and with stale ones PostgreSQL looks up match keys through the organisation's list index,
# scanning all of its contacts per batch; ANALYZE as the job crosses these row counts.
ANALYZE_AT = (2_000, 20_000, 200_000)
STALE_AFTER = timedelta(minutes=2)
KNOWN_COLUMNS = ("whatsapp_id", "name", "email", "tags", "opt_in")
# Columns our own export writes that are not for the importer to set.
IGNORED_COLUMNS = ("id", "created_at", "updated_at", "is_blocked", "last_message_at")
# Export writes an attribute whose name is a standard column (or starts with the prefix) as
# "attr.<name>"; import reads such a column back into that attribute.
ATTRIBUTE_PREFIX = "attr."
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TAG_SPLIT = re.compile(r"[,;|]")
_TRUE = {"true", "1", "yes", "y", "sim", "t"}
_FALSE = {"false", "0", "no", "n", "nao", "não", "f"}


# --- the upload --------------------------------------------------------------------------------


async def save_upload(
    session: AsyncSession, principal: Principal, source: BinaryIO, filename: str
) -> ContactImportJob:
    """Store an uploaded CSV in the database (in chunks) and record a pending import job for it."""
    header = await asyncio.to_thread(import_file.read_header, source)
    job = ContactImportJob(
        id=uuid.uuid4(),
        organization_id=principal.organization_id,
        status="pending",
        # A name is shown, not used: NULs (which PostgreSQL cannot store) are dropped.
        filename=filename.replace("\x00", "")[:300] or "contacts.csv",
        file_path=None,
        chunk_size=import_file.CHUNK_BYTES,
        file_size=0,
        columns=header.columns,
        resume_offset=len(header.raw),
        created_by_id=principal.user_id,
    )
    session.add(job)
    await session.flush()  # the chunks reference the job
    job.file_size = await import_file.store_file(session, job.id, header, source)
    return job


# --- applying a batch -------------------------------------------------------------------------


@dataclass
class _Row:
    number: int
    whatsapp_id: str
    key: str
    fields: dict[str, Any]
    attributes: dict[str, str]
    tags: list[str]


@dataclass
class _Outcome:
    created: int = 0
    updated: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)


class _RowError(ValueError):
    def __init__(self, column: str | None, reason: str) -> None:
        super().__init__(reason)
        self.column, self.reason = column, reason


def attribute_key(column: str) -> str | None:
    """The attribute a CSV column holds, or None for a standard (or ignored) column."""
    if column.startswith(ATTRIBUTE_PREFIX):
        return column[len(ATTRIBUTE_PREFIX) :] or None
    if column in KNOWN_COLUMNS or column in IGNORED_COLUMNS:
        return None
    return column


def _unquoted(value: str) -> str:
    """A cell the export neutralised as a formula (`'=...`) reads back as it was stored."""
    if value[:1] == "'" and value[1:2] in ("=", "+", "-", "@", "\t", "\r"):
        return value[1:]
    return value


def _parse_row(columns: list[str], record: list[str], number: int) -> _Row:
    if isinstance(record, import_file.MalformedLine):
        raise _RowError(None, record.reason)
    if len(record) != len(columns):
        raise _RowError(None, f"Expected {len(columns)} columns, found {len(record)}")
    values = {c: _unquoted(v.strip()) for c, v in zip(columns, record, strict=True)}
    for column, value in values.items():
        if "\x00" in value:  # PostgreSQL cannot store it in text
            raise _RowError(column, "Contains a NUL character")
    try:
        whatsapp_id = normalise_e164(values["whatsapp_id"])
    except InvalidPhoneNumber as exc:
        raise _RowError("whatsapp_id", "Phone number must be in E.164 format") from exc
    fields: dict[str, Any] = {}
    if name := values.get("name"):
        if len(name) > 200:
            raise _RowError("name", "Name is longer than 200 characters")
        fields["name"] = name
    if email := values.get("email"):
        if not _EMAIL.match(email) or len(email) > 320:
            raise _RowError("email", "Not a valid e-mail address")
        fields["email"] = email.lower()
    if opt_in := values.get("opt_in", "").lower():
        if opt_in not in _TRUE | _FALSE:
            raise _RowError("opt_in", "opt_in must be true or false")
        fields["opt_in"] = opt_in in _TRUE
    tags = [t.strip() for t in _TAG_SPLIT.split(values.get("tags", "")) if t.strip()]
    if any(len(t) > 100 for t in tags):
        raise _RowError("tags", "Tag names are at most 100 characters")
    attributes = {key: v for c, v in values.items() if v and (key := attribute_key(c))}
    return _Row(number, whatsapp_id, match_key(whatsapp_id), fields, attributes, tags)


def _parse_batch(
    columns: list[str], records: list[list[str]], first_number: int, outcome: _Outcome
) -> dict[str, _Row]:
    """Valid rows by match key; a number repeated in the batch folds into its first row."""
    rows: dict[str, _Row] = {}
    for i, record in enumerate(records):
        number = first_number + i
        if not record:
            continue
        try:
            row = _parse_row(columns, record, number)
        except _RowError as err:
            raw = record[columns.index("whatsapp_id")] if len(record) == len(columns) else None
            outcome.failures.append(
                {
                    "row_number": number,
                    "whatsapp_id": raw,
                    "field": err.column,
                    "reason": err.reason,
                }
            )
            continue
        if (first := rows.get(row.key)) is not None:
            first.fields.update(row.fields)
            first.attributes.update(row.attributes)
            first.tags.extend(t for t in row.tags if t not in first.tags)
            outcome.updated += 1
        else:
            rows[row.key] = row
    return rows


async def _existing(session: AsyncSession, org_id: uuid.UUID, keys: list[str]) -> dict[str, Any]:
    """The organisation's live contacts among these match keys, by key."""
    if not keys:
        return {}
    found = await session.execute(
        select(
            Contact.id,
            Contact.match_key,
            Contact.name,
            Contact.email,
            Contact.attributes,
            Contact.whatsapp_id,
            Contact.created_at,
        ).where(
            Contact.organization_id == org_id,
            Contact.deleted_at.is_(None),
            Contact.match_key.in_(keys),
        )
    )
    return {r.match_key: r for r in found.all()}


async def _apply_batch(
    session: AsyncSession, job: ContactImportJob, records: list[list[str]]
) -> _Outcome:
    outcome = _Outcome()
    rows = _parse_batch(job.columns, records, job.rows_processed + 1, outcome)
    org_id = job.organization_id
    existing = await _existing(session, org_id, list(rows))
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    links: list[_Link] = []
    for key, row in rows.items():
        if (old := existing.get(key)) is None:
            inserts.append(_new_contact(org_id, row, now))
            contact_id, created_at = inserts[-1]["id"], now
        else:
            contact_id, created_at = old.id, old.created_at
            updates.append(_changed_contact(old, row, now))
        links.extend(_Link(contact_id, created_at, t) for t in row.tags)
    if inserts:
        await session.execute(insert(contacts_table), inserts)
    if updates:
        await session.execute(_UPDATE, updates)
    await _link(session, org_id, links)
    if outcome.failures:
        await session.execute(
            insert(contact_import_errors_table),
            [{"id": uuid.uuid4(), "job_id": job.id, **f} for f in outcome.failures],
        )
    outcome.created += len(inserts)
    outcome.updated += len(updates)
    return outcome


def _new_contact(org_id: uuid.UUID, row: _Row, now: Any) -> dict[str, Any]:
    return new_contact_row(
        org_id,
        row.whatsapp_id,
        row.key,
        now,
        name=row.fields.get("name"),
        email=row.fields.get("email"),
        attributes=row.attributes,
        opt_in=row.fields.get("opt_in", True),
        opt_in_changed_at=now,
        opt_in_source="import",
    )


_T = contacts_table.c
_UPDATE = (
    update(contacts_table)
    .where(_T.id == bindparam("b_id"))
    .values(
        name=bindparam("b_name"),
        email=bindparam("b_email"),
        attributes=bindparam("b_attributes", type_=_T.attributes.type),
        search_text=bindparam("b_search_text"),
        updated_at=bindparam("b_updated_at", type_=_T.updated_at.type),
    )
)


def _changed_contact(old: Any, row: _Row, now: Any) -> dict[str, Any]:
    # Consent is not changed by re-importing a known contact: an opt-out must stick.
    name = row.fields.get("name", old.name)
    email = row.fields.get("email", old.email)
    return {
        "b_id": old.id,
        "b_name": name,
        "b_email": email,
        "b_attributes": {**(old.attributes or {}), **row.attributes},
        "b_search_text": contact_search_text(name, email, old.whatsapp_id),
        "b_updated_at": now,
    }


@dataclass(frozen=True)
class _Link:
    contact_id: uuid.UUID
    contact_created_at: datetime
    tag: str


async def _link(session: AsyncSession, org_id: uuid.UUID, links: list[_Link]) -> None:
    if not links:
        return
    ids = await tag_service.ensure_tags(session, org_id, {link.tag for link in links})
    rows = [
        {
            "contact_id": k.contact_id,
            "tag_id": ids[k.tag],
            "contact_created_at": k.contact_created_at,
        }
        for k in set(links)
    ]
    for start in range(0, len(rows), 5000):
        stmt = tag_service.dialect_insert(session, contact_tags_table).on_conflict_do_nothing()
        await session.execute(stmt, rows[start : start + 5000])


# --- running a job ----------------------------------------------------------------------------


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        ContactImportJob.status == "pending",
        (ContactImportJob.status == "running")
        & (ContactImportJob.heartbeat_at < now - STALE_AFTER),
    )


async def claim_import_job(
    session: AsyncSession, worker_id: str, job_id: uuid.UUID | None = None
) -> uuid.UUID | None:
    """Take a pending job (or one whose runner stopped heart-beating); returns its id."""
    now = utcnow()
    pick = select(ContactImportJob.id).where(_claimable(now)).order_by(ContactImportJob.created_at)
    if job_id is not None:
        pick = pick.where(ContactImportJob.id == job_id)
    if is_postgresql(session):
        pick = pick.with_for_update(skip_locked=True)
    chosen = await session.scalar(pick.limit(1))
    if chosen is None:
        return None
    # Compare-and-set: on SQLite the SELECT takes no lock, so another runner may have won.
    claimed = await session.execute(
        update(ContactImportJob)
        .where(ContactImportJob.id == chosen, _claimable(now))
        .values(
            status="running",
            locked_by=worker_id,
            heartbeat_at=now,
            started_at=func.coalesce(ContactImportJob.started_at, now),
        )
    )
    return chosen if claimed.rowcount == 1 else None  # type: ignore[attr-defined]


async def run_import_job(
    factory: async_sessionmaker[AsyncSession], job_id: uuid.UUID, worker_id: str | None = None
) -> None:
    """Claim this job and process it to the end (the task started by the upload)."""
    worker_id = worker_id or f"inproc-{uuid.uuid4().hex[:8]}"
    async with unit_of_work(factory) as session:
        if await claim_import_job(session, worker_id, job_id) is None:
            return
    await process_claimed_job(factory, job_id, worker_id)


async def process_claimed_job(
    factory: async_sessionmaker[AsyncSession], job_id: uuid.UUID, worker_id: str
) -> None:
    """Apply a job claimed by `worker_id` batch by batch from where it stands, to the end."""
    stored = import_file.StoredFile()
    try:
        while await _next_batch(factory, job_id, worker_id, stored):
            pass
    except Exception as exc:
        log.exception("contact import %s failed", job_id)
        await _finish(factory, job_id, "failed", f"{type(exc).__name__}: {exc}"[:1000])


async def _next_batch(
    factory: async_sessionmaker[AsyncSession],
    job_id: uuid.UUID,
    worker_id: str,
    stored: import_file.StoredFile,
) -> bool:
    """Apply one batch and commit it with the job's progress; False when the file is done."""
    for attempt in range(3):
        try:
            async with unit_of_work(factory) as session:
                # Locked: a runner taking over a stale job waits for this batch, then sees it
                # fresh (PostgreSQL; SQLite has one writer anyway).
                job = await session.get(ContactImportJob, job_id, with_for_update=True)
                if job is None or job.locked_by != worker_id or job.status != "running":
                    return False  # deleted, or another runner took it over
                batch = await stored.read(session, job, BATCH_ROWS)
                if not batch.rows:
                    await _mark_finished(session, job, "completed", None)
                    return False
                outcome = await _apply_batch(session, job, batch.rows)
                await _analyze_if_due(session, job.rows_processed, len(batch.rows))
                job.resume_offset = batch.next_offset
                job.rows_processed += len(batch.rows)
                job.created_count += outcome.created
                job.updated_count += outcome.updated
                job.failed_count += len(outcome.failures)
                job.heartbeat_at = utcnow()
                return True
        except IntegrityError:
            # A contact with one of these numbers appeared concurrently; re-read and retry.
            if attempt == 2:
                raise
    return False


async def _analyze_if_due(session: AsyncSession, before: int, rows: int) -> None:
    if not is_postgresql(session):
        return
    if any(before < mark <= before + rows for mark in ANALYZE_AT):
        await session.execute(text("ANALYZE contacts"))


async def _mark_finished(
    session: AsyncSession, job: ContactImportJob, status: str, error: str | None
) -> None:
    job.status, job.error, job.finished_at, job.locked_by = status, error, utcnow(), None
    await import_file.delete_file(session, job)


async def _finish(
    factory: async_sessionmaker[AsyncSession], job_id: uuid.UUID, status: str, error: str | None
) -> None:
    async with unit_of_work(factory) as session:
        job = await session.get(ContactImportJob, job_id)
        if job is not None:
            await _mark_finished(session, job, status, error)


_RUNNING: set[asyncio.Task[None]] = set()


async def start_import(factory: async_sessionmaker[AsyncSession], job_id: uuid.UUID) -> None:
    """Run a job as an asyncio task in this process (kept referenced until it ends)."""
    task = asyncio.create_task(run_import_job(factory, job_id))
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)


async def get_job(
    session: AsyncSession, principal: Principal, job_id: uuid.UUID
) -> tuple[ContactImportJob, list[ContactImportError]]:
    """An import job of the organisation with its first 100 failed rows."""
    job = await get_scoped(session, ContactImportJob, job_id, principal, what="Import job")
    errors = await session.scalars(
        select(ContactImportError)
        .where(ContactImportError.job_id == job.id)
        .order_by(ContactImportError.row_number)
        .limit(100)
    )
    return job, list(errors)
