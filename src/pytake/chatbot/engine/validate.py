"""Checking a flow before it is saved: every problem names the node id and the field.

Errors make the save a 422; unreachable nodes are only warnings (a flow being drawn in the
editor often has some).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pytake.chatbot.engine.text import check_template

NODE_TYPES = (
    "message", "question", "condition", "set_variable", "update_contact", "http", "handoff",
    "delay", "jump", "template", "end",
)  # fmt: skip
TRIGGER_TYPES = ("keyword", "new_conversation", "button", "manual")
KEYWORD_MATCHES = ("exact", "contains", "regex")
INPUT_TYPES = ("text", "number", "email", "phone", "date", "choice")
CHOICE_DISPLAYS = ("buttons", "list", "text")
CONDITION_OPS = (
    "equals", "not_equals", "contains", "starts_with", "regex", "gt", "lt", "is_set",
)  # fmt: skip
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_BUTTONS = 3
BUTTON_TITLE_MAX = 20
MAX_LIST_ROWS = 10
LIST_ROW_TITLE_MAX = 24
MAX_HTTP_TIMEOUT = 10.0
MAX_DELAY_SECONDS = 30 * 86_400
MAX_NODES = 500
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_JSON_PATH = re.compile(r"^\$(\.[A-Za-z0-9_\-]+|\[\d+\])*$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a flow: where (`field`, a path naming the node) and what."""

    field: str
    message: str
    node: str | None = None


@dataclass(slots=True)
class Report:
    errors: list[Problem]
    warnings: list[Problem]


class _Checker:
    def __init__(self, flow: dict[str, Any]) -> None:
        self.flow = flow
        self.errors: list[Problem] = []
        self.ids: set[str] = set()

    def error(self, node: str | None, field: str, message: str) -> None:
        where = f"nodes.{node}.{field}" if node is not None else field
        prefix = f"Node '{node}': " if node is not None else ""
        self.errors.append(Problem(where, prefix + message, node))

    def target(self, node: str, field: str, value: Any, *, required: bool = False) -> None:
        """A `next`-like field: absent (when allowed) or the id of a node of this flow."""
        if value is None:
            if required:
                self.error(node, field, "is required")
            return
        if not isinstance(value, str) or value not in self.ids:
            self.error(node, field, f"names a node that does not exist: {value!r}")

    def text(self, node: str, field: str, value: Any, *, required: bool = False) -> None:
        if value is None or value == "":
            if required:
                self.error(node, field, "is required")
            return
        if not isinstance(value, str):
            self.error(node, field, "must be a string")
            return
        problem = check_template(value)
        if problem:
            self.error(node, field, problem)


def validate_flow(flow: dict[str, Any], other_flows: set[str] | None = None) -> Report:
    """Check a flow document (the pinned format); `other_flows`: ids a `jump` may name."""
    checker = _Checker(flow)
    nodes = flow.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        checker.error(None, "nodes", "A flow needs at least one node")
        return Report(checker.errors, [])
    if len(nodes) > MAX_NODES:
        checker.error(None, "nodes", f"At most {MAX_NODES} nodes")
        return Report(checker.errors, [])
    valid = _collect_ids(checker, nodes)
    _check_trigger(checker, flow.get("trigger"))
    entry = flow.get("entry")
    if entry is None or entry == "":
        checker.error(None, "entry", "A flow needs an entry node")
    elif entry not in checker.ids:
        checker.error(None, "entry", f"names a node that does not exist: {entry!r}")
    for node in valid:
        kind = node.get("type")
        if kind not in NODE_TYPES:
            checker.error(node["id"], "type", f"unknown node type {kind!r}")
            continue
        _check_position(checker, node)
        _CHECKS[kind](checker, node, other_flows)
    warnings = _unreachable(valid, entry) if not checker.errors else []
    return Report(checker.errors, warnings)


