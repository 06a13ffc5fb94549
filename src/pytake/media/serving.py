"""Serving stored bytes: ranges, safe headers, and short-lived signed URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import uuid
from urllib.parse import quote

from fastapi.responses import StreamingResponse

from pytake.media.errors import MediaNotAvailable, RangeNotSatisfiable
from pytake.media.limits import RULES, base_mime, safe_file_name
from pytake.media.storage import MediaStorage
from pytake.models import Media

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
# Types a browser may render inline; anything else is served as a download.
_INLINE = ("image/", "audio/", "video/")
_KNOWN = frozenset().union(*(rule.mime_types for rule in RULES.values()))
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "audio/ogg": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/aac": ".aac",
    "audio/amr": ".amr",
    "video/mp4": ".mp4",
    "video/3gpp": ".3gp",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
}


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive range a `Range` header asks for; None: the whole file (no header, a
    syntax this does not serve, or several ranges: RFC 9110 lets a server send it all)."""
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
        return max(0, size - suffix), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, end


def served_type(mime_type: str | None) -> str:
    """The Content-Type to serve: the stored one when it is a media type WhatsApp carries,
    else a plain download (a customer's file must never run as a page of this origin)."""
    mime = base_mime(mime_type)
    if mime in _KNOWN or (mime.startswith(_INLINE) and "xml" not in mime):
        return (mime_type or mime).strip()
    return "application/octet-stream"


def download_name(media: Media) -> str:
    fallback = f"{media.kind or 'file'}-{str(media.id)[:8]}{_EXTENSIONS.get(base_mime(media.mime_type), '')}"
    return safe_file_name(media.file_name, fallback)


def content_disposition(media: Media, content_type: str) -> str:
    name = download_name(media)
    disposition = "inline" if content_type.startswith(_INLINE) else "attachment"
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


async def stream_media(
    storage: MediaStorage, media: Media, range_header: str | None
) -> StreamingResponse:
    """The response serving a stored media item (206 for a satisfiable range)."""
    if media.status != "stored" or not media.storage_key or media.size is None:
        raise MediaNotAvailable(
            f"The media is {media.status}" + (f": {media.error}" if media.error else "")
        )
    # Checked before the headers go out: a blob removed behind PyTake's back is a clear 409,
    # not a response cut short.
    if not await storage.exists(media.storage_key):
        raise MediaNotAvailable("The media's file is missing from storage")
    size = media.size
    wanted = byte_range(range_header, size) if size else None
    content_type = served_type(media.mime_type)
    headers = {
        "Content-Disposition": content_disposition(media, content_type),
        "Cache-Control": "private, max-age=3600",
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
        "ETag": f'"{media.sha256}"',
    }
    if wanted is None:
        headers["Content-Length"] = str(size)
        body = storage.read(media.storage_key)
        return StreamingResponse(body, status_code=200, media_type=content_type, headers=headers)
    start, end = wanted
    headers["Content-Length"] = str(end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    body = storage.read(media.storage_key, start, end)
    return StreamingResponse(body, status_code=206, media_type=content_type, headers=headers)


def _signature(secret: str, media_id: uuid.UUID, expires: int) -> str:
    mac = hmac.new(secret.encode(), f"media:{media_id}:{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def signed_query(secret: str, media_id: uuid.UUID, ttl_seconds: int) -> tuple[str, int]:
    """`expires=…&signature=…` for the media's content URL, and the expiry (Unix seconds)."""
    expires = int(time.time()) + ttl_seconds
    return f"expires={expires}&signature={_signature(secret, media_id, expires)}", expires


def signature_valid(secret: str, media_id: uuid.UUID, expires: int, signature: str) -> bool:
    if expires < time.time():
        return False
    return hmac.compare_digest(_signature(secret, media_id, expires), signature)
