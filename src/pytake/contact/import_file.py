"""The CSV of an import job, stored in the database in fixed-size chunks so that any process
(`serve` or `pytake worker`, on any host) can run or resume the job.

The upload is written chunk by chunk as it streams in (never whole in memory), and read back a
batch of records at a time from a byte offset that always falls on a record boundary. The
parsing is the csv module's over the file's lines, whichever chunks those lines span.
"""

from __future__ import annotations

import asyncio
import csv
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.errors import ValidationFailed
from pytake.models.contact import ContactImportChunk, ContactImportJob, contact_import_chunks_table

# Big enough that a batch of rows usually lies within one or two chunks, small enough that a
# chunk is a cheap row to write and to read back.
CHUNK_BYTES = 1 << 20
# The header line is read before anything is stored (to reject a file without whatsapp_id
# early), so it is bounded.
HEADER_MAX_BYTES = 1 << 20


@dataclass
class Header:
    columns: list[str]
    raw: bytes  # the header line as uploaded, its end is where the records start


def read_header(source: BinaryIO) -> Header:
    """The upload's header line, checked; the source is left at the first record."""
    raw = source.readline(HEADER_MAX_BYTES)
    if len(raw) == HEADER_MAX_BYTES and not raw.endswith(b"\n"):
        raise ValidationFailed.on(
            "file", f"The CSV header line is longer than {HEADER_MAX_BYTES} bytes"
        )
    text = raw.decode("utf-8-sig", errors="replace")
    if "\x00" in text:
        raise ValidationFailed.on("file", "The CSV header line contains a NUL character")
    if "\r" in text.rstrip("\r\n"):
        # Lines ending in CR alone (old Mac exports): the header would swallow the whole file.
        raise ValidationFailed.on("file", "CSV lines must end in LF or CRLF, not CR alone")
    try:
        columns = [c.strip().lower() for c in next(csv.reader([text]), [])]
    except csv.Error as exc:
        raise ValidationFailed.on("file", f"The CSV header line is malformed: {exc}") from exc
    if "whatsapp_id" not in columns:
        raise ValidationFailed.on("file", "The CSV header must include a whatsapp_id column")
    if len(set(columns)) != len(columns) or "" in columns:
        raise ValidationFailed.on("file", "CSV column names must be non-empty and unique")
    return Header(columns, raw)


def _pieces(head: bytes, source: BinaryIO, size: int) -> Iterator[bytes]:
    """`head` then the rest of `source`, in pieces of exactly `size` bytes (the last shorter)."""
    buffer = bytearray(head)
    eof = False
    while True:
        while not eof and len(buffer) < size:
            data = source.read(size - len(buffer))
            eof = not data
            buffer += data
        if not buffer:
            return
        yield bytes(buffer[:size])
        del buffer[:size]


async def store_file(
    session: AsyncSession, job_id: uuid.UUID, header: Header, source: BinaryIO
) -> int:
    """Write the upload (header included) as the job's chunks, one at a time; returns its size."""
    pieces = _pieces(header.raw, source, CHUNK_BYTES)
    size = seq = 0
    # The source is a spooled temporary file (on disk when large): read it off the event loop.
    while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
        await session.execute(
            insert(contact_import_chunks_table), {"job_id": job_id, "seq": seq, "data": piece}
        )
        size += len(piece)
        seq += 1
    return size


async def delete_file(session: AsyncSession, job: ContactImportJob) -> None:
    """Drop the job's stored CSV (the job has ended)."""
    chunks = contact_import_chunks_table
    await session.execute(delete(chunks).where(chunks.c.job_id == job.id))
    if job.file_path:  # uploaded before migration 0011
        await asyncio.to_thread(Path(job.file_path).unlink, missing_ok=True)


# --- reading ----------------------------------------------------------------------------------


class MalformedLine(list[str]):
    """A line the csv module could not read (e.g. a CR inside an unquoted field): the job
    reports it as that row's failure and goes on. Holds the line's text."""

    def __init__(self, line: str, reason: str) -> None:
        super().__init__([line])
        self.reason = reason


@dataclass
class Records:
    rows: list[list[str]]
    next_offset: int


def _records(data: bytes, limit: int, final: bool) -> tuple[list[list[str]], int, bool]:
    """Up to `limit` CSV records from the start of `data`, the bytes they take, and whether
    `data` ran out before `limit` (more of the file is needed, unless `final`)."""
    consumed = 0
    ran_out = False

    def lines() -> Iterator[str]:
        nonlocal consumed, ran_out
        while consumed < len(data):
            end = data.find(b"\n", consumed) + 1
            if end == 0:  # a line the next chunk completes, unless this is the file's end
                if not final:
                    break
                end = len(data)
            line, consumed = data[consumed:end], end
            yield line.decode("utf-8", errors="replace")
        ran_out = not final

    rows: list[list[str]] = []
    used = 0
    # csv pulls a line only when it needs one, so `consumed` ends on a record boundary. A record
    # it returns after the lines ran out is cut short (a quoted field goes on in the next chunk).
    reader = csv.reader(lines())
    while True:
        start = consumed
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line = data[start:consumed].decode("utf-8", errors="replace")
            record = MalformedLine(line, f"Malformed CSV line: {exc}")
        if ran_out:
            break
        # A blank line is counted (row numbers stay the file's), then skipped.
        rows.append(record if any(cell.strip() for cell in record) else [])
        used = consumed
        if len(rows) >= limit:
            break
    return rows, used, ran_out and len(rows) < limit


LoadChunk = Callable[[int], Awaitable[bytes]]


async def _read(
    load: LoadChunk, chunk_size: int, file_size: int, offset: int, limit: int
) -> Records:
    """Up to `limit` records from byte `offset`, loading only the chunks they lie in."""
    seq, skip = divmod(offset, chunk_size)
    data, rows = b"", list[list[str]]()
    while True:
        data += (await load(seq))[skip:]
        seq, skip = seq + 1, 0
        got, used, need_more = _records(data, limit - len(rows), seq * chunk_size >= file_size)
        rows += got
        offset += used
        if not need_more:
            return Records(rows, offset)
        data = data[used:]


class StoredFile:
    """Reads a job's CSV batch by batch, keeping the last chunk it loaded: consecutive batches
    mostly start in the chunk where the previous one ended."""

    def __init__(self) -> None:
        self._last: tuple[uuid.UUID, int, bytes] | None = None

    async def read(self, session: AsyncSession, job: ContactImportJob, limit: int) -> Records:
        """Up to `limit` records from the job's `resume_offset`, and the offset after them."""
        load: LoadChunk
        if job.chunk_size is None:  # uploaded before migration 0011: a file on this host's disk
            load, chunk_size = partial(_load_from_disk, job.file_path or ""), CHUNK_BYTES
        else:
            load, chunk_size = partial(self._load, session, job.id), job.chunk_size
        return await _read(load, chunk_size, job.file_size, job.resume_offset, limit)

    async def _load(self, session: AsyncSession, job_id: uuid.UUID, seq: int) -> bytes:
        if self._last is not None and self._last[:2] == (job_id, seq):
            return self._last[2]
        data = await session.scalar(
            select(ContactImportChunk.data).where(
                ContactImportChunk.job_id == job_id, ContactImportChunk.seq == seq
            )
        )
        self._last = (job_id, seq, data or b"")  # none: past the end of the file
        return self._last[2]


async def _load_from_disk(path: str, seq: int) -> bytes:
    def piece() -> bytes:
        with open(path, "rb") as f:
            f.seek(seq * CHUNK_BYTES)
            return f.read(CHUNK_BYTES)

    return await asyncio.to_thread(piece)
