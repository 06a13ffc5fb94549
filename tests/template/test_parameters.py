"""The public service API other domains use: variables onto a template's parameters, the
Graph `template` object, the check of hand-built parameters, the preview."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pytake.errors import ValidationFailed
from pytake.template.parameters import check_send_parameters, send_components, template_message
from pytake.template.preview import render_preview
from pytake.template.rules import normalized
from tests.template.support import (
    META_AUTHENTICATION,
    META_IMAGE_HEADER_CTA,
    META_TEXT_HEADER_QUICK_REPLIES,
    NAMED_ORDER,
)


def _template(example: dict[str, Any]) -> Any:
    return SimpleNamespace(
        name=example["name"],
        language=example["language"],
        category=example["category"],
        parameter_format=example.get("parameter_format", "POSITIONAL"),
        components=normalized(example["components"]),
    )


def _fields(exc: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return [d.field for d in exc.value.details]


def test_positional_variables_by_number_header_and_button() -> None:
    offer = _template(META_IMAGE_HEADER_CTA)
    variables = {
        "header": "https://cdn.example/tuscany.jpg",
        "1": "Maria",
        "2": "Tuscan Getaway",
        "3": "$800",
        "button.1": "summer2026",
        "unrelated": "ignored",
    }
    assert template_message(offer, variables) == {
        "name": "limited_time_offer_tuscan_getaway_2023",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "header",
                "parameters": [
                    {"type": "image", "image": {"link": "https://cdn.example/tuscany.jpg"}}
                ],
            },
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Maria"},
                    {"type": "text", "text": "Tuscan Getaway"},
                    {"type": "text", "text": "$800"},
                ],
            },
            {
                "type": "button",
                "sub_type": "url",
                "index": 1,
                "parameters": [{"type": "text", "text": "summer2026"}],
            },
        ],
    }
    # A media id works as well as a link; a list fills the body in order.
    promo = _template(META_TEXT_HEADER_QUICK_REPLIES)
    components = send_components(promo, {"header.1": "Winter Sale", "1": "May", "2": "X", "3": 5})
    assert components[0] == {
        "type": "header",
        "parameters": [{"type": "text", "text": "Winter Sale"}],
    }
    assert components[1]["parameters"][2] == {"type": "text", "text": "5"}
    media = send_components(offer, {**variables, "header": "1234567890"})
    assert media[0]["parameters"][0] == {"type": "image", "image": {"id": "1234567890"}}


def test_named_variables_carry_parameter_name() -> None:
    order = _template(NAMED_ORDER)
    components = send_components(order, {"order_number": "42", "first_name": "João"})
    assert components == [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "João", "parameter_name": "first_name"},
                {"type": "text", "text": "42", "parameter_name": "order_number"},
            ],
        }
    ]


def test_authentication_code_goes_to_body_and_button() -> None:
    auth = _template(META_AUTHENTICATION)
    assert send_components(auth, {"1": "123456"}) == [
        {"type": "body", "parameters": [{"type": "text", "text": "123456"}]},
        {
            "type": "button",
            "sub_type": "url",
            "index": 0,
            "parameters": [{"type": "text", "text": "123456"}],
        },
    ]


def test_missing_and_bad_values_are_named() -> None:
    order = _template(NAMED_ORDER)
    with pytest.raises(ValidationFailed) as missing:
        send_components(order, {"first_name": "Ana"})
    assert _fields(missing) == ["variables.order_number"]
    with pytest.raises(ValidationFailed) as bad:
        send_components(order, {"first_name": "Ana\nLima", "order_number": "1"})
    assert _fields(bad) == ["variables.first_name"]
    offer = _template(META_IMAGE_HEADER_CTA)
    with pytest.raises(ValidationFailed) as header:
        send_components(
            offer, {"header": "a picture", "1": "a", "2": "b", "3": "c", "button.1": "d"}
        )
    assert _fields(header) == ["variables.header"]


def test_check_send_parameters() -> None:
    promo = _template(META_TEXT_HEADER_QUICK_REPLIES)
    good = send_components(promo, {"header.1": "Sale", "1": "a", "2": "b", "3": "c"})
    check_send_parameters(promo, good)
    with pytest.raises(ValidationFailed) as short:
        check_send_parameters(
            promo, [good[0], {"type": "body", "parameters": good[1]["parameters"][:2]}]
        )
    assert _fields(short) == ["template.components.body"]
    assert "takes 3 parameter(s) here, 2 given" in short.value.details[0].message
    with pytest.raises(ValidationFailed) as extra:
        check_send_parameters(
            promo, [*good, {"type": "button", "sub_type": "url", "index": 0, "parameters": [{}]}]
        )
    assert _fields(extra) == ["template.components.button[0]"]
    order = _template(NAMED_ORDER)
    unnamed = [
        {
            "type": "body",
            "parameters": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        }
    ]
    with pytest.raises(ValidationFailed) as names:
        check_send_parameters(order, unnamed)
    assert "first_name" in names.value.details[0].message


def test_preview_renders_what_the_customer_sees() -> None:
    promo = _template(META_TEXT_HEADER_QUICK_REPLIES)
    shown = render_preview(promo, {"header.1": "Winter Sale", "1": "Friday", "2": "WIN10"})
    assert shown.header == "Our Winter Sale is on!"
    assert (
        shown.body
        == "Shop now through Friday and use code WIN10 to get {{3}} off of all merchandise."
    )
    assert shown.missing == ["3"]
    assert shown.text.splitlines() == [
        "Our Winter Sale is on!",
        "Shop now through Friday and use code WIN10 to get {{3}} off of all merchandise.",
        "Use the buttons below to manage your marketing subscriptions",
        "[Unsubcribe from Promos]",
        "[Unsubscribe from All]",
    ]
    offer = _template(META_IMAGE_HEADER_CTA)
    shown = render_preview(
        offer, {"header": "https://cdn.example/a.jpg", "button.1": "promo26", "x": 1}
    )
    assert shown.header == "[image: https://cdn.example/a.jpg]"
    assert shown.buttons[1]["url"] == "https://damp-sea-63235.herokuapp.com/shop?promo=promo26"
    assert shown.buttons[0] == {
        "type": "PHONE_NUMBER",
        "text": "Call",
        "phone_number": "16467043595",
    }
    assert shown.missing == ["1", "2", "3"] and shown.unused == ["x"]
    auth = render_preview(_template(META_AUTHENTICATION), {"1": "998877"})
    assert (
        auth.body == "998877 is your verification code. For your security, do not share this code."
    )
    assert auth.footer == "This code expires in 10 minutes."
    assert auth.missing == []


def test_preview_shows_any_value_as_text() -> None:
    """Found by fuzzing the preview: a button's value that is not a string was a 500."""
    offer = _template(META_IMAGE_HEADER_CTA)
    shown = render_preview(offer, {"button.1": 2026})
    assert shown.buttons[1]["url"].endswith("promo=2026")
    auth = render_preview(_template(META_AUTHENTICATION), {"1": 123456})
    assert auth.buttons[0]["code"] == "123456" and auth.body.startswith("123456 ")
