"""What a send came to: the message as stored, and whether WhatsApp has it yet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytake.models import Message


@dataclass(frozen=True)
class SendReceipt:
    """A send's result: `view` is the message as `SendMessageOut` shows it (JSON-ready);
    `queued` means WhatsApp does not have it yet and the dispatcher keeps trying."""

    view: dict[str, Any]

    @property
    def queued(self) -> bool:
        return bool(self.view["status"] == "queued")


def receipt_for(message: Message) -> SendReceipt:
    """The receipt of a stored message (a claimed `sending` row still counts as queued)."""
    status = "queued" if message.status in ("queued", "sending") else message.status
    return SendReceipt(
        {
            "id": str(message.id),
            "whatsapp_message_id": message.provider_message_id,
            "conversation_id": str(message.conversation_id),
            "to": message.recipient,
            "status": status,
            "created_at": message.created_at.isoformat().replace("+00:00", "Z"),
        }
    )
