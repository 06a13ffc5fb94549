"""`POST /v1/messages` request and response models, with WhatsApp's limits.

Per-field limits (lengths, counts) are Pydantic constraints, so a violation is a 422 naming the
field; rules that span fields (the object named by `type`, exactly one of `link`/`id`, what an
interactive type needs) are checked by `check_message`, which names the field too.
Limits follow the protocol reference (Cloud API docs and pywa's docstrings).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pytake.errors import FieldError, ValidationFailed
from pytake.kit.json_values import JsonObject, bounded_json
from pytake.media.schemas import MediaOut

TEXT_MAX = 4096
CAPTION_MAX = 1024
INTERACTIVE_BODY_MAX = 1024
HEADER_FOOTER_MAX = 60
BUTTON_TITLE_MAX = 20
MAX_REPLY_BUTTONS = 3
LIST_MAX_SECTIONS = 10
LIST_MAX_ROWS = 10

MessageType = Literal[
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "interactive",
    "template",
]
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    # Objects whose Graph schema grows often (contact cards, template parameters) pass through,
    # as JSON that can be stored.
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        return bounded_json(data)


# Fields named `body` are length-checked by `check_lengths`, not by Field constraints: the
# app's validation handler drops every `body` segment from an error's location, so a Pydantic
# error on `text.body` would be reported as `text`.
class TextIn(_Strict):
    body: str = Field(description="1 to 4,096 characters.")
    preview_url: bool | None = None


class _MediaIn(_Strict):
    link: str | None = Field(default=None, max_length=2000, description="Public HTTPS URL.")
    url: str | None = Field(default=None, max_length=2000, description="Alias of `link`.")
    id: str | None = Field(
        default=None,
        max_length=200,
        description="Meta's media id, or a PyTake media id (from `POST /v1/media`).",
    )
    media_id: uuid.UUID | None = Field(
        default=None, description="A file stored with `POST /v1/media` (uploaded on first send)."
    )


class ImageIn(_MediaIn):
    caption: str | None = Field(default=None, max_length=CAPTION_MAX)


class VideoIn(_MediaIn):
    caption: str | None = Field(default=None, max_length=CAPTION_MAX)


class DocumentIn(_MediaIn):
    caption: str | None = Field(default=None, max_length=CAPTION_MAX)
    filename: str | None = Field(default=None, max_length=240)


class AudioIn(_MediaIn):
    voice: bool | None = None


class StickerIn(_MediaIn):
    pass


class LocationIn(_Strict):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = Field(default=None, max_length=1000)
    address: str | None = Field(default=None, max_length=1000)


class ContactName(_Open):
    formatted_name: str = Field(min_length=1, max_length=500)


class ContactCard(_Open):
    name: ContactName
    phones: list[dict[str, Any]] | None = None
    emails: list[dict[str, Any]] | None = None


class ReactionIn(_Strict):
    message_id: str = Field(min_length=1, max_length=200)
    emoji: str = Field(max_length=10, description='An emoji; "" removes the reaction.')


class HeaderMedia(_Strict):
    link: str = Field(min_length=1, max_length=2000)


class InteractiveHeader(_Strict):
    type: Literal["text", "image", "video", "document"]
    text: str | None = Field(default=None, min_length=1, max_length=HEADER_FOOTER_MAX)
    image: HeaderMedia | None = None
    video: HeaderMedia | None = None
    document: HeaderMedia | None = None


class InteractiveText(_Strict):
    text: str = Field(description="1 to 1,024 characters.")


class InteractiveFooter(_Strict):
    text: str = Field(min_length=1, max_length=HEADER_FOOTER_MAX)


class ReplyButtonReply(_Strict):
    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1, max_length=BUTTON_TITLE_MAX)


class ReplyButton(_Strict):
    type: Literal["reply"] = "reply"
    reply: ReplyButtonReply


class ListRow(_Strict):
    id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=24)
    description: str | None = Field(default=None, max_length=72)


class ListSection(_Strict):
    title: str | None = Field(default=None, min_length=1, max_length=24)
    rows: list[ListRow] = Field(min_length=1, max_length=LIST_MAX_ROWS)


class CtaUrlParameters(_Strict):
    display_text: str = Field(min_length=1, max_length=BUTTON_TITLE_MAX)
    url: str = Field(min_length=1, max_length=2000)


class InteractiveAction(_Strict):
    """The union of what button, list and cta_url messages take; `check_message` picks."""

    buttons: list[ReplyButton] | None = Field(
        default=None, min_length=1, max_length=MAX_REPLY_BUTTONS
    )
    button: str | None = Field(default=None, min_length=1, max_length=BUTTON_TITLE_MAX)
    sections: list[ListSection] | None = Field(
        default=None, min_length=1, max_length=LIST_MAX_SECTIONS
    )
    name: Literal["cta_url"] | None = None
    parameters: CtaUrlParameters | None = None


class InteractiveIn(_Strict):
    type: Literal["button", "list", "cta_url"]
    header: InteractiveHeader | None = None
    body: InteractiveText
    footer: InteractiveFooter | None = None
    action: InteractiveAction


class TemplateLanguage(_Strict):
    code: str = Field(min_length=2, max_length=15)
    policy: Literal["deterministic"] | None = None


class TemplateParameter(_Open):
    type: str = Field(min_length=1, max_length=30)
    text: str | None = Field(default=None, max_length=32768)


class TemplateComponent(_Open):
    type: Literal["header", "body", "button", "footer", "carousel", "limited_time_offer"]
    sub_type: str | None = Field(default=None, max_length=30)
    index: int | str | None = None
    parameters: list[TemplateParameter] | None = None


class TemplateIn(_Strict):
    name: str = Field(min_length=1, max_length=512)
    language: TemplateLanguage
    components: list[TemplateComponent] | None = None


class ContextIn(_Strict):
    message_id: str = Field(min_length=1, max_length=200, description="wamid being replied to.")


class SendMessageIn(_Strict):
    """A message to one customer; exactly the object named by `type` must be given."""

    to: str = Field(min_length=1, max_length=32, description="E.164, e.g. +5511999999999.")
    type: MessageType
    text: TextIn | None = None
    image: ImageIn | None = None
    video: VideoIn | None = None
    audio: AudioIn | None = None
    document: DocumentIn | None = None
    sticker: StickerIn | None = None
    location: LocationIn | None = None
    contacts: list[ContactCard] | None = Field(default=None, min_length=1, max_length=20)
    reaction: ReactionIn | None = None
    interactive: InteractiveIn | None = None
    template: TemplateIn | None = None
    context: ContextIn | None = None
    variables: JsonObject = Field(
        default_factory=dict,
        description="Values for `{{name}}` placeholders; `{{contact.name}}` and the contact's "
        "attributes are available too.",
    )
    channel_id: uuid.UUID | None = Field(
        default=None, description="The WhatsApp number to send from (default: the default one)."
    )


class ReplyIn(_Strict):
    """A reply inside a conversation: like `POST /v1/messages` without `to` and `channel_id`."""

    type: MessageType
    text: TextIn | None = None
    image: ImageIn | None = None
    video: VideoIn | None = None
    audio: AudioIn | None = None
    document: DocumentIn | None = None
    sticker: StickerIn | None = None
    location: LocationIn | None = None
    contacts: list[ContactCard] | None = Field(default=None, min_length=1, max_length=20)
    reaction: ReactionIn | None = None
    interactive: InteractiveIn | None = None
    template: TemplateIn | None = None
    context: ContextIn | None = None
    variables: JsonObject = Field(default_factory=dict)


_OBJECT_FIELDS = (
    *MEDIA_KINDS,
    *("text", "location", "contacts", "reaction", "interactive", "template"),
)


def _check_media(kind: str, media: _MediaIn) -> list[FieldError]:
    given = [name for name in ("link", "url", "id", "media_id") if getattr(media, name)]
    if len(given) != 1:
        return [
            FieldError(kind, "Give exactly one of `link` (or its alias `url`), `id` or `media_id`")
        ]
    return []


def _check_interactive(item: InteractiveIn) -> list[FieldError]:
    action, errors = item.action, []
    if item.type == "button" and not action.buttons:
        errors.append(FieldError("interactive.action.buttons", "Required for button messages"))
    if item.type == "button" and action.buttons:
        ids = [b.reply.id for b in action.buttons]
        if len(set(ids)) != len(ids):
            errors.append(FieldError("interactive.action.buttons", "Button ids must be unique"))
    if item.type == "list":
        if not action.button:
            errors.append(FieldError("interactive.action.button", "Required for list messages"))
        if not action.sections:
            errors.append(FieldError("interactive.action.sections", "Required for list messages"))
        else:
            errors += _check_sections(action.sections)
    if item.type == "cta_url" and action.parameters is None:
        errors.append(FieldError("interactive.action.parameters", "Required for cta_url messages"))
    header = item.header
    if header is not None:
        part = header.text if header.type == "text" else getattr(header, header.type)
        if part is None:
            errors.append(
                FieldError(f"interactive.header.{header.type}", "Required by the header type")
            )
    return errors


def _check_sections(sections: list[ListSection]) -> list[FieldError]:
    errors = []
    if sum(len(s.rows) for s in sections) > LIST_MAX_ROWS:
        errors.append(
            FieldError("interactive.action.sections", f"At most {LIST_MAX_ROWS} rows in total")
        )
    if len(sections) > 1:
        for index, section in enumerate(sections):
            if not section.title:
                field = f"interactive.action.sections.{index}.title"
                errors.append(FieldError(field, "Required when there is more than one section"))
    ids = [row.id for s in sections for row in s.rows]
    if len(set(ids)) != len(ids):
        errors.append(FieldError("interactive.action.sections", "Row ids must be unique"))
    return errors


def check_lengths(kind: str, content: dict[str, Any]) -> list[FieldError]:
    """Length rules of texts inside objects named `body` (see TextIn)."""
    if kind == "text":
        text, field, limit = content.get("body"), "text.body", TEXT_MAX
    elif kind == "interactive":
        text = (content.get("body") or {}).get("text")
        field, limit = "interactive.body.text", INTERACTIVE_BODY_MAX
    else:
        return []
    if not isinstance(text, str) or not text.strip():
        return [FieldError(field, "Must not be empty")]
    if len(text) > limit:
        return [FieldError(field, f"At most {limit:,} characters (got {len(text):,})")]
    return []


def check_message(body: SendMessageIn | ReplyIn) -> None:
    """Cross-field rules; raises a 422 naming every offending field."""
    errors: list[FieldError] = []
    if getattr(body, body.type) is None:
        errors.append(FieldError(body.type, f"Required when type is '{body.type}'"))
    for name in _OBJECT_FIELDS:
        if name != body.type and getattr(body, name) is not None:
            errors.append(FieldError(name, f"Not allowed when type is '{body.type}'"))
    obj = getattr(body, body.type)
    if body.type in MEDIA_KINDS and obj is not None:
        errors += _check_media(body.type, obj)
    if body.type == "interactive" and obj is not None:
        errors += _check_interactive(obj)
    if body.type in ("text", "interactive") and obj is not None:
        errors += check_lengths(body.type, obj.model_dump())
    if errors:
        raise ValidationFailed(details=errors)


def graph_content(body: SendMessageIn | ReplyIn) -> dict[str, Any]:
    """The Cloud API object named by `type` (contacts wrapped as `{"contacts": [...]}`)."""
    obj = getattr(body, body.type)
    if body.type == "contacts":
        return {"contacts": [card.model_dump(exclude_none=True) for card in obj]}
    content: dict[str, Any] = obj.model_dump(exclude_none=True)
    if body.type in MEDIA_KINDS and "url" in content:
        content["link"] = content.pop("url")
    if body.type in MEDIA_KINDS and "media_id" in content:
        content["media_id"] = str(content["media_id"])
    return content


# --- responses -----------------------------------------------------------------------------


class MessageErrorOut(BaseModel):
    code: int | None
    title: str | None
    message: str | None


class SendMessageOut(BaseModel):
    """The answer to a send: `sent` (201) or `queued` (202, the dispatcher keeps trying)."""

    id: uuid.UUID
    whatsapp_message_id: str | None
    conversation_id: uuid.UUID
    to: str
    status: str
    created_at: datetime


class MessageOut(BaseModel):
    id: uuid.UUID
    whatsapp_message_id: str | None
    conversation_id: uuid.UUID
    contact_id: uuid.UUID
    channel_id: uuid.UUID | None
    direction: str
    type: str
    status: str
    content: dict[str, Any]
    to: str | None = None
    context_message_id: str | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    failed_at: datetime | None = None
    error: MessageErrorOut | None = None
    attempts: int = 0
    created_at: datetime
    media: MediaOut | None = Field(
        default=None, description="The file of an image, video, audio, document or sticker."
    )


class LegacySendIn(BaseModel):
    """`POST /api/v1/whatsapp/send`: a text message or a template."""

    to: str = Field(min_length=1, max_length=32)
    message_type: Literal["text", "template"] = "text"
    message: str | None = Field(default=None, min_length=1, max_length=TEXT_MAX)
    template_name: str | None = Field(default=None, min_length=1, max_length=512)
    template_language: str = Field(default="en_US", min_length=2, max_length=15)
    template_parameters: list[TemplateParameter] = Field(default_factory=list)
    instance_name: str | None = Field(default=None, max_length=200)


class LegacySendOut(BaseModel):
    success: bool
    message_id: str
    status: str
    timestamp: datetime
