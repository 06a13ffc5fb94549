"""The media domain's errors."""

from __future__ import annotations

from pytake.errors import PyTakeError


class MediaNotAvailable(PyTakeError):
    """The media exists but its bytes are not stored (pending, failed or expired)."""

    status = 409
    code = "media_not_available"
    documented_as = "duplicate_resource"
    default_message = "The media's file is not available"


class RangeNotSatisfiable(PyTakeError):
    status = 416
    code = "range_not_satisfiable"
    documented_as = "validation_error"
    default_message = "The requested byte range is outside the file"
