"""A text that is one `{{a.b}}` naming a string is filled in without Jinja (a campaign renders
`{{contact.name}}` once per recipient); what it gives must be what Jinja gives, and anything
else still goes through Jinja's sandbox and its errors."""

from __future__ import annotations

from typing import Any

import pytest

from pytake.errors import ValidationFailed
from pytake.message.sending.render import _ENV, render_text

CONTEXT: dict[str, Any] = {
    "contact": {
        "name": "Ana Souza",
        "attributes": {"city": "Recife", "visits": 3, "items": "x"},
        "items": "shadowed by dict.items",
    },
    "code": "4242",
}


@pytest.mark.parametrize(
    "source",
    [
        "{{contact.name}}",
        "{{ contact.name }}",
        "{{contact.attributes.city}}",
        "{{code}}",
        "{{contact.attributes.visits}}",  # not a string: Jinja's str()
        "{{contact.items}}",  # a dict's own attribute: Jinja's answer, whatever it is
        "{{ contact.name | upper }}",
        "Olá {{contact.name}}",
    ],
)
def test_lone_placeholders_render_as_jinja_does(source: str) -> None:
    assert render_text(source, CONTEXT, "field") == _ENV.from_string(source).render(CONTEXT)


@pytest.mark.parametrize("source", ["{{contact.email}}", "{{contact.attributes.city.x}}"])
def test_a_missing_value_is_still_a_422(source: str) -> None:
    with pytest.raises(ValidationFailed):
        render_text(source, CONTEXT, "message_content.variables.1")
