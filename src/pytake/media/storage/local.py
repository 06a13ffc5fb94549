"""The local filesystem adapter (the embedded default): `<dir>/<org>/<sha256>`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

from pytake.media.storage import CHUNK


class LocalStorage:
    """Blobs as files under one directory; a put is an atomic rename of the staged file."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = os.path.abspath(root)

    def _path(self, key: str) -> Path:
        # Lexically, not `resolve()`: that is a stat per path component, twice, on every
        # fetch, put and read. Keys are PyTake's own (`<org>/<sha256>`); this only refuses one
        # that would climb out of the root.
        path = os.path.normpath(os.path.join(self._root, key))
        if os.path.dirname(path) == path or not path.startswith(self._root + os.sep):
            raise ValueError(f"bad storage key {key!r}")
        return Path(path)

    def path_of(self, key: str) -> Path:
        """The file of a key (for uploads to a provider, which stream it from disk)."""
        return self._path(key)

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)  # same content, same key: replacing a twin is harmless

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        # Chunked reads of a local file come from the page cache in microseconds; a thread
        # hop per chunk would cost more than the read.
        with self._path(key).open("rb") as file:
            file.seek(start)
            left = None if end is None else end - start + 1
            while left is None or left > 0:
                chunk = file.read(CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def close(self) -> None:
        return None
