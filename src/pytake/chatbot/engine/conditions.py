"""`condition` nodes: the left side read from the session, contact or clock; one test each."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pytake.chatbot.engine.text import fold, render

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


def local_time(now: datetime, timezone: str) -> datetime:
    try:
        return now.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        return now


def resolve(left: str, values: dict[str, Any], now: datetime, timezone: str) -> Any:
    """The value a rule's left side names: `email` or `variables.email` (a session
    variable), `contact.name`, `contact.attributes.plan`, `contact.tags`, `time` ("14:05"),
    `hour`, `weekday` ("monday"), or any `{{template}}`."""
    if "{{" in left:
        return render(left, values)
    if left in ("time", "time_of_day", "hour", "weekday"):
        local = local_time(now, timezone)
        if left == "hour":
            return local.hour
        if left == "weekday":
            return WEEKDAYS[local.weekday()]
        return f"{local.hour:02d}:{local.minute:02d}"
    path = left.split(".")
    if path[0] == "variables":
        path = path[1:]
    current: Any = values if path[0] == "contact" else values.get("variables", {})
    for part in path:
        if isinstance(current, dict):
            current = current.get(part)
        else:
            return None
    return current


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        clock = _CLOCK.match(value.strip())
        if clock:
            return int(clock.group(1)) * 60 + int(clock.group(2))
        try:
            return float(value.strip().replace(",", "."))
        except ValueError:
            return None
    return None


def _is_set(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def test(left: Any, op: str, right: Any) -> bool:
    """One test; strings compare case- and accent-insensitively, lists (tags) by member."""
    if op == "is_set":
        wanted = True if right is None else right not in (False, "false", 0)
        return _is_set(left) == wanted
    if isinstance(left, list):
        return (
            any(test(item, op, right) for item in left)
            if op != "not_equals"
            else all(test(item, op, right) for item in left)
        )
    if op in ("gt", "lt"):
        a, b = _number(left), _number(right)
        if a is None or b is None:
            return False
        return a > b if op == "gt" else a < b
    if op == "regex":
        try:
            return (
                re.search(str(right), "" if left is None else str(left), re.IGNORECASE) is not None
            )
        except re.error:
            return False
    x, y = fold("" if left is None else left), fold("" if right is None else right)
    if op == "equals":
        return x == y
    if op == "not_equals":
        return x != y
    if op == "contains":
        return y in x
    if op == "starts_with":
        return x.startswith(y)
    return False


def matches(when: dict[str, Any], values: dict[str, Any], now: datetime, timezone: str) -> bool:
    """Whether a rule's `{"all": [...]}` or `{"any": [...]}` holds."""
    mode = "all" if "all" in when else "any"
    results = (
        test(
            resolve(str(t.get("left", "")), values, now, timezone),
            str(t.get("op")),
            render(t["right"], values) if isinstance(t.get("right"), str) else t.get("right"),
        )
        for t in when.get(mode) or []
        if isinstance(t, dict)
    )
    return all(results) if mode == "all" else any(results)
