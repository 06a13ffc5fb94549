"""The local store's keys stay under its root."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytake.media.storage.local import LocalStorage


async def test_keys_map_under_the_root_and_one_climbing_out_is_refused(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "media")
    assert store.path_of("org/abc") == tmp_path / "media" / "org" / "abc"
    for bad in ("../outside", "org/../../outside", "/etc/passwd", ".", ""):
        with pytest.raises(ValueError, match="bad storage key"):
            store.path_of(bad)
