"""A template rendered with values, as the customer's phone shows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytake.template.parameters import Variables, _as_mapping, fill, missing_variables, slots

# WhatsApp's fixed texts of AUTHENTICATION templates (English; the phone shows them localised).
AUTH_BODY = "{{1}} is your verification code."
AUTH_SECURITY = "For your security, do not share this code."
AUTH_FOOTER = "This code expires in {minutes} minutes."
COPY_CODE_TEXT = "Copy offer code"


@dataclass
class Preview:
    """What the customer sees; `missing` lists variables without a value (left as `{{…}}`)."""

    header: str | None
    body: str
    footer: str | None
    buttons: list[dict[str, Any]]
    text: str
    missing: list[str]
    unused: list[str] = field(default_factory=list)


def _header(component: dict[str, Any] | None, values: dict[str, Any], named: bool) -> str | None:
    if component is None:
        return None
    fmt = str(component.get("format") or "TEXT").upper()
    if fmt == "TEXT":
        text = str(component.get("text") or "")
        if named:
            return fill(text, {k: str(v) for k, v in values.items()})
        return fill(text, {"1": str(values["header.1"])} if "header.1" in values else {})
    value = values.get("header")
    if fmt == "LOCATION":
        if not isinstance(value, dict):
            return "[location]"
        where = value.get("name") or f"{value.get('latitude')},{value.get('longitude')}"
        return f"[location: {where}]"
    return f"[{fmt.lower()}: {value}]" if value else f"[{fmt.lower()}]"


def _button(index: int, button: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    kind = str(button.get("type") or "").upper()
    shown: dict[str, Any] = {"type": kind, "text": button.get("text")}
    if kind == "URL":
        url = str(button.get("url") or "")
        value = values.get(f"button.{index}")
        shown["url"] = url.replace("{{1}}", str(value)) if value is not None else url
    elif kind == "PHONE_NUMBER":
        shown["phone_number"] = button.get("phone_number")
    elif kind == "COPY_CODE":
        shown["text"] = button.get("text") or COPY_CODE_TEXT
        shown["code"] = _text(values.get(f"button.{index}"))
    elif kind == "OTP":
        shown["text"] = button.get("text") or "Copy code"
        shown["code"] = _text(values.get("1"))
    return shown


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _button_line(button: dict[str, Any]) -> str:
    extra = button.get("url") or button.get("phone_number") or button.get("code")
    return f"[{button['text']}]" + (f" {extra}" if extra else "")


def render_preview(template: Any, variables: Variables | None = None) -> Preview:
    """Header, body, footer and buttons as text with the values filled in; reports missing
    variables (and given ones the template does not use) instead of failing."""
    values = _as_mapping(variables)
    named = template.parameter_format == "NAMED"
    by_type = {str(c.get("type")).upper(): c for c in template.components or []}
    text_values = {k: str(v) for k, v in values.items() if not k.startswith(("header", "button."))}
    if named:
        text_values = {k: str(v) for k, v in values.items()}
    body_component = by_type.get("BODY") or {}
    footer_component = by_type.get("FOOTER")
    if template.category == "AUTHENTICATION":
        body = fill(AUTH_BODY, text_values)
        if body_component.get("add_security_recommendation"):
            body += " " + AUTH_SECURITY
        minutes = (footer_component or {}).get("code_expiration_minutes")
        footer = AUTH_FOOTER.format(minutes=minutes) if minutes else None
    else:
        body = fill(str(body_component.get("text") or ""), text_values)
        footer = str(footer_component["text"]) if footer_component else None
    header = _header(by_type.get("HEADER"), values, named)
    buttons = [
        _button(index, button, values)
        for index, button in enumerate((by_type.get("BUTTONS") or {}).get("buttons") or [])
        if isinstance(button, dict)
    ]
    lines = [part for part in (header, body, footer) if part]
    lines += [_button_line(b) for b in buttons]
    used = {slot.key for slot in slots(template)}
    return Preview(
        header=header,
        body=body,
        footer=footer,
        buttons=buttons,
        text="\n".join(lines),
        missing=missing_variables(template, values),
        unused=[key for key in values if key not in used],
    )
