"""The media storage port: content-addressed blobs, written from a staged file, read in ranges.

Keys are `<organization id>/<sha256 hex>`, so a file an organisation receives or uploads twice
is stored once. Bytes never pass through memory whole: a download or an upload is written to a
staging file while it is hashed (`Staged`), then handed to the storage (a rename on the local
disk, a streamed or multipart upload to S3), and reads yield chunks of a byte range.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Protocol

from pytake.config import Settings

CHUNK = 64 * 1024


def content_key(organization_id: uuid.UUID, sha256_hex: str) -> str:
    """The storage key of a file: one per organisation and content."""
    return f"{organization_id}/{sha256_hex}"


class MediaStorage(Protocol):
    """Where media bytes live."""

    name: str

    async def exists(self, key: str) -> bool:
        """Whether a blob is stored under `key`."""
        ...

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store the staged file at `path` under `key` (the file may be moved away)."""
        ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes `start`..`end` (inclusive; None: to the end), in chunks."""
        ...

    async def delete(self, key: str) -> None:
        """Remove a blob (no error when it is already gone)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class TooLarge(ValueError):
    """A staged file grew past its limit."""


class Staged:
    """A temporary file being written, hashed and counted as it grows."""

    def __init__(self, directory: Path, limit: int | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="staged-", dir=directory)
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0
        self.limit = limit

    def write(self, chunk: bytes) -> None:
        """Append a chunk (a local write of at most a chunk: page-cache fast, kept inline)."""
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            raise TooLarge(f"larger than {self.limit} bytes")
        self._hash.update(chunk)
        self._file.write(chunk)

    def finish(self) -> str:
        """Close the file; returns the content's sha256 (hex)."""
        self._file.close()
        return self._hash.hexdigest()

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Staged:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()  # the storage moved or copied it by now, or it is not wanted


def local_dir(settings: Settings) -> Path:
    return Path(settings.media_local_dir or Path(settings.data_dir) / "media")


def staging_dir(settings: Settings) -> Path:
    """Staging files sit beside the local store, so a rename finishes a local put."""
    return local_dir(settings) / ".staging"


def build_storage(settings: Settings) -> MediaStorage:
    """The storage the settings choose (`media_storage`: local or s3)."""
    if settings.media_storage == "s3":
        from pytake.media.storage.s3 import S3Storage

        return S3Storage.from_settings(settings)
    from pytake.media.storage.local import LocalStorage

    return LocalStorage(local_dir(settings))
