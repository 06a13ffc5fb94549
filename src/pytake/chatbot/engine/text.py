"""Comparing what customers type (case- and accent-insensitive) and filling in `{{variables}}`."""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment

# A missing variable renders empty: a customer must never see a bot fail on a gap in its data.
_ENV = SandboxedEnvironment(undefined=Undefined, autoescape=False)
_MARKERS = ("{{", "{%")


def fold(value: Any) -> str:
    """Lower-case, accent-free and trimmed, with runs of spaces made one: "Começar " → "comecar"."""
    text = unicodedata.normalize("NFKD", str(value))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(text.casefold().split())


@lru_cache(maxsize=1024)
def _compiled(source: str) -> Any:
    return _ENV.from_string(source)


def render(source: Any, values: dict[str, Any]) -> str:
    """`source` with its `{{placeholders}}` filled from `values` (missing ones empty)."""
    text = "" if source is None else str(source)
    if not any(marker in text for marker in _MARKERS):
        return text
    try:
        return str(_compiled(text).render(values))
    except TemplateError:
        # Validation rejects malformed templates on save; this only guards old versions.
        return text
    except (TypeError, ValueError, ArithmeticError):
        return text


def render_deep(value: Any, values: dict[str, Any]) -> Any:
    """Render every string inside a JSON-like value (an HTTP body, headers)."""
    if isinstance(value, str):
        return render(value, values)
    if isinstance(value, dict):
        return {k: render_deep(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [render_deep(v, values) for v in value]
    return value


def check_template(source: Any) -> str | None:
    """Why `source` is not a valid template, or None."""
    if not isinstance(source, str) or not any(m in source for m in _MARKERS):
        return None
    try:
        _ENV.parse(source)
    except TemplateError as exc:
        return f"invalid placeholder syntax: {exc}"
    return None
