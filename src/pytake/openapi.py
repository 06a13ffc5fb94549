"""OpenAPI: the error envelopes of both surfaces, documented on every route."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from pytake.auth.dependencies import SCOPE_CHECKS, require_org_admin
from pytake.auth.scopes import ROLE_SCOPES, SCOPES
from pytake.errors import error_catalogue


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


def _checks(dependant: Dependant) -> set[Any]:
    calls = {dependant.call}
    for sub in dependant.dependencies:
        calls |= _checks(sub)
    return calls


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """The app's API routes as mounted (FastAPI 0.16x includes routers lazily)."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:
        yield from (r for r in app.routes if isinstance(r, APIRoute))
        return
    for context in contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def scope_operations(app: FastAPI) -> dict[str, list[str]]:
    """Every scope with the operations (`METHOD /path`) it allows, read off the routes; the
    pseudo-scope `org_admin` lists what only a signed-in organisation admin may do."""
    allowed: dict[str, list[str]] = defaultdict(list)
    for route in _api_routes(app):
        if not route.include_in_schema:
            continue
        calls = _checks(route.dependant)
        needs = {SCOPE_CHECKS[c] for c in calls if c in SCOPE_CHECKS}
        if require_org_admin in calls:
            needs.add("org_admin")
        for method in sorted(route.methods):
            for scope in needs:
                allowed[scope].append(f"{method} {route.path_format}")
    return {scope: sorted(ops) for scope, ops in sorted(allowed.items())}


def scopes_markdown(app: FastAPI) -> str:
    """The scope table of the API description and of `POST /v1/api-keys`."""
    operations = scope_operations(app)
    roles = {
        scope: ", ".join(r.value for r, scopes in ROLE_SCOPES.items() if scope in scopes)
        for scope in SCOPES
    }
    lines = ["| scope | meaning | roles that hold it | operations |", "|---|---|---|---|"]
    for scope, meaning in SCOPES.items():
        ops = "<br>".join(f"`{op}`" for op in operations.get(scope, [])) or "—"
        lines.append(f"| `{scope}` | {meaning} | {roles[scope]} | {ops} |")
    admin_only = ", ".join(f"`{op}`" for op in operations.get("org_admin", []))
    lines.append(
        f"\nOrganisation admins signed in as a user (never an API key) may also: {admin_only}."
    )
    return "\n".join(lines)


def errors_markdown() -> str:
    """Every error code the API returns, and the documented code a client should treat it as."""
    lines = ["| code | HTTP status | treat as | meaning |", "|---|---|---|---|"]
    for entry in error_catalogue():
        statuses = ", ".join(str(s) for s in entry.statuses)
        lines.append(f"| `{entry.code}` | {statuses} | `{entry.documented_as}` | {entry.meaning} |")
    return "\n".join(lines)


def _with_catalogues(app: FastAPI) -> Any:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            description = (
                f"{app.description}\n\n## Scopes\n\n{scopes_markdown(app)}\n\n"
                f"## Error codes\n\n{errors_markdown()}\n"
            )
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            create_key = schema["paths"].get("/v1/api-keys", {}).get("post")
            if create_key is not None:
                create_key["description"] = (
                    f"{create_key.get('description', '')}\n\n{scopes_markdown(app)}"
                )
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def install_openapi(app: FastAPI) -> None:
    """Tags, and the scope and error-code catalogues built from the routes and error classes."""
    app.openapi = _with_catalogues(app)  # type: ignore[method-assign]
    app.openapi_tags = [
        {"name": "auth", "description": "Sign in, refresh and sign out (/v1)."},
        {"name": "api keys", "description": "Keys for integrations; org admins only."},
        {"name": "users", "description": "The organisation's team."},
        {"name": "teams", "description": "Groups of agents that conversations are routed to."},
        {"name": "operations", "description": "Health and metrics."},
    ]


_API_DOC_INTRO = """# PyTake API: error codes and scopes

Generated from the code by `python -m pytake.openapi docs/api.md` (a test fails when this file
is stale). The same tables are in the OpenAPI description at `/docs` and `/openapi.json`; the
scope table is also on `POST /v1/api-keys`.

## Error codes

`/v1` errors are `{"error": {"code", "message", "details": [{"field", "message"}]}}`; `/api/v1`
errors are `{"error": <code>, "message", "code": <HTTP status>, "details"}`. The `/v1` document
lists nine codes; where PyTake returns a more precise one, *treat as* names the documented code
a client that does not know it should handle it as.

"""

_API_DOC_SCOPES = """
## Scopes

An API key carries the scopes chosen when it was created; a signed-in user carries the scopes
of their role. Each row lists every operation the scope allows.

"""


def api_doc(app: FastAPI) -> str:
    """docs/api.md: the error-code and scope catalogues, as the running API reports them."""
    return f"{_API_DOC_INTRO}{errors_markdown()}\n{_API_DOC_SCOPES}{scopes_markdown(app)}\n"


if __name__ == "__main__":  # python -m pytake.openapi docs/api.md
    import sys
    from pathlib import Path

    from pytake.app import create_app
    from pytake.config import Settings

    text = api_doc(create_app(Settings(_env_file=None)))
    Path(sys.argv[1]).write_text(text, encoding="utf-8") if len(sys.argv) > 1 else print(text)
