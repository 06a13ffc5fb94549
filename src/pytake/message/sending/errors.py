"""Why a send is refused: the customer-service window, consent, blocking, WhatsApp itself."""

from __future__ import annotations

from pytake.errors import PyTakeError
from pytake.whatsapp.provider import ProviderError

# Meta codes that mean our credentials or permissions are wrong, not the message.
_ACCOUNT_CODES = frozenset({0, 3, 10, 190, 368, 131031})


class OutsideCustomerServiceWindow(PyTakeError):
    status = 422
    code = "outside_customer_service_window"
    documented_as = "validation_error"
    default_message = (
        "WhatsApp allows free-form messages only within 24 hours of the customer's last message, "
        "and this customer has not written in that time (or never has). Either the customer "
        "writes first, or send an approved template: POST /v1/messages with type 'template' "
        "(on /api/v1: POST /api/v1/whatsapp/send with message_type 'template')"
    )


class ContactOptedOut(PyTakeError):
    status = 422
    code = "contact_opted_out"
    documented_as = "validation_error"
    default_message = "The contact opted out of messages; opt them in again before sending"


class ContactBlocked(PyTakeError):
    status = 422
    code = "contact_blocked"
    documented_as = "validation_error"
    default_message = "The contact is blocked; unblock them before sending"


class IdempotencyConflict(PyTakeError):
    status = 409
    code = "idempotency_key_conflict"
    documented_as = "duplicate_resource"
    default_message = "This Idempotency-Key was already used with a different request body"


class WhatsAppApiError(PyTakeError):
    """WhatsApp refused the message (422); the message is stored as failed."""

    status = 422
    code = "whatsapp_api_error"
    default_message = "WhatsApp refused the message"


class WhatsAppApiUnavailable(WhatsAppApiError):
    """The provider answered but cannot serve us (credentials, account): 502."""

    status = 502


def whatsapp_error(error: ProviderError, message_id: str) -> WhatsAppApiError:
    """The API error for a non-retryable provider failure, with Meta's code and a plain reason."""
    upstream = error.kind == "invalid_response" or (error.http_status or 0) >= 500
    cls = (
        WhatsAppApiUnavailable
        if upstream or error.code in _ACCOUNT_CODES or (error.code or 0) in range(200, 300)
        else WhatsAppApiError
    )
    prefix = f"WhatsApp error {error.code}: " if error.code is not None else "WhatsApp error: "
    return cls(
        prefix + error.plain_explanation,
        extra={
            "whatsapp_error": {
                "code": error.code,
                "title": error.title,
                "details": error.details,
                "http_status": error.http_status,
            },
            "message_id": message_id,
        },
    )
