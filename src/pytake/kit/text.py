"""Text that every storage engine can hold."""

from __future__ import annotations

from typing import Any

_NUL = "\x00"


def without_nul(value: Any) -> Any:
    """The value with NUL characters replaced: PostgreSQL text and JSONB cannot hold them, and
    a body that can never be stored would be retried by Meta for days."""
    if isinstance(value, str):
        return value.replace(_NUL, "\ufffd") if _NUL in value else value
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value