def _collect_ids(checker: _Checker, nodes: list[Any]) -> list[dict[str, Any]]:
    valid: list[dict[str, Any]] = []
    for index, node in enumerate(nodes):
        if not isinstance(node, dict):
            checker.error(None, f"nodes[{index}]", "A node must be an object")
            continue
        node_id = node.get("id")
        if not isinstance(node_id, str) or not node_id.strip() or len(node_id) > 100:
            checker.error(None, f"nodes[{index}].id", "A node needs an id (1 to 100 characters)")
            continue
        if node_id in checker.ids:
            checker.error(node_id, "id", "is used by another node")
            continue
        checker.ids.add(node_id)
        valid.append(node)
    return valid


def _check_trigger(checker: _Checker, trigger: Any) -> None:
    if trigger is None:
        return  # a flow only reached by jumps or started by the API
    if not isinstance(trigger, dict):
        checker.error(None, "trigger", "must be an object")
        return
    kind = trigger.get("type")
    if kind not in TRIGGER_TYPES:
        checker.error(None, "trigger.type", f"must be one of {', '.join(TRIGGER_TYPES)}")
        return
    if kind == "keyword":
        keywords = trigger.get("keywords")
        if not isinstance(keywords, list) or not keywords:
            checker.error(None, "trigger.keywords", "A keyword trigger needs keywords")
        elif not all(isinstance(k, str) and k.strip() for k in keywords):
            checker.error(None, "trigger.keywords", "Keywords must be non-empty strings")
        match = trigger.get("match", "exact")
        if match not in KEYWORD_MATCHES:
            checker.error(None, "trigger.match", f"must be one of {', '.join(KEYWORD_MATCHES)}")
        elif match == "regex" and isinstance(keywords, list):
            for i, keyword in enumerate(keywords):
                if _bad_regex(keyword):
                    checker.error(None, f"trigger.keywords[{i}]", "is not a valid regex")
    if kind == "button":
        payloads = trigger.get("payloads") or (
            [trigger["payload"]] if trigger.get("payload") else []
        )
        if not payloads or not all(isinstance(p, str) and p for p in payloads):
            checker.error(None, "trigger.payload", "A button trigger needs the reply payload")


def _bad_regex(pattern: Any) -> bool:
    if not isinstance(pattern, str):
        return True
    try:
        re.compile(pattern)
    except re.error:
        return True
    return False


def _check_position(checker: _Checker, node: dict[str, Any]) -> None:
    position = node.get("position")
    if position is None:
        return
    if not isinstance(position, dict) or not all(
        isinstance(position.get(axis), int | float) for axis in ("x", "y")
    ):
        checker.error(node["id"], "position", 'must be {"x": number, "y": number}')


def _check_message(checker: _Checker, node: dict[str, Any], _flows: set[str] | None) -> None:
    nid = node["id"]
    media = node.get("media")
    if media is not None:
        _check_media(checker, nid, media)
    checker.text(nid, "text", node.get("text"), required=media is None)
    buttons, rows = node.get("buttons"), node.get("list")
    if buttons is not None and rows is not None:
        checker.error(nid, "buttons", "A message has buttons or a list, not both")
    if buttons is not None:
        _check_buttons(checker, nid, "buttons", buttons, needs_next=True)
    if rows is not None:
        _check_list(checker, nid, "list", rows, needs_next=True)
    if (buttons or rows) and media is not None and media.get("type") != "image":
        checker.error(nid, "media.type", "Only an image can head a message with buttons")
    checker.target(nid, "next", node.get("next"))
    checker.target(nid, "on_failure", node.get("on_failure"))
    _check_attempts(checker, nid, node)
    if node.get("template") is not None:
        _check_template_ref(checker, nid, "template", node["template"])


