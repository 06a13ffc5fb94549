"""Provider errors: one exception type for every failure at the WhatsApp edge.

Meta's error codes are the lingua franca: the Evolution adapter maps the few failures that mean
the same thing (e.g. "number not on WhatsApp" → 131026) onto them so callers branch once.
"""

from __future__ import annotations

from typing import Any, Literal

ErrorKind = Literal["api", "transport", "not_supported", "invalid_response"]

# code → (plain explanation, retryable). Retry column follows the protocol reference's table.
_CODES: dict[int, tuple[str, bool]] = {
    0: ("authentication failed; check the access token", False),
    1: ("unknown error at Meta; retry later", True),
    2: ("Meta's API service is temporarily down; retry later", True),
    3: ("the app lacks the capability needed for this call", False),
    4: ("the app hit Meta's call-rate limit; retry with backoff", True),
    10: ("permission missing for this WhatsApp number or account", False),
    100: ("invalid parameter: a field is wrong or unsupported, or the id does not exist", False),
    190: ("the access token is invalid or expired; reconnect the number", False),
    368: ("the WhatsApp Business Account is restricted for a policy violation", False),
    470: ("more than 24 hours since the customer last replied; send a template", False),
    80007: ("the WhatsApp Business Account hit its rate limit; retry later", True),
    130429: ("the number's throughput limit (messages per second) was hit; retry later", True),
    130472: ("the customer's number is part of a Meta experiment; not delivered", False),
    130497: ("messaging to this country is restricted for the account", False),
    131000: ("something went wrong at Meta; retry", True),
    131005: ("access denied for this operation", False),
    131008: ("a required parameter is missing", False),
    131009: ("a parameter value is invalid", False),
    131016: ("the WhatsApp service is unavailable; retry later", True),
    131021: ("the recipient is the sending number itself", False),
    131026: (
        "message undeliverable: the number may not be on WhatsApp, use an old app "
        "or not have accepted the terms",
        False,
    ),
    131030: ("the recipient is not in the test number's allowed list", False),
    131031: ("the business account is locked", False),
    131042: ("there is a problem with the account's payment method", False),
    131047: ("more than 24 hours since the customer last replied; send a template", False),
    131048: ("spam rate limit: the number's quality is low; slow the campaign down", False),
    131049: ("Meta held the message back to protect engagement (per-user marketing cap)", False),
    131050: ("the customer opted out of marketing messages", False),
    131051: ("unsupported message type", False),
    131052: ("the customer's media could not be downloaded", False),
    131053: ("the media could not be uploaded; check the link or file", False),
    131056: ("too many messages to this customer too fast; wait and retry", True),
    131057: ("the account is in maintenance; retry in about a minute", True),
    132000: ("the number of template parameters does not match the template", False),
    132001: ("the template does not exist in that language or is not approved", False),
    132005: ("the template's translated text is too long", False),
    132007: ("the template content violates a WhatsApp policy", False),
    132012: ("a template parameter has the wrong format", False),
    132015: ("the template is paused for low quality", False),
    132016: ("the template is disabled for low quality", False),
    133016: ("too many register/deregister attempts; retry later", False),
}

_STATUS_EXPLANATIONS: dict[int, str] = {
    401: "the provider rejected the credentials",
    403: "the provider refused the operation",
    404: "the provider does not know this resource",
    429: "the provider is rate limiting requests; retry later",
}


def is_retryable(code: int | None, http_status: int | None) -> bool:
    """Whether a failure with this Graph code / HTTP status is worth retrying later."""
    if code is not None and code in _CODES:
        return _CODES[code][1]
    if code is not None and 200 <= code <= 299:  # permission family
        return False
    return http_status is not None and (http_status >= 500 or http_status == 429)


def explain(code: int | None, http_status: int | None = None, fallback: str = "") -> str:
    """A sentence an operator understands for an error code (or HTTP status)."""
    if code is not None and code in _CODES:
        return _CODES[code][0]
    if code is not None and 200 <= code <= 299:
        return "permission missing for this WhatsApp number or account"
    if http_status is not None and http_status >= 500:
        return "the provider had a server error; retry later"
    if http_status in _STATUS_EXPLANATIONS:
        return _STATUS_EXPLANATIONS[http_status]
    return fallback or "the provider rejected the request"


class ProviderError(Exception):
    """A WhatsApp provider call failed; `retryable` says whether sending again later may work."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        title: str | None = None,
        details: str | None = None,
        http_status: int | None = None,
        retryable: bool | None = None,
        kind: ErrorKind = "api",
        raw: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.title = title
        self.details = details
        self.http_status = http_status
        self.kind: ErrorKind = kind
        self.raw = raw
        self.retryable = is_retryable(code, http_status) if retryable is None else retryable

    @property
    def plain_explanation(self) -> str:
        """What went wrong, in words for an operator."""
        return explain(self.code, self.http_status, fallback=self.details or self.message)

    def __repr__(self) -> str:
        return (
            f"ProviderError(code={self.code!r}, http_status={self.http_status!r}, "
            f"retryable={self.retryable!r}, message={self.message!r})"
        )

    @classmethod
    def from_graph(cls, body: Any, http_status: int | None) -> ProviderError:
        """Build from a Graph API `{"error": {...}}` body (tolerating odd shapes)."""
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            text = str(body)[:300] if body is not None else ""
            return cls(f"HTTP {http_status}: {text}", http_status=http_status, raw=body)
        error_data = error.get("error_data")
        # Template APIs send error_data as a plain string; messaging APIs as an object.
        details = error_data.get("details") if isinstance(error_data, dict) else error_data
        code = error.get("code")
        subcode = error.get("error_subcode")
        return cls(
            str(error.get("message") or error.get("error_user_msg") or "Graph API error"),
            code=code if isinstance(code, int) else None,
            subcode=subcode if isinstance(subcode, int) else None,
            title=error.get("error_user_title") or error.get("title"),
            details=str(details) if details is not None else None,
            http_status=http_status,
            raw=body,
        )

    @classmethod
    def transport(cls, exc: BaseException, operation: str) -> ProviderError:
        """A timeout or connection failure: the request may not have reached the provider."""
        reason = "timed out" if isinstance(exc, TimeoutError) else f"failed: {exc!r}"
        return cls(f"{operation} {reason}", kind="transport", retryable=True)

    @classmethod
    def not_supported(cls, provider: str, operation: str) -> ProviderError:
        """The provider cannot do this operation at all."""
        return cls(
            f"{provider} does not support {operation}",
            kind="not_supported",
            retryable=False,
            details=f"{operation} is not available with {provider}",
        )
