"""Meta's rules for a template, checked before anything is submitted.

Components arrive in Meta's own shape (what `POST /{waba_id}/message_templates` takes, and what
Meta's documentation shows): `type` in either case, `example.header_text`,
`example.body_text: [[...]]`, `example.body_text_named_params: [{param_name, example}]`,
`example.header_handle`, buttons with `type`, `text`, `url`, `phone_number`, `example`...
Every rule Meta would reject is a FieldError naming the component and field
(`components[1].example.body_text`); all of them are reported at once.

`normalized` returns the components as Meta lists them back: component, format and button
types upper-case, everything else as given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytake.errors import FieldError, ValidationFailed

NAME_MAX = 512
NAME_PATTERN = re.compile(r"^[a-z0-9_]+$")
BODY_MAX = 1024
HEADER_TEXT_MAX = 60
FOOTER_MAX = 60
BUTTON_TEXT_MAX = 25
BUTTONS_MAX = 10
URL_MAX = 2000
PHONE_MAX = 20
COPY_CODE_MAX = 15
CODE_EXPIRATION_RANGE = (1, 90)
MEDIA_FORMATS = ("IMAGE", "VIDEO", "DOCUMENT")
HEADER_FORMATS = ("TEXT", *MEDIA_FORMATS, "LOCATION")
SUPPORTED_COMPONENTS = ("HEADER", "BODY", "FOOTER", "BUTTONS")
# How many of each button type one template may have (Meta's limits).
BUTTON_LIMITS = {
    "QUICK_REPLY": BUTTONS_MAX,
    "URL": 2,
    "PHONE_NUMBER": 1,
    "COPY_CODE": 1,
    "OTP": 1,
    "FLOW": 1,
    "MPM": 1,
    "CATALOG": 1,
}
OTP_TYPES = ("COPY_CODE", "ONE_TAP", "ZERO_TAP")

# Meta's supported template languages (its "Supported languages" list).
LANGUAGES = frozenset(
    """
    af sq ar ar_EG ar_AE ar_LB ar_MA ar_QA az be_BY bn bn_IN bg ca zh_CN zh_HK zh_TW hr cs da
    prs_AF nl nl_BE en en_GB en_US en_AE en_AU en_CA en_GH en_IE en_IN en_JM en_MY en_NZ
    en_QA en_SG en_UG en_ZA et fil fi fr fr_BE fr_CA fr_CH fr_CI fr_MA ka de de_AT de_CH el
    gu ha he hi hu id ga it ja kn kk rw_RW ko ky_KG lo lv lt mk ms ml mr nb ps_AF fa pl pt_BR
    pt_PT pa ro ru sr si_LK sk sl es es_AR es_CL es_CO es_CR es_DO es_EC es_HN es_MX es_PA
    es_PE es_ES es_UY sw sv ta te th tr uk ur uz vi zu
    """.split()  # noqa: SIM905 - a list of 110 codes reads better as words
)

# Anything between double braces is meant as a variable; what is inside decides if it is one.
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
POSITIONAL_NAME = re.compile(r"^[1-9][0-9]*$")
NAMED_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def normalize_language(code: str) -> str:
    """`pt-BR` (as some webhooks spell it) → `pt_BR`."""
    return code.strip().replace("-", "_")


def placeholders(text: str) -> list[str]:
    """The variable names in a text, in order of appearance, each once."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


@dataclass
class _Check:
    """Collects the errors of one template."""

    parameter_format: str
    category: str
    errors: list[FieldError]

    def fail(self, field: str, message: str) -> None:
        self.errors.append(FieldError(field, message))

    def text(
        self, value: Any, field: str, limit: int, what: str, *, required: bool = True
    ) -> str | None:
        if value is None:
            if required:
                self.fail(field, f"{what} is required")
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(field, f"{what} must be a non-empty string")
            return None
        if len(value) > limit:
            self.fail(field, f"{what} is at most {limit} characters (got {len(value)})")
        return value

    def variables(self, text: str, field: str, what: str) -> list[str]:
        """The text's variables, each checked against the template's parameter_format."""
        names = placeholders(text)
        positional = self.parameter_format == "POSITIONAL"
        pattern = POSITIONAL_NAME if positional else NAMED_NAME
        for name in names:
            if not pattern.match(name):
                shape = (
                    "{{1}}, {{2}}… (parameter_format POSITIONAL)"
                    if positional
                    else "{{name}} in lowercase letters, digits and underscores, starting "
                    "with a letter (parameter_format NAMED)"
                )
                self.fail(field, f"{what} variable {{{{{name}}}}} is not valid: use {shape}")
        valid = [n for n in names if pattern.match(n)]
        if positional and valid:
            numbers = sorted(int(n) for n in valid)
            if numbers != list(range(1, len(numbers) + 1)):
                self.fail(
                    field,
                    f"{what} variables must be numbered {{{{1}}}} to {{{{{len(numbers)}}}}} "
                    f"without gaps (got {', '.join(f'{{{{{n}}}}}' for n in numbers)})",
                )
        return valid