def _check_media(checker: _Checker, nid: str, media: Any) -> None:
    if not isinstance(media, dict):
        checker.error(nid, "media", "must be an object")
        return
    if media.get("type") not in ("image", "video", "document", "audio"):
        checker.error(nid, "media.type", "must be image, video, document or audio")
    url = media.get("url") or media.get("link")
    if not isinstance(url, str) or not url.startswith(("http://", "https://", "{{")):
        checker.error(nid, "media.url", "must be an http(s) URL")


def _check_buttons(
    checker: _Checker, nid: str, field: str, buttons: Any, *, needs_next: bool
) -> None:
    if not isinstance(buttons, list) or not buttons:
        checker.error(nid, field, "must be a list of buttons")
        return
    if len(buttons) > MAX_BUTTONS:
        checker.error(nid, field, f"At most {MAX_BUTTONS} reply buttons (use a list)")
    seen: set[str] = set()
    for i, button in enumerate(buttons):
        where = f"{field}[{i}]"
        if not isinstance(button, dict):
            checker.error(nid, where, "must be an object")
            continue
        _check_choice(checker, nid, where, button, seen, BUTTON_TITLE_MAX)
        checker.target(nid, f"{where}.next", button.get("next"), required=needs_next)


def _check_list(checker: _Checker, nid: str, field: str, rows: Any, *, needs_next: bool) -> None:
    if isinstance(rows, dict):
        if rows.get("button") is not None and (
            not isinstance(rows["button"], str) or not 1 <= len(rows["button"]) <= 20
        ):
            checker.error(nid, f"{field}.button", "must be 1 to 20 characters")
        rows, field = rows.get("rows"), f"{field}.rows"
    if not isinstance(rows, list) or not rows:
        checker.error(nid, field, "must be a list of rows")
        return
    if len(rows) > MAX_LIST_ROWS:
        checker.error(nid, field, f"At most {MAX_LIST_ROWS} rows")
    seen: set[str] = set()
    for i, row in enumerate(rows):
        where = f"{field}[{i}]"
        if not isinstance(row, dict):
            checker.error(nid, where, "must be an object")
            continue
        _check_choice(checker, nid, where, row, seen, LIST_ROW_TITLE_MAX)
        checker.target(nid, f"{where}.next", row.get("next"), required=needs_next)


def _check_choice(
    checker: _Checker, nid: str, where: str, choice: dict[str, Any], seen: set[str], limit: int
) -> None:
    choice_id = choice.get("id")
    if not isinstance(choice_id, str) or not choice_id or len(choice_id) > 200:
        checker.error(nid, f"{where}.id", "is required (1 to 200 characters)")
    elif choice_id in seen:
        checker.error(nid, f"{where}.id", f"{choice_id!r} is used twice")
    else:
        seen.add(choice_id)
    title = choice.get("title")
    if not isinstance(title, str) or not title.strip():
        checker.error(nid, f"{where}.title", "is required")
    elif len(title) > limit:
        checker.error(nid, f"{where}.title", f"is {len(title)} characters; WhatsApp allows {limit}")


def _check_attempts(checker: _Checker, nid: str, node: dict[str, Any]) -> None:
    attempts = node.get("max_attempts")
    if attempts is not None and (
        not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 20
    ):
        checker.error(nid, "max_attempts", "must be a whole number from 1 to 20")
    checker.text(nid, "retry_text", node.get("retry_text"))


def _check_question(checker: _Checker, node: dict[str, Any], _flows: set[str] | None) -> None:
    nid = node["id"]
    checker.text(nid, "text", node.get("text"), required=True)
    variable = node.get("variable")
    if variable is None or variable == "":
        checker.error(nid, "variable", "A question needs the variable its answer goes in")
    elif not isinstance(variable, str) or not _VARIABLE.match(variable):
        checker.error(nid, "variable", "must be a name of letters, digits and _")
    spec = node.get("input", {"type": "text"})
    if not isinstance(spec, dict) or spec.get("type", "text") not in INPUT_TYPES:
        checker.error(nid, "input.type", f"must be one of {', '.join(INPUT_TYPES)}")
    else:
        _check_input(checker, nid, spec)
    _check_attempts(checker, nid, node)
    checker.target(nid, "next", node.get("next"))
    checker.target(nid, "on_failure", node.get("on_failure"))


