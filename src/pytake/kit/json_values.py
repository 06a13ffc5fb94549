"""Free-form JSON a client stores (contact attributes, template variables): bounded so that it
can always be written back out.

orjson (the JSON columns' serializer, pytake.db) refuses integers beyond 64 bits and nesting
deeper than 254 levels, and a float parsed from `1e400` is infinite, which JSON cannot carry.
Each of these would otherwise fail at flush time as a 500; here it is a 422 naming the field.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, Field

MAX_DEPTH = 16
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson writes


def _check(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise ValueError("integers must fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite")
    elif isinstance(value, dict):
        for item in value.values():
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)


def bounded_json(value: Any) -> Any:
    """Pydantic validator: `value` as given, when every part of it can be stored as JSON."""
    _check(value, 1)
    return value


_DOC = f"Any JSON; integers within 64 bits, nesting at most {MAX_DEPTH} levels."

JsonObject = Annotated[dict[str, Any], AfterValidator(bounded_json), Field(description=_DOC)]
