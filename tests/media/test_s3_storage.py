"""The S3 adapter against a real S3-compatible server (moto in server mode) on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from pytake.media.storage import Staged, content_key
from pytake.media.storage.s3 import PART, S3Storage


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
async def storage(s3_endpoint: str) -> AsyncIterator[S3Storage]:
    bucket = f"media-{uuid.uuid4().hex[:12]}"
    store = S3Storage(
        bucket,
        prefix="pytake",
        endpoint_url=s3_endpoint,
        region="us-east-1",
        access_key_id="test",
        secret_access_key="test",
    )
    s3 = await store._s3()
    await s3.create_bucket(Bucket=bucket)
    yield store
    await store.close()


def staged_file(directory: Path, data: bytes) -> tuple[Path, str]:
    staged = Staged(directory)
    staged.write(data)
    return staged.path, staged.finish()


async def read_all(storage: S3Storage, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in storage.read(key, start, end)])


async def test_put_read_range_delete(storage: S3Storage, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    path, sha = staged_file(tmp_path, data)
    key = content_key(uuid.uuid4(), sha)
    assert not await storage.exists(key)
    await storage.put_file(key, path, "image/jpeg")
    assert await storage.exists(key)
    assert await read_all(storage, key) == data
    assert await read_all(storage, key, 1000, 1999) == data[1000:2000]
    assert await read_all(storage, key, 299_990) == data[299_990:]
    s3 = await storage._s3()
    head = await s3.head_object(Bucket=storage.bucket, Key=f"pytake/{key}")
    assert head["ContentType"] == "image/jpeg"
    await storage.delete(key)
    assert not await storage.exists(key)


async def test_a_large_file_goes_up_in_parts(storage: S3Storage, tmp_path: Path) -> None:
    data = os.urandom(PART * 2 + 12345)
    path, sha = staged_file(tmp_path, data)
    key = content_key(uuid.uuid4(), sha)
    await storage.put_file(key, path, "video/mp4")
    assert await read_all(storage, key) == data