def _check_input(checker: _Checker, nid: str, spec: dict[str, Any]) -> None:
    kind = spec.get("type", "text")
    if kind == "number":
        low, high = spec.get("min"), spec.get("max")
        for name, bound in (("min", low), ("max", high)):
            if bound is not None and (
                not isinstance(bound, int | float) or isinstance(bound, bool)
            ):
                checker.error(nid, f"input.{name}", "must be a number")
                return
        if low is not None and high is not None and low > high:
            checker.error(nid, "input.min", "is above input.max")
    if kind == "choice":
        display = spec.get("display", "buttons")
        if display not in CHOICE_DISPLAYS:
            checker.error(nid, "input.display", f"must be one of {', '.join(CHOICE_DISPLAYS)}")
            return
        choices = spec.get("choices")
        if display == "buttons":
            _check_buttons(checker, nid, "input.choices", choices, needs_next=False)
        else:
            _check_list(checker, nid, "input.choices", choices, needs_next=False)
            if display == "text" and isinstance(choices, list) and len(choices) > MAX_LIST_ROWS:
                pass  # a numbered text menu has no WhatsApp limit; the list check is enough
        if isinstance(choices, list):
            for i, choice in enumerate(choices):
                if isinstance(choice, dict):
                    checker.target(nid, f"input.choices[{i}].next", choice.get("next"))


def _check_condition(checker: _Checker, node: dict[str, Any], _flows: set[str] | None) -> None:
    nid = node["id"]
    rules = node.get("rules")
    if not isinstance(rules, list) or not rules:
        checker.error(nid, "rules", "A condition needs at least one rule")
        rules = []
    for i, rule in enumerate(rules):
        where = f"rules[{i}]"
        if not isinstance(rule, dict):
            checker.error(nid, where, "must be an object")
            continue
        when = rule.get("when")
        groups = [k for k in ("all", "any") if isinstance(when, dict) and k in when]
        if len(groups) != 1:
            checker.error(nid, f"{where}.when", 'must be {"all": [...]} or {"any": [...]}')
        else:
            _check_tests(checker, nid, f"{where}.when.{groups[0]}", when[groups[0]])  # type: ignore[index]
        checker.target(nid, f"{where}.next", rule.get("next"), required=True)
    checker.target(nid, "else", node.get("else"))


def _check_tests(checker: _Checker, nid: str, where: str, tests: Any) -> None:
    if not isinstance(tests, list) or not tests:
        checker.error(nid, where, "must be a non-empty list of tests")
        return
    for j, test in enumerate(tests):
        at = f"{where}[{j}]"
        if not isinstance(test, dict):
            checker.error(nid, at, 'must be {"left", "op", "right"}')
            continue
        if not isinstance(test.get("left"), str) or not test["left"]:
            checker.error(nid, f"{at}.left", "is required")
        op = test.get("op")
        if op not in CONDITION_OPS:
            checker.error(nid, f"{at}.op", f"must be one of {', '.join(CONDITION_OPS)}")
        elif op != "is_set" and "right" not in test:
            checker.error(nid, f"{at}.right", f"is required for {op}")
        elif op == "regex" and _bad_regex(test.get("right")):
            checker.error(nid, f"{at}.right", "is not a valid regex")
        elif op in ("gt", "lt") and not _numeric_or_template(test.get("right")):
            checker.error(nid, f"{at}.right", f"must be a number (or a time HH:MM) for {op}")


def _numeric_or_template(value: Any) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return True
    if isinstance(value, str):
        if "{{" in value or re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
            return True
        try:
            float(value.replace(",", "."))
        except ValueError:
            return False
        return True
    return False


