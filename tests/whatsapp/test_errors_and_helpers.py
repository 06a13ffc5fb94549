"""Pure helpers: error classification, status ordering, recipient normalisation."""

from __future__ import annotations

import pytest

from pytake.whatsapp import ProviderError, status_advances
from pytake.whatsapp.provider import normalize_recipient


@pytest.mark.parametrize("code", [1, 2, 4, 80007, 130429, 131056, 131057, 131000, 131016])
def test_retryable_codes(code: int) -> None:
    assert ProviderError("x", code=code, http_status=400).retryable


@pytest.mark.parametrize("code", [0, 100, 190, 131026, 131047, 131051, 132000, 132001, 250])
def test_non_retryable_codes(code: int) -> None:
    # Even a 5xx does not make a known permanent code worth retrying.
    assert not ProviderError("x", code=code, http_status=500).retryable


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (400, False), (404, False)]
)
def test_unknown_codes_fall_back_to_http_status(status: int, retryable: bool) -> None:
    assert ProviderError("x", code=999999, http_status=status).retryable is retryable


def test_from_graph_with_object_and_string_error_data() -> None:
    body = {
        "error": {
            "message": "(#131047) Re-engagement message",
            "code": 131047,
            "error_subcode": 2494055,
            "error_data": {"details": "24h"},
        }
    }
    error = ProviderError.from_graph(body, 400)
    template = ProviderError.from_graph(
        {"error": {"message": "bad", "code": 100, "error_data": "plain string"}}, 400
    )

    assert (error.code, error.subcode, error.details, error.http_status) == (
        131047,
        2494055,
        "24h",
        400,
    )
    assert (
        error.plain_explanation
        == "more than 24 hours since the customer last replied; send a template"
    )
    assert template.details == "plain string"


def test_from_graph_with_a_non_graph_body() -> None:
    error = ProviderError.from_graph("<html>Bad Gateway</html>", 502)

    assert (error.code, error.retryable) == (None, True)
    assert "server error" in error.plain_explanation


@pytest.mark.parametrize(
    ("current", "new", "advances"),
    [
        (None, "sent", True),
        ("sent", "delivered", True),
        ("delivered", "sent", False),
        ("read", "delivered", False),
        ("read", "failed", True),
        ("failed", "read", False),
        ("sent", "sent", False),
    ],
)
def test_status_only_moves_forward(current: str | None, new: str, advances: bool) -> None:
    assert status_advances(current, new) is advances


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("+55 (11) 99999-9999", "5511999999999"),
        ("16505551234", "16505551234"),
        ("5511@s.whatsapp.net", "5511@s.whatsapp.net"),
        ("US.123", "US.123"),
    ],
)
def test_normalize_recipient(raw: str, normal: str) -> None:
    assert normalize_recipient(raw) == normal
