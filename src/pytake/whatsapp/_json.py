"""Tiny helpers for reading loosely-typed provider JSON."""

from __future__ import annotations

from typing import Any


def obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty dict (providers omit or null things)."""
    return value if isinstance(value, dict) else {}


def objects(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON array, skipping anything else; not an array → empty."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