def _upper(value: Any) -> str:
    return value.upper() if isinstance(value, str) else ""


def _example(component: dict[str, Any]) -> dict[str, Any]:
    example = component.get("example")
    return example if isinstance(example, dict) else {}


def _check_examples(
    check: _Check, names: list[str], example: dict[str, Any], field: str, kind: str
) -> None:
    """`header` or `body` examples: positional `<kind>_text`, named `<kind>_text_named_params`."""
    if not names:
        return
    if check.parameter_format == "NAMED":
        key = f"{kind}_text_named_params"
        given = example.get(key)
        where = f"{field}.example.{key}"
        if not isinstance(given, list) or not all(
            isinstance(p, dict) and isinstance(p.get("param_name"), str) for p in given
        ):
            check.fail(where, "required: a list of {param_name, example}, one per variable")
            return
        for index, param in enumerate(given):
            if not isinstance(param.get("example"), str) or not param["example"].strip():
                check.fail(f"{where}[{index}].example", "must be a non-empty string")
        named = [p["param_name"] for p in given]
        missing = [n for n in names if n not in named]
        extra = [n for n in named if n not in names]
        if missing:
            check.fail(where, "no example for " + ", ".join(missing))
        if extra:
            check.fail(where, "examples for variables the text does not use: " + ", ".join(extra))
        return
    key = f"{kind}_text"
    where = f"{field}.example.{key}"
    values = example.get(key)
    if kind == "body":
        # Body examples are a list holding one list of values (Meta's shape).
        if not isinstance(values, list) or len(values) != 1 or not isinstance(values[0], list):
            check.fail(where, "required: [[value, ...]] with one value per variable")
            return
        values = values[0]
    if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
        check.fail(where, "required: one non-empty example string per variable")
        return
    if len(values) != len(names):
        check.fail(where, f"{len(names)} variable(s) but {len(values)} example value(s)")


def _check_header(check: _Check, component: dict[str, Any], field: str) -> None:
    if check.category == "AUTHENTICATION":
        check.fail(field, "AUTHENTICATION templates have no HEADER")
        return
    fmt = _upper(component.get("format"))
    if fmt not in HEADER_FORMATS:
        check.fail(f"{field}.format", "must be one of " + ", ".join(HEADER_FORMATS))
        return
    example = _example(component)
    if fmt == "TEXT":
        text = check.text(component.get("text"), f"{field}.text", HEADER_TEXT_MAX, "HEADER text")
        if text is None:
            return
        names = check.variables(text, f"{field}.text", "HEADER")
        if len(names) > 1:
            check.fail(f"{field}.text", "HEADER text takes at most one variable")
        _check_examples(check, names, example, field, "header")
        return
    if component.get("text") is not None:
        check.fail(f"{field}.text", f"a {fmt} header has no text")
    if fmt in MEDIA_FORMATS:
        handles = example.get("header_handle")
        if not (
            isinstance(handles, list)
            and handles
            and all(isinstance(h, str) and h.strip() for h in handles)
        ):
            check.fail(
                f"{field}.example.header_handle",
                f"a {fmt} header needs an example: the handle of an uploaded sample "
                "(Meta's resumable upload)",
            )


def _check_body(check: _Check, component: dict[str, Any], field: str) -> None:
    if check.category == "AUTHENTICATION":
        if component.get("text") is not None:
            check.fail(
                f"{field}.text",
                "AUTHENTICATION templates use WhatsApp's fixed text: omit the BODY text",
            )
        flag = component.get("add_security_recommendation")
        if flag is not None and not isinstance(flag, bool):
            check.fail(f"{field}.add_security_recommendation", "must be true or false")
        return
    text = check.text(component.get("text"), f"{field}.text", BODY_MAX, "BODY text")
    if text is None:
        return
    names = check.variables(text, f"{field}.text", "BODY")
    _check_examples(check, names, _example(component), field, "body")