def _check_set_variable(checker: _Checker, node: dict[str, Any], _flows: set[str] | None) -> None:
    nid = node["id"]
    pairs: dict[str, Any] = {}
    if node.get("variable") is not None:
        if "value" not in node:
            checker.error(nid, "value", "is required with variable")
        pairs[node["variable"]] = node.get("value")
    variables = node.get("variables")
    if variables is not None:
        if not isinstance(variables, dict):
            checker.error(nid, "variables", "must be an object of name: value")
        else:
            pairs.update(variables)
    if not pairs:
        checker.error(nid, "variable", "A set_variable node needs variable and value")
    for name, value in pairs.items():
        if not isinstance(name, str) or not _VARIABLE.match(name):
            checker.error(nid, "variable", f"{name!r} is not a name of letters, digits and _")
        checker.text(nid, f"variables.{name}", value if isinstance(value, str) else None)
    checker.target(nid, "next", node.get("next"))


_CONTACT_FIELDS = ("name", "email", "attributes", "add_tags", "remove_tags", "opt_out")


def _check_update_contact(checker: _Checker, node: dict[str, Any], _flows: set[str] | None) -> None:
    nid = node["id"]
    if not any(node.get(f) is not None for f in _CONTACT_FIELDS):
        checker.error(nid, "name", f"Set at least one of {', '.join(_CONTACT_FIELDS)}")
    for name in ("name", "email"):
        checker.text(nid, name, node.get(name))
    if node.get("attributes") is not None and not isinstance(node["attributes"], dict):
        checker.error(nid, "attributes", "must be an object")
    for name in ("add_tags", "remove_tags"):
        tags = node.get(name)
        if tags is not None and (
            not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags)
        ):
            checker.error(nid, name, "must be a list of tag names")
    if node.get("opt_out") is not None and not isinstance(node["opt_out"], bool):
        checker.error(nid, "opt_out", "must be true or false")
    checker.target(nid, "next", node.get("next"))


def _check_http(checker: _Checker, node: dict[str, Any], _flows: set[str] | None) -> None:
    nid = node["id"]
    method = str(node.get("method", "GET")).upper()
    if method not in HTTP_METHODS:
        checker.error(nid, "method", f"must be one of {', '.join(HTTP_METHODS)}")
    url = node.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        checker.error(nid, "url", "must be an http(s) URL")
    else:
        checker.text(nid, "url", url)
    timeout = node.get("timeout", 5)
    if (
        not isinstance(timeout, int | float)
        or isinstance(timeout, bool)
        or not 0 < timeout <= MAX_HTTP_TIMEOUT
    ):
        checker.error(nid, "timeout", f"must be more than 0 and at most {MAX_HTTP_TIMEOUT:g} s")
    headers = node.get("headers")
    if headers is not None and (
        not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values())
    ):
        checker.error(nid, "headers", "must be an object of strings")
    mapping = node.get("map")
    if mapping is not None:
        if not isinstance(mapping, dict):
            checker.error(nid, "map", 'must be an object of variable: "$.json.path"')
        else:
            for name, path in mapping.items():
                if not _VARIABLE.match(str(name)):
                    checker.error(nid, f"map.{name}", "is not a name of letters, digits and _")
                elif not isinstance(path, str) or not _JSON_PATH.match(path):
                    checker.error(nid, f"map.{name}", "must be a JSON path like $.data.items[0]")
    checker.target(nid, "next", node.get("next"))
    checker.target(nid, "on_error", node.get("on_error"))


def _check_handoff(checker: _Checker, node: dict[str, Any], _flows: set[str] | None) -> None:
    nid = node["id"]
    checker.text(nid, "text", node.get("text"))
    assign = node.get("assign_to")
    if assign is not None and (
        not isinstance(assign, dict)
        or not (isinstance(assign.get("user_id"), str) or isinstance(assign.get("team"), str))
    ):
        checker.error(nid, "assign_to", 'must be {"user_id": ...} or {"team": ...}')


