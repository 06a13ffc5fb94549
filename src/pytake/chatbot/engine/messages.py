"""The messages nodes send, as Graph content: text, media, reply buttons, lists, menus."""

from __future__ import annotations

from typing import Any

from pytake.chatbot.engine.inputs import choices_of
from pytake.chatbot.engine.text import render


def text_message(body: str) -> tuple[str, dict[str, Any]]:
    return "text", {"body": body}


def node_options(node: dict[str, Any]) -> list[dict[str, Any]]:
    if node.get("type") == "question":
        return choices_of(node.get("input") or {})
    if node.get("buttons"):
        return [b for b in node["buttons"] if isinstance(b, dict)]
    rows = node.get("list")
    if isinstance(rows, dict):
        rows = rows.get("rows")
    return [r for r in rows or [] if isinstance(r, dict)]


def node_message(
    node: dict[str, Any], text: Any, values: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """A message node as Graph content: text, media, reply buttons or a list."""
    body = render(text, values) if text else ""
    media = node.get("media")
    if node.get("buttons"):
        return "interactive", buttons_message(body, node["buttons"], media, values)
    if node.get("list"):
        rows = node["list"]
        label = rows.get("button", "Options") if isinstance(rows, dict) else "Options"
        return "interactive", list_message(body, node_options(node), label)
    if media:
        kind = str(media.get("type", "image"))
        content: dict[str, Any] = {"link": render(media.get("url") or media.get("link"), values)}
        caption = body or media.get("caption")
        if caption and kind != "audio":
            content["caption"] = render(caption, values)
        if kind == "document" and media.get("filename"):
            content["filename"] = media["filename"]
        return kind, content
    return text_message(body)


def question_message(
    node: dict[str, Any], text: Any, values: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """A question, with its choices as reply buttons (a list past 3) or a numbered menu."""
    body = render(text, values) if text else ""
    spec = node.get("input") or {}
    choices = choices_of(spec)
    if spec.get("type") != "choice" or not choices:
        return text_message(body)
    display = spec.get("display", "buttons")
    if display == "text":
        menu = "\n".join(f"{i}. {c.get('title')}" for i, c in enumerate(choices, 1))
        return text_message(f"{body}\n\n{menu}" if body else menu)
    if display == "buttons" and len(choices) <= 3:
        return "interactive", buttons_message(body, choices, None, values)
    return "interactive", list_message(body, choices, str(spec.get("button", "Options")))


def buttons_message(
    body: str, buttons: list[Any], media: dict[str, Any] | None, values: dict[str, Any]
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "type": "button",
        "body": {"text": body or "\u200b"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": str(b["id"]), "title": str(b["title"])[:20]}}
                for b in buttons
                if isinstance(b, dict)
            ]
        },
    }
    if media and media.get("type") == "image":
        content["header"] = {
            "type": "image",
            "image": {"link": render(media.get("url") or media.get("link"), values)},
        }
    return content


def list_message(body: str, rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
    items = []
    for row in rows[:10]:
        item = {"id": str(row["id"]), "title": str(row["title"])[:24]}
        if row.get("description"):
            item["description"] = str(row["description"])[:72]
        items.append(item)
    return {
        "type": "list",
        "body": {"text": body or "\u200b"},
        "action": {"button": label[:20], "sections": [{"title": label[:24], "rows": items}]},
    }
