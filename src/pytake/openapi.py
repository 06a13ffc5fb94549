"""OpenAPI: the error envelopes of both surfaces, documented on every route."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel


class V1ErrorDetail(BaseModel):
    field: str
    message: str


class V1ErrorBody(BaseModel):
    code: str
    message: str
    details: list[V1ErrorDetail] | None = None
    retry_after: int | None = None


class V1Error(BaseModel):
    error: V1ErrorBody


class LegacyErrorDetail(BaseModel):
    field: str
    reason: str


class LegacyError(BaseModel):
    error: str
    message: str
    code: int
    details: LegacyErrorDetail | None = None


_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Missing, invalid or expired credentials (`authentication_failed`, `invalid_api_key`)",
    403: "The credential lacks the scope or role (`insufficient_permissions`)",
    404: "Not found, or belongs to another organisation (`resource_not_found`)",
    409: "Conflicts with an existing resource (`duplicate_resource`)",
    422: "Validation failed; `details` names each field (`validation_error`)",
    429: "Rate limit exceeded (`rate_limit_exceeded`); see `Retry-After`",
    500: "Unexpected error (`internal_error`) with a request id",
}


def _responses(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": model, "description": d} for status, d in _DESCRIPTIONS.items()}


def v1_error_responses() -> dict[int | str, dict[str, Any]]:
    return _responses(V1Error)


def legacy_error_responses() -> dict[int | str, dict[str, Any]]:
    return _responses(LegacyError)


def install_openapi(app: FastAPI) -> None:
    """Hook for schema tweaks; FastAPI builds the schema lazily from the routes."""
    app.openapi_tags = [
        {"name": "auth", "description": "Sign in, refresh and sign out (/v1)."},
        {"name": "api keys", "description": "Keys for integrations; org admins only."},
        {"name": "users", "description": "The organisation's team."},
        {"name": "operations", "description": "Health and metrics."},
    ]
