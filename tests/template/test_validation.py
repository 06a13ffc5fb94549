"""Every rule of Meta's is checked before anything is submitted: a 422 naming the component
and field, and Meta (the simulator) never hears of the template."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.message.sending.support import Shop

BODY = {"type": "BODY", "text": "Hello {{1}}", "example": {"body_text": [["Ana"]]}}


def _buttons(*buttons: dict[str, Any]) -> dict[str, Any]:
    return {"type": "BUTTONS", "buttons": list(buttons)}


def _quick(text: str = "Yes") -> dict[str, Any]:
    return {"type": "QUICK_REPLY", "text": text}


def _url(text: str = "Open", url: str = "https://shop.example/{{1}}", **kw: Any) -> dict[str, Any]:
    return {"type": "URL", "text": text, "url": url, "example": ["https://shop.example/x"], **kw}


OTP = {"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}
AUTH_BODY = {"type": "BODY", "add_security_recommendation": True}

# (what is wrong, changes to a valid MARKETING body, the field the 422 must name)
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("name with a dash", {"name": "bad-name"}, "name"),
    ("name in capitals", {"name": "Promo"}, "name"),
    ("unknown language", {"language": "xx_YY"}, "language"),
    ("unknown category", {"category": "PROMO"}, "category"),
    ("no components", {"components": []}, "components"),
    ("no body", {"components": [{"type": "FOOTER", "text": "Bye"}]}, "components"),
    ("two bodies", {"components": [BODY, BODY]}, "components[1].type"),
    ("unsupported component", {"components": [{"type": "CAROUSEL"}, BODY]}, "components[0].type"),
    ("body too long", {"components": [{"type": "BODY", "text": "x" * 1025}]}, "components[0].text"),
    ("body without text", {"components": [{"type": "BODY"}]}, "components[0].text"),
    (
        "body variable without example",
        {"components": [{"type": "BODY", "text": "Hi {{1}}"}]},
        "components[0].example.body_text",
    ),
    (
        "fewer examples than variables",
        {
            "components": [
                {"type": "BODY", "text": "Hi {{1}} {{2}}", "example": {"body_text": [["a"]]}}
            ]
        },
        "components[0].example.body_text",
    ),
    (
        "variables with a gap",
        {
            "components": [
                {"type": "BODY", "text": "Hi {{1}} {{3}}", "example": {"body_text": [["a", "b"]]}}
            ]
        },
        "components[0].text",
    ),
    (
        "named variable in a POSITIONAL template",
        {
            "components": [
                {"type": "BODY", "text": "Hi {{name}}", "example": {"body_text": [["a"]]}}
            ]
        },
        "components[0].text",
    ),
    (
        "numbered variable in a NAMED template",
        {"parameter_format": "NAMED", "components": [BODY]},
        "components[0].text",
    ),
    (
        "NAMED template without named examples",
        {
            "parameter_format": "NAMED",
            "components": [
                {"type": "BODY", "text": "Hi {{name}}", "example": {"body_text": [["a"]]}}
            ],
        },
        "components[0].example.body_text_named_params",
    ),
    (
        "NAMED example for another name",
        {
            "parameter_format": "NAMED",
            "components": [
                {
                    "type": "BODY",
                    "text": "Hi {{name}}",
                    "example": {
                        "body_text_named_params": [{"param_name": "nome", "example": "Ana"}]
                    },
                }
            ],
        },
        "components[0].example.body_text_named_params",
    ),
    (
        "header text too long",
        {"components": [{"type": "HEADER", "format": "TEXT", "text": "x" * 61}, BODY]},
        "components[0].text",
    ),
    (
        "header with two variables",
        {
            "components": [
                {
                    "type": "HEADER",
                    "format": "TEXT",
                    "text": "{{1}} and {{2}}",
                    "example": {"header_text": ["a", "b"]},
                },
                BODY,
            ]
        },
        "components[0].text",
    ),
    (
        "header variable without example",
        {"components": [{"type": "HEADER", "format": "TEXT", "text": "Hi {{1}}"}, BODY]},
        "components[0].example.header_text",
    ),
    (
        "unknown header format",
        {"components": [{"type": "HEADER", "format": "GIF"}, BODY]},
        "components[0].format",
    ),
    (
        "image header without a sample handle",
        {"components": [{"type": "HEADER", "format": "IMAGE"}, BODY]},
        "components[0].example.header_handle",
    ),
    (
        "footer too long",
        {"components": [BODY, {"type": "FOOTER", "text": "x" * 61}]},
        "components[1].text",
    ),
    (
        "footer with a variable",
        {"components": [BODY, {"type": "FOOTER", "text": "Bye {{1}}"}]},
        "components[1].text",
    ),
    (
        "eleven buttons",
        {"components": [BODY, _buttons(*[_quick(f"Option {i}") for i in range(11)])]},
        "components[1].buttons",
    ),
    (
        "empty buttons",
        {"components": [BODY, {"type": "BUTTONS", "buttons": []}]},
        "components[1].buttons",
    ),
    (
        "quick reply text too long",
        {"components": [BODY, _buttons(_quick("x" * 26))]},
        "components[1].buttons[0].text",
    ),
    (
        "three URL buttons",
        {"components": [BODY, _buttons(_url("A"), _url("B"), _url("C"))]},
        "components[1].buttons",
    ),
    (
        "URL variable not at the end",
        {"components": [BODY, _buttons(_url(url="https://x.example/{{1}}/go"))]},
        "components[1].buttons[0].url",
    ),
    (
        "URL variable without example",
        {
            "components": [
                BODY,
                _buttons({"type": "URL", "text": "Go", "url": "https://x.example/{{1}}"}),
            ]
        },
        "components[1].buttons[0].example",
    ),
    (
        "URL that is not http(s)",
        {"components": [BODY, _buttons(_url(url="ftp://x.example"))]},
        "components[1].buttons[0].url",
    ),
    (
        "two phone buttons",
        {
            "components": [
                BODY,
                _buttons(
                    {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "5511999990000"},
                    {"type": "PHONE_NUMBER", "text": "Call 2", "phone_number": "5511999990001"},
                ),
            ]
        },
        "components[1].buttons",
    ),
    (
        "phone that is not a number",
        {
            "components": [
                BODY,
                _buttons({"type": "PHONE_NUMBER", "text": "Call", "phone_number": "call us"}),
            ]
        },
        "components[1].buttons[0].phone_number",
    ),
    (
        "copy code example too long",
        {"components": [BODY, _buttons({"type": "COPY_CODE", "example": "x" * 16})]},
        "components[1].buttons[0].example",
    ),
    (
        "quick replies not grouped",
        {"components": [BODY, _buttons(_quick("A"), _url(), _quick("B"))]},
        "components[1].buttons",
    ),
    (
        "duplicate button texts",
        {"components": [BODY, _buttons(_quick("Same"), _quick("Same"))]},
        "components[1].buttons",
    ),
    (
        "unknown button type",
        {"components": [BODY, _buttons({"type": "SHARE", "text": "Share"})]},
        "components[1].buttons[0].type",
    ),
    (
        "OTP button outside AUTHENTICATION",
        {"components": [BODY, _buttons(OTP)]},
        "components[1].buttons[0].type",
    ),
    (
        "FLOW button without its flow",
        {"components": [BODY, _buttons({"type": "FLOW", "text": "Open"})]},
        "components[1].buttons[0]",
    ),
    (
        "AUTHENTICATION body with text",
        {"category": "AUTHENTICATION", "components": [BODY, _buttons(OTP)]},
        "components[0].text",
    ),
    (
        "AUTHENTICATION with a header",
        {
            "category": "AUTHENTICATION",
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Hi"},
                AUTH_BODY,
                _buttons(OTP),
            ],
        },
        "components[0]",
    ),
    (
        "AUTHENTICATION without an OTP button",
        {"category": "AUTHENTICATION", "components": [AUTH_BODY]},
        "components",
    ),
    (
        "AUTHENTICATION with a quick reply",
        {"category": "AUTHENTICATION", "components": [AUTH_BODY, _buttons(_quick())]},
        "components[1].buttons",
    ),
    (
        "code expiry out of range",
        {
            "category": "AUTHENTICATION",
            "components": [
                AUTH_BODY,
                {"type": "FOOTER", "code_expiration_minutes": 120},
                _buttons(OTP),
            ],
        },
        "components[1].code_expiration_minutes",
    ),
    (
        "one-tap OTP without its app",
        {
            "category": "AUTHENTICATION",
            "components": [AUTH_BODY, _buttons({"type": "OTP", "otp_type": "ONE_TAP"})],
        },
        "components[1].buttons[0].package_name",
    ),
    ("unknown field", {"colour": "blue"}, "colour"),
]


def _valid(name: str) -> dict[str, Any]:
    return {"name": name, "language": "pt_BR", "category": "MARKETING", "components": [BODY]}


async def test_every_rule_is_a_422_naming_component_and_field(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    wrong: list[str] = []
    for what, changes, field in CASES:
        name = f"rule_{uuid.uuid4().hex[:8]}"
        body = {**_valid(name), **changes}
        resp = await http.post("/v1/templates", json=body, headers=shop.headers)
        fields = [d["field"] for d in resp.json().get("error", {}).get("details", [])]
        if resp.status_code != 422 or not any(f.endswith(field) for f in fields):
            wrong.append(f"{what}: {resp.status_code} {fields} (wanted {field})")
        if any(t.name == body["name"] for t in shop.sim.state.templates.values()):
            wrong.append(f"{what}: reached Meta")
    assert wrong == []
    listed = await http.get("/v1/templates", headers=shop.headers)
    assert listed.json()["meta"]["total"] == 0


async def test_all_broken_rules_are_reported_at_once(http: httpx.AsyncClient, shop: Shop) -> None:
    body = {
        "name": "Bad Name",
        "language": "pt_BR",
        "category": "UTILITY",
        "components": [
            {"type": "BODY", "text": "Hi {{1}}"},
            {"type": "FOOTER", "text": "x" * 70},
        ],
    }
    resp = await http.post("/v1/templates", json=body, headers=shop.headers)
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert [d["field"] for d in error["details"]] == [
        "name",
        "components[0].example.body_text",
        "components[1].text",
    ]
    assert error["message"].startswith("name:")


async def test_valid_variants_pass(http: httpx.AsyncClient, shop: Shop) -> None:
    """Shapes Meta accepts that a too-strict check would refuse."""
    variants: list[dict[str, Any]] = [
        # Lower-case component types, as some of Meta's own examples write them.
        {"components": [{"type": "body", "text": "Olá, tudo bem?"}]},
        # A repeated variable counts once.
        {
            "components": [
                {"type": "BODY", "text": "{{1}}, {{1}}!", "example": {"body_text": [["Oi"]]}}
            ]
        },
        {
            "components": [
                {"type": "HEADER", "format": "LOCATION"},
                BODY,
                _buttons(_url(), {"type": "COPY_CODE", "example": "25OFF"}),
            ]
        },
        {
            "category": "AUTHENTICATION",
            "components": [
                AUTH_BODY,
                {"type": "FOOTER", "code_expiration_minutes": 5},
                _buttons(
                    {
                        "type": "OTP",
                        "otp_type": "ONE_TAP",
                        "text": "Copy",
                        "autofill_text": "Autofill",
                        "package_name": "com.example.app",
                        "signature_hash": "K8a/AINcGX7",
                    }
                ),
            ],
        },
    ]
    from tests.template.support import review

    with review(shop.sim, template_auto_review=False):
        for changes in variants:
            body = {**_valid(f"ok_{uuid.uuid4().hex[:8]}"), **changes}
            resp = await http.post("/v1/templates", json=body, headers=shop.headers)
            assert resp.status_code == 201, (changes, resp.text)
