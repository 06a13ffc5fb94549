"""The `/api/v1/flows` step list converted into the graph every flow runs as.

A `message` step with `options` becomes a choice question (reply buttons, a list past 3
options) whose answer lands in `answer`; a `condition` step compares `answer` with each `if`
(case- and accent-insensitive) and goes where `then` says: another step (by `id` or `name`),
`end`, `handoff`, or `transfer_to_<team>` (a handoff to that team).
"""

from __future__ import annotations

import re
from typing import Any

from pytake.chatbot.engine.validate import Problem

ANSWER = "answer"
STEP_TYPES = ("message", "question", "condition", "handoff", "transfer", "end", "delay")
LEGACY_TRIGGERS = ("keyword", "new_conversation", "button", "manual")


class LegacyFlowError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "_", text.casefold()).strip("_")[:60] or "option"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}_{n}", n + 1
    taken.add(slug)
    return slug


def legacy_trigger(trigger: str | None, value: str | None) -> dict[str, Any] | None:
    if trigger is None:
        return None
    if trigger not in LEGACY_TRIGGERS:
        raise LegacyFlowError([Problem("trigger", f"must be one of {', '.join(LEGACY_TRIGGERS)}")])
    if trigger == "keyword":
        words = [w.strip() for w in (value or "").split(",") if w.strip()]
        if not words:
            raise LegacyFlowError(
                [Problem("trigger_value", "A keyword trigger needs trigger_value")]
            )
        return {"type": "keyword", "keywords": words, "match": "exact"}
    if trigger == "button":
        if not value:
            raise LegacyFlowError(
                [Problem("trigger_value", "A button trigger needs the payload in trigger_value")]
            )
        return {"type": "button", "payload": value}
    return {"type": trigger}


def convert_steps(steps: list[Any]) -> dict[str, Any]:
    """`steps` as `{"entry", "nodes"}` in the pinned flow format (or LegacyFlowError)."""
    if not isinstance(steps, list) or not steps:
        raise LegacyFlowError([Problem("steps", "A flow needs at least one step")])
    ids = _step_ids(steps)
    names = {
        str(s.get(key)): ids[i]
        for i, s in enumerate(steps)
        if isinstance(s, dict)
        for key in ("id", "name")
        if s.get(key)
    }
    problems: list[Problem] = []
    extra: dict[str, dict[str, Any]] = {}
    nodes: list[dict[str, Any]] = []
    for i, step in enumerate(steps):
        following = ids[i + 1] if i + 1 < len(steps) else None
        if not isinstance(step, dict):
            problems.append(Problem(f"steps[{i}]", "A step must be an object"))
            continue
        node = _node(step, i, ids[i], following, names, extra, problems)
        if node is not None:
            nodes.append(node)
    if problems:
        raise LegacyFlowError(problems)
    return {"entry": ids[0], "nodes": nodes + list(extra.values())}


def _step_ids(steps: list[Any]) -> list[str]:
    taken: set[str] = set()
    ids = []
    for i, step in enumerate(steps):
        own = step.get("id") or step.get("name") if isinstance(step, dict) else None
        ids.append(_slug(str(own), taken) if own else _slug(f"step_{i + 1}", taken))
    return ids


def _node(
    step: dict[str, Any],
    i: int,
    node_id: str,
    following: str | None,
    names: dict[str, str],
    extra: dict[str, dict[str, Any]],
    problems: list[Problem],
) -> dict[str, Any] | None:
    kind = step.get("type")
    text = step.get("content") or step.get("text") or step.get("message")
    if kind not in STEP_TYPES:
        problems.append(Problem(f"steps[{i}].type", f"must be one of {', '.join(STEP_TYPES)}"))
        return None
    if kind in ("message", "question"):
        return _ask(step, i, node_id, text, following, problems)
    if kind == "condition":
        return _condition(step, i, node_id, following, names, extra, problems)
    if kind == "delay":
        return {"id": node_id, "type": "delay", "seconds": step.get("seconds", 1),
                "next": following}  # fmt: skip
    if kind in ("handoff", "transfer"):
        node = {"id": node_id, "type": "handoff", "text": text}
        if step.get("team"):
            node["assign_to"] = {"team": str(step["team"])}
        return node
    return {"id": node_id, "type": "end", "text": text}