def _check_footer(check: _Check, component: dict[str, Any], field: str) -> None:
    if check.category == "AUTHENTICATION":
        minutes = component.get("code_expiration_minutes")
        low, high = CODE_EXPIRATION_RANGE
        if minutes is not None and (
            not isinstance(minutes, int) or isinstance(minutes, bool) or not low <= minutes <= high
        ):
            check.fail(f"{field}.code_expiration_minutes", f"must be a whole number {low}-{high}")
        if component.get("text") is not None:
            check.fail(f"{field}.text", "AUTHENTICATION footers have no text")
        return
    text = check.text(component.get("text"), f"{field}.text", FOOTER_MAX, "FOOTER text")
    if text is not None and placeholders(text):
        check.fail(f"{field}.text", "FOOTER text cannot have variables")


def _check_buttons(check: _Check, component: dict[str, Any], field: str) -> None:
    buttons = component.get("buttons")
    where = f"{field}.buttons"
    if not isinstance(buttons, list) or not buttons:
        check.fail(where, "BUTTONS needs a non-empty list of buttons")
        return
    if len(buttons) > BUTTONS_MAX:
        check.fail(where, f"at most {BUTTONS_MAX} buttons (got {len(buttons)})")
    types = [_upper(b.get("type")) if isinstance(b, dict) else "" for b in buttons]
    for kind, limit in BUTTON_LIMITS.items():
        if types.count(kind) > limit:
            check.fail(where, f"at most {limit} {kind} button(s) (got {types.count(kind)})")
    quick = [i for i, kind in enumerate(types) if kind == "QUICK_REPLY"]
    if quick and quick != list(range(quick[0], quick[0] + len(quick))):
        check.fail(where, "QUICK_REPLY buttons must be grouped together, not mixed with others")
    texts = [b["text"] for b in buttons if isinstance(b, dict) and isinstance(b.get("text"), str)]
    if len(texts) != len(set(texts)):
        check.fail(where, "button texts must be unique")
    if check.category == "AUTHENTICATION" and types != ["OTP"]:
        check.fail(where, "AUTHENTICATION templates have exactly one OTP button")
    for index, button in enumerate(buttons):
        _check_button(check, button, f"{where}[{index}]")


def _check_button(check: _Check, button: Any, field: str) -> None:
    if not isinstance(button, dict):
        check.fail(field, "must be an object")
        return
    kind = _upper(button.get("type"))
    checker = _BUTTON_CHECKS.get(kind)
    if checker is None:
        check.fail(f"{field}.type", "must be one of " + ", ".join(BUTTON_LIMITS))
        return
    if kind == "OTP" and check.category != "AUTHENTICATION":
        check.fail(f"{field}.type", "OTP buttons are only for AUTHENTICATION templates")
        return
    if kind not in ("COPY_CODE", "OTP"):
        check.text(button.get("text"), f"{field}.text", BUTTON_TEXT_MAX, f"{kind} button text")
    checker(check, button, field)


def _check_url_button(check: _Check, button: dict[str, Any], field: str) -> None:
    url = check.text(button.get("url"), f"{field}.url", URL_MAX, "URL button url")
    if url is None:
        return
    if not url.lower().startswith(("https://", "http://")):
        check.fail(f"{field}.url", "must be an http(s) URL")
    names = placeholders(url)
    if not names:
        return
    if names != ["1"] or not url.endswith("{{1}}") or url.count("{{") != 1:
        check.fail(f"{field}.url", "a URL button takes one variable, {{1}}, at the end of the URL")
    example = button.get("example")
    if not (
        isinstance(example, list)
        and len(example) == 1
        and isinstance(example[0], str)
        and example[0].strip()
    ):
        check.fail(f"{field}.example", 'a URL with a variable needs one example URL: ["..."]')


def _check_phone_button(check: _Check, button: dict[str, Any], field: str) -> None:
    phone = check.text(
        button.get("phone_number"), f"{field}.phone_number", PHONE_MAX, "phone_number"
    )
    if phone is not None and not re.fullmatch(r"\+?[0-9]{5,20}", phone):
        check.fail(f"{field}.phone_number", "must be a phone number in digits (country code first)")


