"""The S3-compatible adapter (AWS S3, MinIO, Cloudflare R2…) through aiobotocore.

One client per process, opened on first use. Files up to `PART` go up in one streamed
PUT; larger ones as a multipart upload of `PART`-sized parts, so memory holds one part at most.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from pytake.config import Settings
from pytake.media.storage import CHUNK

PART = 8 * 1024 * 1024  # S3's smallest part is 5 MiB


class S3Storage:
    """Blobs as objects in one bucket, under an optional prefix."""

    name = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._options: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region or "us-east-1",
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "config": AioConfig(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        }
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._opening = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        if not settings.media_s3_bucket:
            raise ValueError("PYTAKE_MEDIA_S3_BUCKET must be set when PYTAKE_MEDIA_STORAGE=s3")
        return cls(
            settings.media_s3_bucket,
            prefix=settings.media_s3_prefix,
            endpoint_url=settings.media_s3_endpoint_url,
            region=settings.media_s3_region,
            access_key_id=settings.media_s3_access_key_id,
            secret_access_key=settings.media_s3_secret_access_key,
        )

    async def _s3(self) -> Any:
        if self._client is None:
            async with self._opening:
                if self._client is None:
                    stack = AsyncExitStack()
                    client = await stack.enter_async_context(
                        get_session().create_client("s3", **self._options)
                    )
                    self._stack, self._client = stack, client
        return self._client

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def exists(self, key: str) -> bool:
        s3 = await self._s3()
        try:
            await s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        s3 = await self._s3()
        size = os.stat(path).st_size  # a local stat of the staged file
        if size <= PART:
            with path.open("rb") as body:
                await s3.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=body, ContentType=content_type
                )
            return
        await self._put_multipart(s3, key, path, content_type)

    async def _put_multipart(self, s3: Any, key: str, path: Path, content_type: str) -> None:
        started = await s3.create_multipart_upload(
            Bucket=self.bucket, Key=self._key(key), ContentType=content_type
        )
        upload_id = started["UploadId"]
        parts = []
        try:
            with path.open("rb") as file:
                number = 1
                while chunk := file.read(PART):
                    answer = await s3.upload_part(
                        Bucket=self.bucket,
                        Key=self._key(key),
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                    )
                    parts.append({"ETag": answer["ETag"], "PartNumber": number})
                    number += 1
            await s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            await s3.abort_multipart_upload(
                Bucket=self.bucket, Key=self._key(key), UploadId=upload_id
            )
            raise

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        s3 = await self._s3()
        extra = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end}"
        answer = await s3.get_object(Bucket=self.bucket, Key=self._key(key), **extra)
        async with answer["Body"] as body:
            while chunk := await body.read(CHUNK):
                yield chunk

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        await s3.delete_object(Bucket=self.bucket, Key=self._key(key))

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()