def _ask(
    step: dict[str, Any],
    i: int,
    node_id: str,
    text: Any,
    following: str | None,
    problems: list[Problem],
) -> dict[str, Any] | None:
    if not isinstance(text, str) or not text:
        problems.append(Problem(f"steps[{i}].content", "A message step needs its content"))
        return None
    options = step.get("options")
    if step.get("type") == "message" and not options:
        return {"id": node_id, "type": "message", "text": text, "next": following}
    if options is not None and (
        not isinstance(options, list) or not all(isinstance(o, str) and o for o in options)
    ):
        problems.append(Problem(f"steps[{i}].options", "must be a list of strings"))
        return None
    variable = str(step.get("variable") or ANSWER)
    node: dict[str, Any] = {
        "id": node_id, "type": "question", "text": text, "variable": variable, "next": following,
    }  # fmt: skip
    if options:
        if len(options) > 10:
            problems.append(Problem(f"steps[{i}].options", "At most 10 options"))
            return None
        taken: set[str] = set()
        limit = 20 if len(options) <= 3 else 24
        node["input"] = {
            "type": "choice",
            "display": "buttons" if len(options) <= 3 else "list",
            "choices": [{"id": _slug(o, taken), "title": o[:limit]} for o in options],
        }
        for option in options:
            if len(option) > limit:
                problems.append(
                    Problem(f"steps[{i}].options", f"{option!r} is over {limit} characters")
                )
    return node


def _condition(
    step: dict[str, Any],
    i: int,
    node_id: str,
    following: str | None,
    names: dict[str, str],
    extra: dict[str, dict[str, Any]],
    problems: list[Problem],
) -> dict[str, Any] | None:
    conditions = step.get("conditions")
    if not isinstance(conditions, list) or not conditions:
        problems.append(Problem(f"steps[{i}].conditions", "A condition needs conditions"))
        return None
    variable = str(step.get("variable") or ANSWER)
    rules = []
    for j, condition in enumerate(conditions):
        if not isinstance(condition, dict) or "if" not in condition or "then" not in condition:
            problems.append(Problem(f"steps[{i}].conditions[{j}]", 'needs "if" and "then"'))
            continue
        target = _target(str(condition["then"]), names, extra)
        if target is None:
            problems.append(
                Problem(
                    f"steps[{i}].conditions[{j}].then",
                    f"{condition['then']!r} names no step and is not end, handoff or "
                    "transfer_to_<team>",
                )
            )
            continue
        test = {"left": variable, "op": "equals", "right": str(condition["if"])}
        rules.append({"when": {"all": [test]}, "next": target})
    otherwise = step.get("else")
    fallback = _target(str(otherwise), names, extra) if otherwise else following
    if fallback is None:
        fallback = _target("end", names, extra)
    return {"id": node_id, "type": "condition", "rules": rules, "else": fallback}


def _target(then: str, names: dict[str, str], extra: dict[str, dict[str, Any]]) -> str | None:
    if then in names:
        return names[then]
    if then == "end":
        extra.setdefault("__end", {"id": "__end", "type": "end"})
        return "__end"
    if then == "handoff":
        extra.setdefault("__handoff", {"id": "__handoff", "type": "handoff"})
        return "__handoff"
    if then.startswith("transfer_to_") and len(then) > len("transfer_to_"):
        team = then[len("transfer_to_") :]
        node_id = f"__{then}"
        extra.setdefault(node_id, {"id": node_id, "type": "handoff", "assign_to": {"team": team}})
        return node_id
    return None
