"""Reading a customer's answer to a `question` node: number, e-mail, phone, date, choice."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from pytake.chatbot.engine.text import fold

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]{2,}$")
_DATE_FORMATS = (
    (re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"), ("y", "m", "d")),
    (re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})$"), ("d", "m", "y")),
)


class Invalid(Exception):
    """The answer does not fit the question's input type."""


def parse_answer(spec: dict[str, Any], text: str | None, reply_id: str | None) -> Any:
    """The value to store for an answer, or Invalid."""
    kind = spec.get("type", "text")
    raw = (text or "").strip()
    if kind == "choice":
        return _choice(spec, raw, reply_id)
    if not raw:
        raise Invalid()
    if kind == "number":
        return _number(spec, raw)
    if kind == "email":
        if not _EMAIL.match(raw):
            raise Invalid()
        return raw.lower()
    if kind == "phone":
        digits = re.sub(r"[\s().\-]", "", raw)
        if not re.fullmatch(r"\+?\d{8,15}", digits):
            raise Invalid()
        return digits if digits.startswith("+") else "+" + digits
    if kind == "date":
        return _date(raw)
    return raw


def _number(spec: dict[str, Any], raw: str) -> int | float:
    try:
        value = float(raw.replace(" ", "").replace(",", "."))
    except ValueError as exc:
        raise Invalid() from exc
    if value != value or value in (float("inf"), float("-inf")):
        raise Invalid()
    low, high = spec.get("min"), spec.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        raise Invalid()
    return int(value) if value.is_integer() else value


def _date(raw: str) -> str:
    for pattern, order in _DATE_FORMATS:
        match = pattern.match(raw)
        if match:
            parts = dict(zip(order, (int(g) for g in match.groups()), strict=True))
            try:
                return date(parts["y"], parts["m"], parts["d"]).isoformat()
            except ValueError as exc:
                raise Invalid() from exc
    raise Invalid()


def choices_of(spec: dict[str, Any]) -> list[dict[str, Any]]:
    choices = spec.get("choices")
    if isinstance(choices, dict):
        choices = choices.get("rows")
    return [c for c in choices or [] if isinstance(c, dict)]


def pick(options: list[dict[str, Any]], raw: str, reply_id: str | None) -> dict[str, Any] | None:
    """The option tapped (by id) or typed (its title, or its number in the menu)."""
    if reply_id is not None:
        for option in options:
            if option.get("id") == reply_id:
                return option
    answer = fold(raw)
    if not answer:
        return None
    for option in options:
        if fold(option.get("title", "")) == answer or fold(option.get("id", "")) == answer:
            return option
    if answer.isdigit() and 1 <= int(answer) <= len(options):
        return options[int(answer) - 1]
    return None


def _choice(spec: dict[str, Any], raw: str, reply_id: str | None) -> dict[str, Any]:
    option = pick(choices_of(spec), raw, reply_id)
    if option is None:
        raise Invalid()
    return option
