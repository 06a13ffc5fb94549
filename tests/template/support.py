"""Helpers for template tests: Meta's own example bodies and a shop whose number is in the
simulator (tests.message.sending.support.shop)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from pytake.whatsapp.simulator import Simulator
from tests.message.sending.support import Shop

# Copied unchanged from Meta's documentation (the OpenAPI examples of
# `POST /{WABA-ID}/message_templates`), except that tests give each a unique name.
META_TEXT_HEADER_QUICK_REPLIES: dict[str, Any] = {
    "category": "MARKETING",
    "components": [
        {
            "example": {"header_text": ["Summer Sale"]},
            "format": "TEXT",
            "text": "Our {{1}} is on!",
            "type": "HEADER",
        },
        {
            "example": {"body_text": [["the end of August", "25OFF", "25%"]]},
            "text": "Shop now through {{1}} and use code {{2}} to get {{3}} off of all "
            "merchandise.",
            "type": "BODY",
        },
        {"text": "Use the buttons below to manage your marketing subscriptions", "type": "FOOTER"},
        {
            "buttons": [
                {"text": "Unsubcribe from Promos", "type": "QUICK_REPLY"},
                {"text": "Unsubscribe from All", "type": "QUICK_REPLY"},
            ],
            "type": "BUTTONS",
        },
    ],
    "language": "en",
    "name": "seasonal_promotion_text_only",
}
META_IMAGE_HEADER_CTA: dict[str, Any] = {
    "category": "MARKETING",
    "components": [
        {
            "example": {"header_handle": ["4::aW1hZ2UvanBn:ARYytyb0kLp5htbBB8vWlclG5M9gMBxiEyt4"]},
            "format": "IMAGE",
            "type": "HEADER",
        },
        {
            "example": {"body_text": [["Mark", "Tuscan Getaway package", "800"]]},
            "text": "Hi {{1}}! For a limited time only you can get our {{2}} for as low as {{3}}. "
            "Tap the Offer Details button for more information.",
            "type": "BODY",
        },
        {"text": "Offer valid until May 31, 2023", "type": "FOOTER"},
        {
            "buttons": [
                {"phone_number": "16467043595", "text": "Call", "type": "PHONE_NUMBER"},
                {
                    "example": ["summer2023"],
                    "text": "Shop Now",
                    "type": "URL",
                    "url": "https://damp-sea-63235.herokuapp.com/shop?promo={{1}}",
                },
            ],
            "type": "BUTTONS",
        },
    ],
    "language": "en_US",
    "name": "limited_time_offer_tuscan_getaway_2023",
}
META_AUTHENTICATION: dict[str, Any] = {
    "category": "AUTHENTICATION",
    "components": [
        {"add_security_recommendation": True, "type": "BODY"},
        {"code_expiration_minutes": 10, "type": "FOOTER"},
        {
            "buttons": [{"otp_type": "COPY_CODE", "text": "Copy Code", "type": "OTP"}],
            "type": "BUTTONS",
        },
    ],
    "language": "en_US",
    "name": "authentication_code_copy_code_button",
}
META_FLOW_LOWERCASE_BODY: dict[str, Any] = {
    "category": "MARKETING",
    "components": [
        {"text": "Check out this new offer", "type": "body"},
        {
            "buttons": [
                {
                    "flow_action": "navigate",
                    "flow_id": "{{Flow-ID}}",
                    "navigate_screen": "<SCREEN_ID>",
                    "text": "Check out this offer!",
                    "type": "FLOW",
                }
            ],
            "type": "BUTTONS",
        },
    ],
    "language": "en_US",
    "name": "<TEMPLATE_NAME>",
}
NAMED_ORDER: dict[str, Any] = {
    "name": "order_confirmation",
    "language": "pt_BR",
    "category": "UTILITY",
    "parameter_format": "NAMED",
    "components": [
        {
            "type": "BODY",
            "text": "Obrigado, {{first_name}}! Seu pedido {{order_number}} foi confirmado.",
            "example": {
                "body_text_named_params": [
                    {"param_name": "first_name", "example": "Pablo"},
                    {"param_name": "order_number", "example": "860198-230332"},
                ]
            },
        }
    ],
}


def body_of(example: dict[str, Any], name: str, **changes: Any) -> dict[str, Any]:
    """A deep copy of a template body with its own name."""
    body = copy.deepcopy(example)
    body["name"] = name
    body.update(changes)
    return body


async def create(
    http: httpx.AsyncClient, shop: Shop, body: dict[str, Any], expect: int = 201
) -> dict[str, Any]:
    resp = await http.post("/v1/templates", json=body, headers=shop.headers)
    assert resp.status_code == expect, resp.text
    result: dict[str, Any] = resp.json()
    return result


@contextmanager
def review(sim: Simulator, **settings: Any) -> Iterator[None]:
    """Change the simulator's template review settings for one test."""
    before = sim.state.settings
    sim.state.settings = dataclasses.replace(before, **settings)
    try:
        yield
    finally:
        sim.state.settings = before
