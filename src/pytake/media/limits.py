"""Meta's per-type media rules (MIME types and sizes), and safe file names.

From the Cloud API's supported-media table (protocol reference A5): images are JPEG or PNG up
to 5 MB, audio and video up to 16 MB, documents up to 100 MB, stickers WebP up to 100 KB
(500 KB animated). MB here is Meta's: 1024 × 1024 bytes.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from pytake.errors import FieldError

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TypeRule:
    mime_types: frozenset[str]
    max_bytes: int


RULES: dict[str, TypeRule] = {
    "image": TypeRule(frozenset({"image/jpeg", "image/png"}), 5 * MB),
    "audio": TypeRule(
        frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}), 16 * MB
    ),
    "video": TypeRule(frozenset({"video/mp4", "video/3gpp"}), 16 * MB),
    "document": TypeRule(
        frozenset(
            {
                "text/plain",
                "text/csv",
                "application/pdf",
                "application/msword",
                "application/vnd.ms-excel",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                "application/zip",
                "application/octet-stream",
            }
        ),
        100 * MB,
    ),
    "sticker": TypeRule(frozenset({"image/webp"}), 500 * 1024),
}
STATIC_STICKER_MAX = 100 * 1024
# Any file WhatsApp can carry is at most a document's size.
LARGEST = max(rule.max_bytes for rule in RULES.values())


def base_mime(mime_type: str | None) -> str:
    """`audio/ogg; codecs=opus` → `audio/ogg` (lower case, no parameters)."""
    return (mime_type or "").split(";", 1)[0].strip().lower()


def _size_words(size: int) -> str:
    return f"{size / MB:.1f} MB" if size >= MB else f"{size / 1024:.0f} KB"


def check_for_type(
    field: str, kind: str, mime_type: str | None, size: int | None
) -> list[FieldError]:
    """What keeps a file from being sent as `kind` (empty: nothing)."""
    rule = RULES.get(kind)
    if rule is None:
        return [FieldError(field, f"'{kind}' is not a media type")]
    errors = []
    mime = base_mime(mime_type)
    if mime not in rule.mime_types:
        allowed = ", ".join(sorted(rule.mime_types))
        errors.append(
            FieldError(
                field, f"{kind} must be one of {allowed} (the file is {mime or 'of unknown type'})"
            )
        )
    if size is not None and size > rule.max_bytes:
        errors.append(
            FieldError(
                field,
                f"{kind} is limited to {_size_words(rule.max_bytes)} by WhatsApp "
                f"(the file is {_size_words(size)})",
            )
        )
    return errors


def kinds_for(mime_type: str | None) -> list[str]:
    """The message types a MIME type may be sent as."""
    mime = base_mime(mime_type)
    return [kind for kind, rule in RULES.items() if mime in rule.mime_types]


_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\/:*?<>|;]+')


def safe_file_name(name: str | None, fallback: str = "file") -> str:
    """A file name fit for a header and a disk: no paths, quotes, controls; at most 200 chars."""
    text = unicodedata.normalize("NFC", name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _UNSAFE.sub("_", text).strip(" ._")
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    return text[:200] or fallback