def _check_delay(checker: _Checker, node: dict[str, Any], _flows: set[str] | None) -> None:
    nid = node["id"]
    seconds = node.get("seconds")
    if (
        not isinstance(seconds, int | float)
        or isinstance(seconds, bool)
        or not 0 < seconds <= MAX_DELAY_SECONDS
    ):
        checker.error(nid, "seconds", f"must be more than 0 and at most {MAX_DELAY_SECONDS}")
    checker.target(nid, "next", node.get("next"))


def _check_jump(checker: _Checker, node: dict[str, Any], flows: set[str] | None) -> None:
    nid = node["id"]
    flow_id = node.get("flow_id")
    if flow_id is None:
        checker.target(nid, "node", node.get("node"), required=True)
    elif flows is not None and str(flow_id) not in flows:
        checker.error(
            nid, "flow_id", f"names a flow of this chatbot that does not exist: {flow_id!r}"
        )


def _check_template_node(checker: _Checker, node: dict[str, Any], _flows: set[str] | None) -> None:
    nid = node["id"]
    _check_template_ref(checker, nid, "template", node.get("template"))
    checker.target(nid, "next", node.get("next"))


def _check_template_ref(checker: _Checker, nid: str, field: str, template: Any) -> None:
    if not isinstance(template, dict):
        checker.error(nid, field, 'must be {"name", "language": {"code"}, "components"}')
        return
    if not isinstance(template.get("name"), str) or not template["name"]:
        checker.error(nid, f"{field}.name", "is required")
    language = template.get("language")
    code = language.get("code") if isinstance(language, dict) else language
    if not isinstance(code, str) or not code:
        checker.error(nid, f"{field}.language", 'is required (e.g. {"code": "en_US"})')
    if template.get("components") is not None and not isinstance(template["components"], list):
        checker.error(nid, f"{field}.components", "must be a list")


def _check_end(checker: _Checker, node: dict[str, Any], _flows: set[str] | None) -> None:
    checker.text(node["id"], "text", node.get("text"))


_CHECKS = {
    "message": _check_message,
    "question": _check_question,
    "condition": _check_condition,
    "set_variable": _check_set_variable,
    "update_contact": _check_update_contact,
    "http": _check_http,
    "handoff": _check_handoff,
    "delay": _check_delay,
    "jump": _check_jump,
    "template": _check_template_node,
    "end": _check_end,
}


def edges(node: dict[str, Any]) -> Iterator[str]:
    """The ids of the nodes this node may lead to (within its flow)."""
    for key in ("next", "on_failure", "on_error", "else"):
        if isinstance(node.get(key), str):
            yield node[key]
    if node.get("type") == "jump" and node.get("flow_id") is None and node.get("node"):
        yield str(node["node"])
    choices: list[Any] = []
    for key in ("buttons",):
        if isinstance(node.get(key), list):
            choices += node[key]
    rows = node.get("list")
    if isinstance(rows, dict):
        rows = rows.get("rows")
    if isinstance(rows, list):
        choices += rows
    spec = node.get("input")
    if isinstance(spec, dict) and isinstance(spec.get("choices"), list):
        choices += spec["choices"]
    for rule in node.get("rules") or []:
        if isinstance(rule, dict):
            choices.append(rule)
    for choice in choices:
        if isinstance(choice, dict) and isinstance(choice.get("next"), str):
            yield choice["next"]


def _unreachable(nodes: list[dict[str, Any]], entry: Any) -> list[Problem]:
    by_id = {n["id"]: n for n in nodes}
    seen: set[str] = set()
    todo = [entry] if entry in by_id else []
    while todo:
        current = todo.pop()
        if current in seen or current not in by_id:
            continue
        seen.add(current)
        todo.extend(edges(by_id[current]))
    return [
        Problem(f"nodes.{n['id']}", f"Node '{n['id']}' cannot be reached from the entry", n["id"])
        for n in nodes
        if n["id"] not in seen
    ]
