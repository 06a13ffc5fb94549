"""The error hierarchy (each error carries its status and code) and the two surfaces' envelopes.

`/v1` renders `{"error": {"code", "message", "details": [{"field", "message"}]}}`;
`/api/v1` (and everything outside `/v1`) renders `{"error", "message", "code", "details"}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


# The /v1 document's error codes. PyTake returns a few more precise ones; each names the
# documented code a client that does not know it should treat it as (`documented_as`).
DOCUMENTED_CODES = (
    "authentication_failed",
    "invalid_api_key",
    "rate_limit_exceeded",
    "validation_error",
    "resource_not_found",
    "duplicate_resource",
    "insufficient_permissions",
    "whatsapp_api_error",
    "internal_error",
)


class PyTakeError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Internal server error"
    # For a code outside DOCUMENTED_CODES: the documented code it refines.
    documented_as: ClassVar[str | None] = None

    def __init__(
        self,
        message: str | None = None,
        *,
        details: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        keep_changes: bool = False,
    ) -> None:
        self.message = message or self.default_message
        # The request's transaction commits despite this error (e.g. revoking a token family
        # when a stolen refresh token is replayed must stick even though the caller gets 401).
        self.keep_changes = keep_changes
        self.details = details or []
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.message)


class BadRequest(PyTakeError):
    """Input that cannot be read at all (malformed JSON, a malformed webhook): invalid input,
    so the documented `validation_error`, with the 400 of a request that was not understood."""

    status = 400
    code = "validation_error"
    default_message = "Bad request"


class AuthenticationFailed(PyTakeError):
    status = 401
    code = "authentication_failed"
    default_message = "Authentication failed"


class InvalidApiKey(PyTakeError):
    status = 401
    code = "invalid_api_key"
    default_message = "Invalid or revoked API key"


class PermissionDenied(PyTakeError):
    status = 403
    code = "insufficient_permissions"
    default_message = "You do not have permission to do this"


class NotFound(PyTakeError):
    status = 404
    code = "resource_not_found"
    default_message = "Resource not found"


class MethodNotAllowed(PyTakeError):
    status = 405
    code = "method_not_allowed"
    documented_as = "resource_not_found"
    default_message = "Method not allowed"


class Conflict(PyTakeError):
    status = 409
    code = "duplicate_resource"
    default_message = "Resource already exists"


class PayloadTooLarge(PyTakeError):
    status = 413
    code = "payload_too_large"
    documented_as = "validation_error"
    default_message = "Request body is too large"


class ValidationFailed(PyTakeError):
    status = 422
    code = "validation_error"
    default_message = "Invalid request parameters"

    @classmethod
    def on(cls, field: str, message: str) -> ValidationFailed:
        """A validation error about one named field."""
        return cls(details=[FieldError(field, message)])


class RateLimited(PyTakeError):
    status = 429
    code = "rate_limit_exceeded"
    default_message = "Rate limit exceeded"

    def __init__(self, retry_after: int, headers: dict[str, str] | None = None) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(
            f"Rate limit exceeded. Retry after {self.retry_after} seconds.",
            headers={**(headers or {}), "Retry-After": str(self.retry_after)},
            extra={"retry_after": self.retry_after},
        )


class ServiceUnavailable(PyTakeError):
    status = 503
    code = "service_unavailable"
    documented_as = "internal_error"
    default_message = "Service temporarily unavailable"


_STATUS_ERRORS: dict[int, type[PyTakeError]] = {
    400: BadRequest,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    503: ServiceUnavailable,
}


def error_for_status(status: int, message: str | None = None) -> PyTakeError:
    """The PyTakeError matching an HTTP status raised by the framework (404 routes, 405...)."""
    cls = _STATUS_ERRORS.get(status)
    if cls is None:
        err = PyTakeError(message)
        err.status = status  # type: ignore[misc]
        return err
    return cls(message)


@dataclass(frozen=True)
class ErrorCode:
    code: str
    statuses: tuple[int, ...]
    documented_as: str
    meaning: str


def error_catalogue() -> list[ErrorCode]:
    """Every error code the API can return (from the PyTakeError classes loaded), documented
    ones first: what the OpenAPI description and docs/api.md list."""
    seen: dict[str, tuple[set[int], str, str]] = {}
    pending: list[type[PyTakeError]] = [PyTakeError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if not cls.__module__.startswith("pytake."):
            continue  # a test's own error class is not part of the API
        entry = seen.setdefault(
            cls.code, (set(), cls.documented_as or cls.code, cls.default_message)
        )
        entry[0].add(cls.status)
    order = {code: i for i, code in enumerate(DOCUMENTED_CODES)}
    return sorted(
        (
            ErrorCode(code, tuple(sorted(statuses)), treat_as, meaning)
            for code, (statuses, treat_as, meaning) in seen.items()
        ),
        key=lambda e: (order.get(e.code, len(order)), e.code),
    )


def is_v1_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def render_v1(err: PyTakeError, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.details:
        body["details"] = [{"field": d.field, "message": d.message} for d in err.details]
    body.update(err.extra)
    if request_id and err.status >= 500:
        body["request_id"] = request_id
    return {"error": body}


def render_legacy(err: PyTakeError, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": err.code, "message": err.message, "code": err.status}
    if err.details:
        first = err.details[0]
        details: dict[str, Any] = {"field": first.field, "reason": first.message}
        if len(err.details) > 1:
            details["errors"] = [{"field": d.field, "reason": d.message} for d in err.details]
        body["details"] = details
    body.update(err.extra)
    if request_id and err.status >= 500:
        body["request_id"] = request_id
    return body


def render(err: PyTakeError, path: str, request_id: str | None = None) -> dict[str, Any]:
    """The envelope of the surface that `path` belongs to."""
    if is_v1_path(path):
        return render_v1(err, request_id)
    return render_legacy(err, request_id)
