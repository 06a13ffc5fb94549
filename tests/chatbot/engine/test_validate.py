"""Validation on save: every rule is a problem naming the node id and the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pytake.chatbot.engine import validate_flow

LEAD_CAPTURE: dict[str, Any] = {
    "name": "Lead capture",
    "type": "main",
    "trigger": {"type": "keyword", "keywords": ["start", "começar"], "match": "exact"},
    "entry": "ask_email",
    "nodes": [
        {"id": "ask_email", "type": "question", "text": "What is your e-mail?",
         "input": {"type": "email"}, "variable": "email",
         "retry_text": "That does not look like an e-mail address.", "max_attempts": 3,
         "next": "menu", "on_failure": "agent"},
        {"id": "menu", "type": "message", "text": "Thanks {{email}}! Anything else?",
         "buttons": [{"id": "sales", "title": "Talk to sales", "next": "agent"},
                     {"id": "no", "title": "No, thanks", "next": "bye"}]},
        {"id": "agent", "type": "handoff", "text": "Passing you to a person."},
        {"id": "bye", "type": "end", "text": "Bye!"},
    ],
}  # fmt: skip


def flow_with(*nodes: dict[str, Any], entry: str = "a", **extra: Any) -> dict[str, Any]:
    return {"name": "t", "entry": entry, "nodes": list(nodes), **extra}


def fields(flow: dict[str, Any]) -> list[str]:
    return [p.field for p in validate_flow(flow).errors]


def test_the_issue_example_is_valid_and_fully_reachable() -> None:
    report = validate_flow(LEAD_CAPTURE)
    assert report.errors == [] and report.warnings == []


def test_unknown_node_type_names_node_and_field() -> None:
    report = validate_flow(flow_with({"id": "a", "type": "teleport"}))
    [problem] = report.errors
    assert problem.field == "nodes.a.type" and problem.node == "a"
    assert "teleport" in problem.message


def test_next_naming_a_missing_node() -> None:
    flow = copy.deepcopy(LEAD_CAPTURE)
    flow["nodes"][1]["buttons"][1]["next"] = "nowhere"
    [problem] = validate_flow(flow).errors
    assert problem.field == "nodes.menu.buttons[1].next"
    assert "nowhere" in problem.message and "menu" in problem.message


def test_no_entry_and_entry_missing() -> None:
    assert fields({"name": "t", "nodes": [{"id": "a", "type": "end"}]}) == ["entry"]
    assert fields(flow_with({"id": "a", "type": "end"}, entry="zz")) == ["entry"]


def test_question_without_variable() -> None:
    flow = copy.deepcopy(LEAD_CAPTURE)
    del flow["nodes"][0]["variable"]
    assert fields(flow) == ["nodes.ask_email.variable"]


def test_button_title_over_twenty_characters() -> None:
    flow = copy.deepcopy(LEAD_CAPTURE)
    flow["nodes"][1]["buttons"][0]["title"] = "Talk to somebody in sales"
    [problem] = validate_flow(flow).errors
    assert problem.field == "nodes.menu.buttons[0].title" and "20" in problem.message


def test_more_than_three_buttons_and_ten_rows() -> None:
    buttons = [{"id": f"b{i}", "title": f"B{i}", "next": "a"} for i in range(4)]
    assert "nodes.a.buttons" in fields(flow_with({"id": "a", "type": "message", "text": "x",
                                                  "buttons": buttons}))  # fmt: skip
    rows = [{"id": f"r{i}", "title": f"R{i}", "next": "a"} for i in range(11)]
    assert "nodes.a.list" in fields(flow_with({"id": "a", "type": "message", "text": "x",
                                               "list": rows}))  # fmt: skip


def test_unreachable_node_is_a_warning_not_an_error() -> None:
    flow = copy.deepcopy(LEAD_CAPTURE)
    flow["nodes"].append({"id": "orphan", "type": "end"})
    report = validate_flow(flow)
    assert report.errors == []
    assert [(w.node, w.field) for w in report.warnings] == [("orphan", "nodes.orphan")]


def test_duplicate_and_missing_ids() -> None:
    assert fields(flow_with({"id": "a", "type": "end"}, {"id": "a", "type": "end"})) == [
        "nodes.a.id"
    ]
    assert fields(flow_with({"id": "a", "type": "end"}, {"type": "end"})) == ["nodes[1].id"]
    assert fields({"name": "t", "entry": "a", "nodes": []}) == ["nodes"]


@pytest.mark.parametrize(
    ("node", "field"),
    [
        ({"id": "a", "type": "message"}, "nodes.a.text"),
        ({"id": "a", "type": "message", "text": "{{ broken"}, "nodes.a.text"),
        ({"id": "a", "type": "message", "media": {"type": "gif", "url": "https://x"}},
         "nodes.a.media.type"),
        ({"id": "a", "type": "question", "text": "?", "variable": "v",
          "input": {"type": "colour"}}, "nodes.a.input.type"),
        ({"id": "a", "type": "question", "text": "?", "variable": "v",
          "input": {"type": "number", "min": 5, "max": 1}}, "nodes.a.input.min"),
        ({"id": "a", "type": "question", "text": "?", "variable": "v",
          "input": {"type": "choice", "choices": []}}, "nodes.a.input.choices"),
        ({"id": "a", "type": "question", "text": "?", "variable": "1bad"}, "nodes.a.variable"),
        ({"id": "a", "type": "question", "text": "?", "variable": "v", "max_attempts": 0},
         "nodes.a.max_attempts"),
        ({"id": "a", "type": "condition", "rules": []}, "nodes.a.rules"),
        ({"id": "a", "type": "condition", "rules": [{"when": {"all": [
            {"left": "x", "op": "near", "right": 1}]}, "next": "a"}]},
         "nodes.a.rules[0].when.all[0].op"),
        ({"id": "a", "type": "condition", "rules": [{"when": {"any": [
            {"left": "x", "op": "regex", "right": "("}]}, "next": "a"}]},
         "nodes.a.rules[0].when.any[0].right"),
        ({"id": "a", "type": "condition", "rules": [{"when": {"all": [
            {"left": "x", "op": "equals", "right": 1}]}}]}, "nodes.a.rules[0].next"),
        ({"id": "a", "type": "set_variable"}, "nodes.a.variable"),
        ({"id": "a", "type": "update_contact"}, "nodes.a.name"),
        ({"id": "a", "type": "update_contact", "add_tags": "vip"}, "nodes.a.add_tags"),
        ({"id": "a", "type": "http", "url": "ftp://x"}, "nodes.a.url"),
        ({"id": "a", "type": "http", "url": "https://x", "timeout": 30}, "nodes.a.timeout"),
        ({"id": "a", "type": "http", "url": "https://x", "method": "BREW"}, "nodes.a.method"),
        ({"id": "a", "type": "http", "url": "https://x", "map": {"v": "data.x"}},
         "nodes.a.map.v"),
        ({"id": "a", "type": "handoff", "assign_to": "bob"}, "nodes.a.assign_to"),
        ({"id": "a", "type": "delay"}, "nodes.a.seconds"),
        ({"id": "a", "type": "delay", "seconds": -1}, "nodes.a.seconds"),
        ({"id": "a", "type": "jump"}, "nodes.a.node"),
        ({"id": "a", "type": "template"}, "nodes.a.template"),
        ({"id": "a", "type": "template", "template": {"name": "hi"}}, "nodes.a.template.language"),
        ({"id": "a", "type": "end", "position": {"x": "left"}}, "nodes.a.position"),
    ],
)  # fmt: skip
def test_each_node_type_checks_its_fields(node: dict[str, Any], field: str) -> None:
    assert field in fields(flow_with(node))


def test_jump_to_another_flow_must_name_one_of_the_chatbot() -> None:
    flow = flow_with({"id": "a", "type": "jump", "flow_id": "f2"})
    assert validate_flow(flow, {"f1"}).errors[0].field == "nodes.a.flow_id"
    assert validate_flow(flow, {"f1", "f2"}).errors == []


@pytest.mark.parametrize(
    ("trigger", "field"),
    [
        ({"type": "sometimes"}, "trigger.type"),
        ({"type": "keyword"}, "trigger.keywords"),
        ({"type": "keyword", "keywords": ["x"], "match": "fuzzy"}, "trigger.match"),
        ({"type": "keyword", "keywords": ["("], "match": "regex"}, "trigger.keywords[0]"),
        ({"type": "button"}, "trigger.payload"),
    ],
)
def test_trigger_rules(trigger: dict[str, Any], field: str) -> None:
    assert fields(flow_with({"id": "a", "type": "end"}, trigger=trigger)) == [field]


def test_every_node_type_valid_when_complete() -> None:
    nodes = [
        {"id": "a", "type": "set_variable", "variable": "n", "value": "1", "next": "b"},
        {"id": "b", "type": "update_contact", "add_tags": ["lead"], "next": "c"},
        {"id": "c", "type": "http", "url": "https://api.example.com/{{n}}", "map": {"p": "$.a[0]"},
         "next": "d", "on_error": "e"},
        {"id": "d", "type": "condition", "rules": [{"when": {"any": [
            {"left": "p", "op": "is_set"}]}, "next": "e"}], "else": "f"},
        {"id": "e", "type": "delay", "seconds": 5, "next": "f"},
        {"id": "f", "type": "template", "template": {"name": "hello", "language": {"code": "en"}},
         "next": "g"},
        {"id": "g", "type": "jump", "node": "h"},
        {"id": "h", "type": "handoff", "assign_to": {"team": "tech"}, "position": {"x": 1, "y": 2}},
    ]  # fmt: skip
    assert validate_flow(flow_with(*nodes)).errors == []