def _check_copy_code_button(check: _Check, button: dict[str, Any], field: str) -> None:
    check.text(button.get("example"), f"{field}.example", COPY_CODE_MAX, "COPY_CODE example")


def _check_otp_button(check: _Check, button: dict[str, Any], field: str) -> None:
    otp_type = _upper(button.get("otp_type"))
    if otp_type not in OTP_TYPES:
        check.fail(f"{field}.otp_type", "must be one of " + ", ".join(OTP_TYPES))
        return
    check.text(
        button.get("text"), f"{field}.text", BUTTON_TEXT_MAX, "OTP button text", required=False
    )
    if otp_type != "COPY_CODE" and not button.get("supported_apps"):
        for key in ("package_name", "signature_hash"):
            check.text(button.get(key), f"{field}.{key}", 224, key)


def _check_flow_button(check: _Check, button: dict[str, Any], field: str) -> None:
    if sum(bool(button.get(key)) for key in ("flow_id", "flow_name", "flow_json")) != 1:
        check.fail(
            field, "a FLOW button names its flow by exactly one of flow_id, flow_name, flow_json"
        )


def _no_more(check: _Check, button: dict[str, Any], field: str) -> None:
    """QUICK_REPLY, MPM and CATALOG buttons are a text only."""


_BUTTON_CHECKS: dict[str, Callable[[_Check, dict[str, Any], str], None]] = {
    "QUICK_REPLY": _no_more,
    "URL": _check_url_button,
    "PHONE_NUMBER": _check_phone_button,
    "COPY_CODE": _check_copy_code_button,
    "OTP": _check_otp_button,
    "FLOW": _check_flow_button,
    "MPM": _no_more,
    "CATALOG": _no_more,
}
_COMPONENT_CHECKS: dict[str, Callable[[_Check, dict[str, Any], str], None]] = {
    "HEADER": _check_header,
    "BODY": _check_body,
    "FOOTER": _check_footer,
    "BUTTONS": _check_buttons,
}


def check_template(
    name: str, language: str, category: str, parameter_format: str, components: Any
) -> list[FieldError]:
    """Every rule of Meta's that this template breaks (empty: Meta should accept it)."""
    check = _Check(parameter_format, category, [])
    if len(name) > NAME_MAX or not NAME_PATTERN.match(name):
        check.fail("name", f"lowercase letters, digits and underscores only, at most {NAME_MAX}")
    if language not in LANGUAGES:
        check.fail("language", f"'{language}' is not a language Meta supports (e.g. en_US, pt_BR)")
    if not isinstance(components, list) or not components:
        check.fail("components", "a template needs components (at least a BODY)")
        return check.errors
    seen: dict[str, int] = {}
    for index, component in enumerate(components):
        field = f"components[{index}]"
        if not isinstance(component, dict):
            check.fail(field, "must be an object")
            continue
        kind = _upper(component.get("type"))
        if kind not in SUPPORTED_COMPONENTS:
            check.fail(f"{field}.type", "must be one of " + ", ".join(SUPPORTED_COMPONENTS))
            continue
        if kind in seen:
            check.fail(
                f"{field}.type", f"only one {kind} component (also components[{seen[kind]}])"
            )
            continue
        seen[kind] = index
        _COMPONENT_CHECKS[kind](check, component, field)
    if "BODY" not in seen:
        check.fail("components", "a BODY component is required")
    if category == "AUTHENTICATION" and "BUTTONS" not in seen:
        check.fail(
            "components", "AUTHENTICATION templates need a BUTTONS component with an OTP button"
        )
    return check.errors


def validate_template(
    name: str, language: str, category: str, parameter_format: str, components: Any
) -> list[dict[str, Any]]:
    """Meta's components, checked (422 naming every broken rule) and normalised."""
    errors = check_template(name, language, category, parameter_format, components)
    if errors:
        first = errors[0]
        raise ValidationFailed(f"{first.field}: {first.message}", details=errors)
    return normalized(components)


def normalized(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Component, header format and button types upper-case (as Meta lists them)."""
    result = []
    for component in components:
        item = dict(component)
        item["type"] = _upper(item.get("type"))
        if isinstance(item.get("format"), str):
            item["format"] = item["format"].upper()
        if isinstance(item.get("buttons"), list):
            item["buttons"] = [
                {**b, "type": _upper(b.get("type"))} if isinstance(b, dict) else b
                for b in item["buttons"]
            ]
        result.append(item)
    return result
