"""What to send (a draft) and to whom (a target), as a request states them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pytake.errors import ValidationFailed
from pytake.message.sending.schemas import (
    LegacySendIn,
    ReplyIn,
    SendMessageIn,
    TemplateComponent,
    TemplateIn,
    TemplateLanguage,
    TextIn,
    check_message,
    graph_content,
)


@dataclass(frozen=True)
class Draft:
    """A message before it is bound to a contact: type, Graph content, reply-to, variables."""

    type: str
    content: dict[str, Any]
    context_message_id: str | None
    variables: dict[str, Any]

    @classmethod
    def of(cls, body: SendMessageIn | ReplyIn) -> Draft:
        check_message(body)
        reply_to = body.context.message_id if body.context else None
        return cls(body.type, graph_content(body), reply_to, body.variables)


@dataclass(frozen=True)
class Target:
    """Who to send to: a number (with an optional channel) or an existing conversation."""

    to: str | None = None
    channel_id: uuid.UUID | None = None
    instance_name: str | None = None
    conversation_id: uuid.UUID | None = None


def legacy_message(body: LegacySendIn) -> SendMessageIn:
    """The /v1 request equivalent to an /api/v1/whatsapp/send body."""
    if body.message_type == "template":
        if not body.template_name:
            raise ValidationFailed.on("template_name", "Required for template messages")
        components = (
            [TemplateComponent(type="body", parameters=body.template_parameters)]
            if body.template_parameters
            else None
        )
        template = TemplateIn(
            name=body.template_name,
            language=TemplateLanguage(code=body.template_language),
            components=components,
        )
        return SendMessageIn(to=body.to, type="template", template=template)
    if not body.message:
        raise ValidationFailed.on("message", "Required for text messages")
    return SendMessageIn(to=body.to, type="text", text=TextIn(body=body.message))
