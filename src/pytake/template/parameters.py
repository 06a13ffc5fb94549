"""A template's variables, and the Graph `template` message built from values for them.

Variables are named the way a caller thinks of them:
- BODY: POSITIONAL templates by number as a string (`"1"`, `"2"`…), NAMED templates by name
  (`"first_name"`); AUTHENTICATION templates take the code as `"1"`.
- HEADER: a text header's variable is `"header.1"` (POSITIONAL) or its name (NAMED); an
  IMAGE / VIDEO / DOCUMENT header takes `"header"`: a link (`https://…`) or a media id; a
  LOCATION header takes `"header"`: `{latitude, longitude, name?, address?}`.
- BUTTONS: the variable of a URL button (its `{{1}}` suffix) or a COPY_CODE button's code is
  `"button.<index>"`, index being the button's position in the BUTTONS component.

Everything here is pure (no database, no HTTP): campaigns, chatbots and sending share it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pytake.errors import FieldError, ValidationFailed
from pytake.template.rules import MEDIA_FORMATS, PLACEHOLDER, placeholders

SlotKind = Literal["text", "image", "video", "document", "location", "coupon_code", "otp"]
Variables = Mapping[str, Any] | Sequence[Any]

# Meta refuses text parameters with these (error 132018 / "Param text cannot have new-line").
_BAD_PARAMETER_TEXT = re.compile(r"[\n\t]| {5,}")


@dataclass(frozen=True, slots=True)
class Slot:
    """One value a send must give: where it goes and under which variable key."""

    key: str
    component: Literal["header", "body", "button"]
    kind: SlotKind
    name: str | None = None  # the placeholder inside the component's text ("1", "first_name")
    button_index: int | None = None


def _components(template: Any) -> list[dict[str, Any]]:
    components = template.components if not isinstance(template, list) else template
    return [c for c in components or [] if isinstance(c, dict)]


def _of_type(template: Any, kind: str) -> dict[str, Any] | None:
    return next((c for c in _components(template) if str(c.get("type")).upper() == kind), None)


def slots(template: Any) -> list[Slot]:
    """Every value a send of this template needs, in Graph order (header, body, buttons)."""
    named = template.parameter_format == "NAMED"
    result: list[Slot] = []
    header = _of_type(template, "HEADER")
    if header is not None:
        fmt = str(header.get("format") or "TEXT").upper()
        if fmt == "TEXT":
            for name in placeholders(str(header.get("text") or "")):
                result.append(Slot(name if named else f"header.{name}", "header", "text", name))
        elif fmt in MEDIA_FORMATS or fmt == "LOCATION":
            result.append(Slot("header", "header", fmt.lower()))  # type: ignore[arg-type]
    body = _of_type(template, "BODY")
    if template.category == "AUTHENTICATION":
        result.append(Slot("1", "body", "text", "1"))
    elif body is not None:
        names = placeholders(str(body.get("text") or ""))
        if not named:
            names = sorted(names, key=lambda n: int(n) if n.isdigit() else 0)
        result += [Slot(name, "body", "text", name) for name in names]
    buttons = _of_type(template, "BUTTONS")
    for index, button in enumerate((buttons or {}).get("buttons") or []):
        kind = str(button.get("type") or "").upper()
        if kind == "URL" and placeholders(str(button.get("url") or "")):
            result.append(Slot(f"button.{index}", "button", "text", button_index=index))
        elif kind == "COPY_CODE":
            result.append(Slot(f"button.{index}", "button", "coupon_code", button_index=index))
        elif kind == "OTP" and str(button.get("otp_type") or "").upper() != "ZERO_TAP":
            # The one-time code goes in the body and again in the OTP button.
            result.append(Slot("1", "button", "otp", button_index=index))
    return result


def variable_names(template: Any, *, plan: list[Slot] | None = None) -> list[str]:
    """The variable keys a caller must give for this template (each once; `plan`: as for
    `send_components`)."""
    return list(dict.fromkeys(slot.key for slot in (slots(template) if plan is None else plan)))


def _as_mapping(variables: Variables | None) -> dict[str, Any]:
    if variables is None:
        return {}
    if isinstance(variables, Mapping):
        return {str(k): v for k, v in variables.items()}
    if isinstance(variables, str | bytes):
        raise ValidationFailed.on("variables", "must be an object or a list of values")
    return {str(index): value for index, value in enumerate(variables, start=1)}


def missing_variables(
    template: Any, variables: Variables | None, *, plan: list[Slot] | None = None
) -> list[str]:
    """Variable keys the template needs that `variables` lacks (or leaves empty)."""
    given = _as_mapping(variables)
    return [key for key in variable_names(template, plan=plan) if _blank(given.get(key))]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text_value(value: Any, key: str, errors: list[FieldError]) -> str:
    text = value if isinstance(value, str) else str(value)
    if _BAD_PARAMETER_TEXT.search(text):
        errors.append(
            FieldError(
                f"variables.{key}",
                "WhatsApp refuses template values with new lines, tabs or more than 4 spaces "
                "in a row",
            )
        )
    return text


def _media_parameter(kind: str, value: Any, key: str, errors: list[FieldError]) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {"type": kind, kind: dict(value)}
    text = str(value).strip()
    if text.startswith(("https://", "http://")):
        return {"type": kind, kind: {"link": text}}
    if text.isdigit():
        return {"type": kind, kind: {"id": text}}
    errors.append(FieldError(f"variables.{key}", f"a {kind} header needs a link or a media id"))
    return {"type": kind, kind: {"link": text}}


def _parameter(slot: Slot, value: Any, named: bool, errors: list[FieldError]) -> dict[str, Any]:
    if slot.kind == "text" or slot.kind == "otp":
        parameter: dict[str, Any] = {"type": "text", "text": _text_value(value, slot.key, errors)}
        if named and slot.name is not None and slot.component != "button":
            parameter["parameter_name"] = slot.name
        return parameter
    if slot.kind == "coupon_code":
        return {"type": "coupon_code", "coupon_code": str(value)}
    if slot.kind == "location":
        if not isinstance(value, Mapping) or "latitude" not in value or "longitude" not in value:
            errors.append(
                FieldError(f"variables.{slot.key}", "a LOCATION header needs {latitude, longitude}")
            )
            return {"type": "location", "location": {}}
        return {"type": "location", "location": dict(value)}
    return _media_parameter(slot.kind, value, slot.key, errors)


def send_components(
    template: Any, variables: Variables | None, *, plan: list[Slot] | None = None
) -> list[dict[str, Any]]:
    """The Graph `template.components` for these values (422 naming each missing variable).

    Keys the template does not use are ignored (a campaign's variables may serve other
    messages too); NAMED templates' text values carry `parameter_name`. `plan` is
    `slots(template)` worked out once by a caller sending the template many times.
    """
    given = _as_mapping(variables)
    plan = slots(template) if plan is None else plan
    missing = missing_variables(template, given, plan=plan)
    if missing:
        raise ValidationFailed(
            "Missing template variables: " + ", ".join(missing),
            details=[FieldError(f"variables.{key}", "required by the template") for key in missing],
        )
    named = template.parameter_format == "NAMED"
    errors: list[FieldError] = []
    header: list[dict[str, Any]] = []
    body: list[dict[str, Any]] = []
    buttons: list[dict[str, Any]] = []
    for slot in plan:
        parameter = _parameter(slot, given[slot.key], named, errors)
        if slot.component == "header":
            header.append(parameter)
        elif slot.component == "body":
            body.append(parameter)
        else:
            sub_type = {"coupon_code": "copy_code"}.get(slot.kind, "url")
            buttons.append(
                {
                    "type": "button",
                    "sub_type": sub_type,
                    "index": slot.button_index,
                    "parameters": [parameter],
                }
            )
    if errors:
        raise ValidationFailed(f"{errors[0].field}: {errors[0].message}", details=errors)
    components: list[dict[str, Any]] = []
    if header:
        components.append({"type": "header", "parameters": header})
    if body:
        components.append({"type": "body", "parameters": body})
    return components + buttons


def template_message(
    template: Any, variables: Variables | None = None, *, plan: list[Slot] | None = None
) -> dict[str, Any]:
    """The Graph `template` object of a send: `{name, language: {code}, components?}`
    (`plan`: as for `send_components`)."""
    message: dict[str, Any] = {
        "name": template.name,
        "language": {"code": template.language},
    }
    components = send_components(template, variables, plan=plan)
    if components:
        message["components"] = components
    return message


# -- checking what a caller built by hand -------------------------------------------------------


def _given_parameters(components: Sequence[Any]) -> dict[tuple[str, int | None], list[Any]]:
    given: dict[tuple[str, int | None], list[Any]] = {}
    for component in components:
        if not isinstance(component, Mapping):
            continue
        kind = str(component.get("type") or "").lower()
        parameters = component.get("parameters") or []
        index: int | None = None
        if kind == "button":
            try:
                index = int(component.get("index"))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                index = -1
        given.setdefault((kind, index), []).extend(parameters)
    return given


def check_send_parameters(template: Any, components: Sequence[Any] | None) -> None:
    """A send that names this template gives exactly the parameters it takes (else a 422
    naming each missing or extra one); NAMED templates' body and header parameters must carry
    the right `parameter_name`."""
    given = _given_parameters(components or [])
    expected: dict[tuple[str, int | None], list[Slot]] = {}
    for slot in slots(template):
        where: tuple[str, int | None] = (slot.component, slot.button_index)
        expected.setdefault(where, []).append(slot)
    errors: list[FieldError] = []
    for where in sorted(set(given) | set(expected), key=lambda w: (w[0], w[1] or 0)):
        field = _field(where)
        want, got = expected.get(where, []), given.get(where, [])
        if len(got) != len(want):
            errors.append(
                FieldError(
                    field,
                    f"the template takes {len(want)} parameter(s) here, {len(got)} given"
                    + _expected_hint(want),
                )
            )
            continue
        if template.parameter_format == "NAMED" and where[0] != "button":
            names = [p.get("parameter_name") if isinstance(p, Mapping) else None for p in got]
            wanted = [s.name for s in want if s.kind == "text" and s.name is not None]
            if wanted and sorted(str(n) for n in names) != sorted(wanted):
                errors.append(
                    FieldError(field, "parameter_name must be each of: " + ", ".join(wanted))
                )
    if errors:
        raise ValidationFailed(
            f"The parameters do not match template '{template.name}' ({template.language}): "
            f"{errors[0].field}: {errors[0].message}",
            details=errors,
        )


def _field(where: tuple[str, int | None]) -> str:
    kind, index = where
    return (
        f"template.components.button[{index}]"
        if kind == "button"
        else f"template.components.{kind}"
    )


def _expected_hint(want: list[Slot]) -> str:
    names = [s.name for s in want if s.name is not None]
    return f" ({', '.join('{{' + n + '}}' for n in names)})" if names else ""


def fill(text: str, values: Mapping[str, str]) -> str:
    """The text with each `{{name}}` replaced by its value (unknown ones left as they are)."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)
