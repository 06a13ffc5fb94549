"""Validation of `POST /{phone_number_id}/messages` bodies the way the Graph API answers them."""

from __future__ import annotations

from typing import Any

from pytake.whatsapp.provider import MEDIA_TYPES, MESSAGE_TYPES
from pytake.whatsapp.simulator.state import SimState, SimTemplate

_INTERACTIVE = {
    "button",
    "list",
    "cta_url",
    "product",
    "product_list",
    "flow",
    "location_request_message",
}


class GraphFault(Exception):
    """A Graph API error answer: `{"error": {...}}` with an HTTP status."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        details: str | None = None,
        http_status: int = 400,
        subcode: int | None = None,
        error_type: str = "OAuthException",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.http_status = http_status
        self.subcode = subcode
        self.error_type = error_type

    def body(self, trace_id: str) -> dict[str, Any]:
        """The JSON error body Meta sends."""
        error: dict[str, Any] = {
            "message": f"(#{self.code}) {self.message}" if self.code != 190 else self.message,
            "type": self.error_type,
            "code": self.code,
            "fbtrace_id": trace_id,
        }
        if self.details is not None:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        return {"error": error}


def _invalid(details: str) -> GraphFault:
    return GraphFault(100, "Invalid parameter", details=details)


def _require(obj: dict[str, Any], key: str, where: str) -> Any:
    value = obj.get(key)
    if value is None or value == "":
        raise GraphFault(100, f"The parameter {where}['{key}'] is required.", details=None)
    return value


def _max_len(value: Any, limit: int, where: str) -> None:
    if not isinstance(value, str) or len(value) > limit:
        raise _invalid(f"{where} must be a string of at most {limit} characters")


def validate_send(body: dict[str, Any], state: SimState, waba_id: str) -> str:
    """Check an envelope and its per-type object; returns the message type."""
    if body.get("messaging_product") != "whatsapp":
        raise GraphFault(100, "The parameter messaging_product is required.")
    if not body.get("to") and not body.get("recipient"):
        raise GraphFault(100, "The parameter to is required.")
    kind = body.get("type") or "text"  # Graph defaults the type to text
    if kind not in MESSAGE_TYPES:
        raise GraphFault(100, f"Param type must be one of {{{', '.join(sorted(MESSAGE_TYPES))}}}")
    obj = body.get(kind)
    if obj is None:
        raise GraphFault(100, f"The parameter {kind} is required.")
    context = body.get("context")
    if context is not None and not (isinstance(context, dict) and context.get("message_id")):
        raise _invalid("context.message_id must be a message id")
    callback = body.get("biz_opaque_callback_data")
    if callback is not None:
        _max_len(callback, 512, "biz_opaque_callback_data")
    _VALIDATORS[kind](obj, state, waba_id)
    return str(kind)


def _text(obj: Any, state: SimState, waba_id: str) -> None:
    if not isinstance(obj, dict):
        raise _invalid("text must be an object")
    _max_len(_require(obj, "body", "text"), 4096, "text.body")


def _media(kind: str) -> Any:
    def check(obj: Any, state: SimState, waba_id: str) -> None:
        if not isinstance(obj, dict):
            raise _invalid(f"{kind} must be an object")
        has_id, has_link = bool(obj.get("id")), bool(obj.get("link"))
        if has_id == has_link:
            raise _invalid(f"{kind} needs exactly one of id or link")
        if has_link and not str(obj["link"]).startswith(("http://", "https://")):
            raise _invalid(f"{kind}.link must be an http(s) URL")
        if has_id and str(obj["id"]) not in state.media:
            raise _invalid(f"{kind}.id {obj['id']} is not a media id of this number")
        if kind in ("audio", "sticker") and "caption" in obj:
            raise _invalid(f"{kind} does not take a caption")

    return check


def _location(obj: Any, state: SimState, waba_id: str) -> None:
    if not isinstance(obj, dict):
        raise _invalid("location must be an object")
    for key in ("latitude", "longitude"):
        value = _require(obj, key, "location")
        try:
            float(value)
        except (TypeError, ValueError) as exc:
            raise _invalid(f"location.{key} must be a number") from exc


def _contacts(obj: Any, state: SimState, waba_id: str) -> None:
    if not isinstance(obj, list) or not obj:
        raise _invalid("contacts must be a non-empty array")
    for contact in obj:
        name = contact.get("name") if isinstance(contact, dict) else None
        if not isinstance(name, dict) or not name.get("formatted_name"):
            raise GraphFault(
                131008,
                "Required parameter is missing",
                details="contacts[].name.formatted_name is required",
            )


def _reaction(obj: Any, state: SimState, waba_id: str) -> None:
    if not isinstance(obj, dict):
        raise _invalid("reaction must be an object")
    _require(obj, "message_id", "reaction")
    if not isinstance(obj.get("emoji"), str):
        raise GraphFault(100, "The parameter reaction['emoji'] is required.")


def _interactive(obj: Any, state: SimState, waba_id: str) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in _INTERACTIVE:
        raise _invalid(f"interactive.type must be one of {sorted(_INTERACTIVE)}")
    body = obj.get("body")
    if obj["type"] in ("button", "list", "cta_url"):
        if not isinstance(body, dict) or not body.get("text"):
            raise GraphFault(
                131008, "Required parameter is missing", details="interactive.body.text is required"
            )
        _max_len(body["text"], 1024, "interactive.body.text")
    action = obj.get("action")
    if not isinstance(action, dict):
        raise GraphFault(
            131008, "Required parameter is missing", details="interactive.action is required"
        )
    checks = {"button": _buttons, "list": _list, "cta_url": _cta_url}
    if obj["type"] in checks:
        checks[obj["type"]](action)


def _buttons(action: dict[str, Any]) -> None:
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise GraphFault(
            131009, "Parameter value is not valid", details="buttons must have 1 to 3 items"
        )
    ids = set()
    for button in buttons:
        reply = button.get("reply") if isinstance(button, dict) else None
        if button.get("type") != "reply" or not isinstance(reply, dict):
            raise _invalid("each button must be {type: reply, reply: {id, title}}")
        _max_len(reply.get("title"), 20, "button title")
        _max_len(reply.get("id"), 256, "button id")
        ids.add(reply["id"])
    if len(ids) != len(buttons):
        raise GraphFault(
            131009, "Parameter value is not valid", details="button ids must be unique"
        )


def _list(action: dict[str, Any]) -> None:
    _max_len(action.get("button"), 20, "list button label")
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        raise GraphFault(
            131009, "Parameter value is not valid", details="sections must have 1 to 10 items"
        )
    rows = [row for section in sections for row in (section.get("rows") or [])]
    if not 1 <= len(rows) <= 10:
        raise GraphFault(
            131009, "Parameter value is not valid", details="a list has 1 to 10 rows in total"
        )
    for row in rows:
        _max_len(row.get("id"), 200, "row id")
        _max_len(row.get("title"), 24, "row title")
        if row.get("description") is not None:
            _max_len(row["description"], 72, "row description")


def _cta_url(action: dict[str, Any]) -> None:
    params = action.get("parameters")
    if action.get("name") != "cta_url" or not isinstance(params, dict):
        raise _invalid("cta_url action needs name cta_url and parameters")
    _max_len(params.get("display_text"), 20, "display_text")
    if not str(params.get("url", "")).startswith(("http://", "https://")):
        raise _invalid("cta_url url must be an http(s) URL")


def _template(obj: Any, state: SimState, waba_id: str) -> None:
    if not isinstance(obj, dict):
        raise _invalid("template must be an object")
    name = _require(obj, "name", "template")
    language = obj.get("language")
    code = language.get("code") if isinstance(language, dict) else None
    if not code:
        raise GraphFault(100, "The parameter template['language']['code'] is required.")
    template = state.templates.get((waba_id, str(name), str(code)))
    if template is None or template.status not in ("APPROVED", "PAUSED", "DISABLED"):
        raise GraphFault(
            132001,
            "Template name does not exist in the translation",
            details=f"template name ({name}) does not exist in {code}",
        )
    if template.status == "PAUSED":
        raise GraphFault(132015, "Template is Paused", details=f"template {name} is paused")
    if template.status == "DISABLED":
        raise GraphFault(132016, "Template is disabled", details=f"template {name} is disabled")
    _template_params(template, obj.get("components") or [])


def _template_params(template: SimTemplate, components: list[Any]) -> None:
    for component_type in ("HEADER", "BODY"):
        given = sum(
            len(c.get("parameters") or [])
            for c in components
            if isinstance(c, dict) and str(c.get("type", "")).upper() == component_type
        )
        expected = template.expected_params(component_type)
        if given != expected:
            raise GraphFault(
                132000,
                "Number of parameters does not match the expected number of params",
                details=(
                    f"{component_type.lower()}: number of localizable_params ({given}) does not "
                    f"match the expected number of params ({expected})"
                ),
            )
        if template.parameter_format == "NAMED" and expected:
            names = {
                p.get("parameter_name")
                for c in components
                if isinstance(c, dict) and str(c.get("type", "")).upper() == component_type
                for p in c.get("parameters") or []
                if isinstance(p, dict)
            }
            if names != template.variables(component_type):
                raise GraphFault(
                    132000,
                    "Number of parameters does not match the expected number of params",
                    details=f"{component_type.lower()}: parameter_name must name each of "
                    f"{sorted(template.variables(component_type))}",
                )


_VALIDATORS: dict[str, Any] = {
    "text": _text,
    "location": _location,
    "contacts": _contacts,
    "reaction": _reaction,
    "interactive": _interactive,
    "template": _template,
    **{kind: _media(kind) for kind in MEDIA_TYPES},
}
