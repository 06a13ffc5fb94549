"""Message templates: create (validated, then submitted to Meta), list, get, delete, preview.

The public API other domains call (campaigns, chatbots, sending):

- `get_template(session, organization_id, template_id)` → the organisation's template (404).
- `find_template(session, organization_id, name, language, *, business_account_id=None,
  channel_id=None)` → the template by name and language, or None.
- `sendable_template(session, organization_id, *, template_id=None, name=None,
  language=None, channel_id=None)` → the template, checked APPROVED (404 / 422).
- `ensure_approved(template)` → raises `TemplateNotApproved` (422 naming the status).
- `template_message(template, variables)` → the Graph `template` object of a send.
- `send_components(template, variables)` → just its `components` (422 on missing variables).
- `variable_names(template)`, `missing_variables(template, variables)`.
- `check_send_parameters(template, components)` → a hand-built send matches (422 otherwise).
- `check_template_send(session, channel, graph_template)` → what sending calls before queueing.
- `render_preview(template, variables)` → the text the customer sees.

Variables map onto parameters as pytake.template.parameters describes: NAMED by name,
POSITIONAL by "1", "2"…, "header.1" / "header" for the header, "button.<index>" for buttons.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pytake.auth.principal import Principal
from pytake.channel.providers import provider_for
from pytake.config import Settings
from pytake.db import unit_of_work
from pytake.errors import (
    Conflict,
    FieldError,
    NotFound,
    PyTakeError,
    ServiceUnavailable,
    ValidationFailed,
)
from pytake.kit.crypto import SecretUnreadable
from pytake.kit.pagination import PageParams
from pytake.models import Channel, MessageTemplate
from pytake.models.base import utcnow
from pytake.template.parameters import (
    check_send_parameters,
    missing_variables,
    send_components,
    template_message,
    variable_names,
)
from pytake.template.preview import Preview, render_preview
from pytake.template.rules import normalize_language, validate_template
from pytake.template.schemas import TemplateCreateIn
from pytake.tenancy import get_scoped, scoped
from pytake.whatsapp.provider import ProviderError, WhatsAppProvider

__all__ = [
    "Preview",
    "TemplateNotApproved",
    "check_send_parameters",
    "check_template_send",
    "create_template",
    "delete_template",
    "ensure_approved",
    "find_template",
    "get_template",
    "list_templates",
    "missing_variables",
    "render_preview",
    "send_components",
    "sendable_template",
    "template_message",
    "variable_names",
]

log = logging.getLogger(__name__)

# Meta's error subcode for "a template with this name already exists in this language".
DUPLICATE_SUBCODE = 2388024


class TemplateNotApproved(PyTakeError):
    """The template exists but Meta has not approved it (or paused, disabled it): 422."""

    status = 422
    code = "template_not_approved"
    documented_as = "validation_error"
    default_message = "The template is not approved (only APPROVED templates can be sent)"


# -- the public API for other domains ---------------------------------------------------------


async def get_template(
    session: AsyncSession, organization_id: uuid.UUID, template_id: uuid.UUID
) -> MessageTemplate:
    """The organisation's template by PyTake id; another organisation's is a 404."""
    template = await session.scalar(
        select(MessageTemplate).where(
            MessageTemplate.id == template_id, MessageTemplate.organization_id == organization_id
        )
    )
    if template is None:
        raise NotFound("Template not found")
    return template


async def find_template(
    session: AsyncSession,
    organization_id: uuid.UUID,
    name: str,
    language: str,
    *,
    business_account_id: str | None = None,
    channel_id: uuid.UUID | None = None,
) -> MessageTemplate | None:
    """The organisation's template with this name and language (in the Business Account of
    `channel_id` or `business_account_id` when given), or None when PyTake does not know it.
    With several accounts and no account given, an APPROVED one is preferred."""
    stmt = select(MessageTemplate).where(
        MessageTemplate.organization_id == organization_id,
        MessageTemplate.name == name,
        MessageTemplate.language == normalize_language(language),
    )
    if channel_id is not None and business_account_id is None:
        business_account_id = await session.scalar(
            select(Channel.business_account_id).where(
                Channel.id == channel_id,
                Channel.organization_id == organization_id,
            )
        )
        if business_account_id is None:
            return None
    if business_account_id is not None:
        stmt = stmt.where(MessageTemplate.business_account_id == business_account_id)
    rows = list(await session.scalars(stmt.order_by(MessageTemplate.created_at)))
    approved = [t for t in rows if t.status == "APPROVED"]
    preferred = approved or rows
    return preferred[0] if preferred else None


def not_approved(template: MessageTemplate) -> str | None:
    """Why Meta would not send `template` (its status and reason), or None when APPROVED."""
    if template.status == "APPROVED":
        return None
    reason = f" ({template.status_reason})" if template.status_reason else ""
    return (
        f"Template '{template.name}' ({template.language}) is {template.status}{reason}; "
        "only APPROVED templates can be sent"
    )


def ensure_approved(template: MessageTemplate) -> None:
    """Refuse (422 `template_not_approved`, naming the status) a template Meta would not send."""
    why = not_approved(template)
    if why is None:
        return
    raise TemplateNotApproved(
        why,
        details=[FieldError("template", f"status is {template.status}")],
        extra={
            "template": {
                "id": str(template.id),
                "name": template.name,
                "language": template.language,
                "status": template.status,
                "reason": template.status_reason,
            }
        },
    )


async def sendable_template(
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    template_id: uuid.UUID | None = None,
    name: str | None = None,
    language: str | None = None,
    channel_id: uuid.UUID | None = None,
) -> MessageTemplate:
    """The template a campaign or bot names (by id, or by name and language), checked to be
    APPROVED: 404 when the organisation has no such template, 422 when it is not approved."""
    if template_id is not None:
        template = await get_template(session, organization_id, template_id)
    elif name and language:
        found = await find_template(session, organization_id, name, language, channel_id=channel_id)
        if found is None:
            raise NotFound(f"Template '{name}' ({language}) not found")
        template = found
    else:
        raise ValidationFailed.on("template", "give a template id, or a name and a language")
    ensure_approved(template)
    return template


async def check_template_send(
    session: AsyncSession, channel: Channel, template: Mapping[str, Any]
) -> None:
    """Before a send that names a template (`{name, language: {code}, components}`, the Graph
    object): when PyTake knows it in the number's Business Account it must be APPROVED (422
    `template_not_approved`) and the parameters must match it (422 naming each missing or
    extra one). A template PyTake does not know is left to Meta (132001 and friends)."""
    if channel.provider != "official" or not channel.business_account_id:
        return
    language = template.get("language")
    code = language.get("code") if isinstance(language, Mapping) else language
    name = template.get("name")
    if not isinstance(name, str) or not isinstance(code, str):
        return
    known = await find_template(
        session,
        channel.organization_id,
        name,
        code,
        business_account_id=channel.business_account_id,
    )
    if known is None:
        return
    ensure_approved(known)
    components = template.get("components")
    check_send_parameters(known, components if isinstance(components, list) else [])


# -- CRUD ---------------------------------------------------------------------------------------


async def template_channel(
    session: AsyncSession, principal: Principal, channel_id: uuid.UUID | None
) -> Channel:
    """The Cloud API number whose Business Account holds the templates (default: the
    organisation's default number)."""
    if channel_id is None:
        channel = await session.scalar(
            select(Channel).where(
                Channel.organization_id == principal.organization_id,
                Channel.is_default.is_(True),
            )
        )
        if channel is None:
            raise ValidationFailed.on(
                "channel_id", "the organisation has no default WhatsApp number; give channel_id"
            )
    else:
        channel = await get_scoped(session, Channel, channel_id, principal, what="Channel")
    if channel.provider != "official":
        raise ValidationFailed.on(
            "channel_id", "templates live in a Meta Business Account: use a Cloud API number"
        )
    if not channel.business_account_id:
        raise ValidationFailed.on(
            "channel_id",
            "the number has no business_account_id (its WhatsApp Business Account id); "
            "set it on the WhatsApp configuration",
        )
    return channel


async def template_provider(
    channel: Channel, settings: Settings, http: aiohttp.ClientSession
) -> WhatsAppProvider:
    """The provider port of the number (503 when its token cannot be decrypted)."""
    try:
        return await provider_for(channel, settings, http)
    except SecretUnreadable as exc:
        raise ServiceUnavailable(
            "The number's access token cannot be decrypted; enter it again"
        ) from exc


def meta_refusal(error: ProviderError, what: str) -> PyTakeError:
    """Meta's answer to a template call as our error: a duplicate is a 409, other refusals of
    the request a 422 with Meta's words, Meta or the network failing a 503."""
    said = error.details or error.title or error.message
    if error.subcode == DUPLICATE_SUBCODE:
        return Conflict(
            f"Meta already has this template: {said}",
            details=[FieldError("name", "a template with this name and language exists")],
        )
    if error.kind == "transport" or (error.http_status or 0) >= 500 or error.retryable:
        return ServiceUnavailable(f"Meta could not be reached to {what}: {error.message}")
    return ValidationFailed(
        f"Meta refused to {what}: {said}",
        details=[FieldError("components", said)],
        extra={"whatsapp_error": {"code": error.code, "subcode": error.subcode, "details": said}},
    )


def _creation_body(data: TemplateCreateIn, components: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": data.name,
        "language": data.language,
        "category": data.category,
        "components": components,
    }
    if data.parameter_format == "NAMED":
        body["parameter_format"] = "NAMED"
    if data.allow_category_change is not None:
        body["allow_category_change"] = data.allow_category_change
    return body


async def create_template(
    factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: aiohttp.ClientSession,
    principal: Principal,
    data: TemplateCreateIn,
) -> MessageTemplate:
    """Check Meta's rules (422 naming the component and field), then submit the template.

    The row is committed (PENDING, no Meta id yet) before Meta hears of the template, so a
    status webhook that overtakes Meta's answer finds it by name and language. Meta's answer
    (id, status, category) is kept afterwards unless a webhook already moved the status; if
    Meta refuses, the row goes again.
    """
    components = validate_template(
        data.name, data.language, data.category, data.parameter_format, data.components
    )
    try:
        template, provider = await _insert_pending(
            factory, settings, http, principal, data, components
        )
    except IntegrityError as exc:  # a concurrent create of the same name and language won
        raise Conflict(
            f"Template '{data.name}' already exists in {data.language} for this Business Account",
            details=[FieldError("name", "already exists in this language")],
        ) from exc
    try:
        created = await provider.create_template(_creation_body(data, components))
    except ProviderError as exc:
        async with unit_of_work(factory) as session:
            await session.execute(delete(MessageTemplate).where(MessageTemplate.id == template.id))
        raise meta_refusal(exc, "create the template") from exc
    async with unit_of_work(factory) as session:
        values: dict[str, Any] = {"meta_template_id": created.id, "updated_at": utcnow()}
        if created.category:
            values["category"] = created.category
        await session.execute(
            update(MessageTemplate).where(MessageTemplate.id == template.id).values(**values)
        )
        # Meta's answer is older than any status webhook already applied.
        await session.execute(
            update(MessageTemplate)
            .where(MessageTemplate.id == template.id, MessageTemplate.status_updated_at.is_(None))
            .values(status=created.status)
        )
        return await get_template(session, principal.organization_id, template.id)


async def _insert_pending(
    factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: aiohttp.ClientSession,
    principal: Principal,
    data: TemplateCreateIn,
    components: list[dict[str, Any]],
) -> tuple[MessageTemplate, WhatsAppProvider]:
    async with unit_of_work(factory) as session:
        channel = await template_channel(session, principal, data.channel_id)
        await _refuse_duplicate(session, principal.organization_id, channel, data)
        provider = await template_provider(channel, settings, http)
        template = MessageTemplate(
            id=uuid.uuid4(),
            organization_id=principal.organization_id,
            channel_id=channel.id,
            business_account_id=channel.business_account_id,
            name=data.name,
            language=data.language,
            category=data.category,
            parameter_format=data.parameter_format,
            components=components,
            status="PENDING",
        )
        session.add(template)
    return template, provider


async def _refuse_duplicate(
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel: Channel,
    data: TemplateCreateIn,
) -> None:
    clash = await session.scalar(
        select(MessageTemplate.id).where(
            MessageTemplate.organization_id == organization_id,
            MessageTemplate.business_account_id == channel.business_account_id,
            MessageTemplate.name == data.name,
            MessageTemplate.language == data.language,
        )
    )
    if clash is not None:
        raise Conflict(
            f"Template '{data.name}' already exists in {data.language} for this Business Account",
            details=[FieldError("name", "already exists in this language")],
            extra={"template_id": str(clash)},
        )


async def list_templates(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    *,
    name: str | None = None,
    language: str | None = None,
    category: str | None = None,
    status: str | None = None,
    channel_id: uuid.UUID | None = None,
) -> tuple[list[MessageTemplate], int]:
    """The organisation's templates, filtered; by name then language."""
    stmt = scoped(select(MessageTemplate), MessageTemplate, principal)
    if name is not None:
        stmt = stmt.where(MessageTemplate.name == name)
    if language is not None:
        stmt = stmt.where(MessageTemplate.language == normalize_language(language))
    if category is not None:
        stmt = stmt.where(MessageTemplate.category == category)
    if status is not None:
        stmt = stmt.where(MessageTemplate.status == status)
    if channel_id is not None:
        channel = await get_scoped(session, Channel, channel_id, principal, what="Channel")
        stmt = stmt.where(MessageTemplate.business_account_id == channel.business_account_id)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await session.scalars(
        stmt.order_by(MessageTemplate.name, MessageTemplate.language, MessageTemplate.id)
        .offset(params.offset)
        .limit(params.limit)
    )
    return list(rows), total


async def get_scoped_template(
    session: AsyncSession, principal: Principal, template_id: uuid.UUID
) -> MessageTemplate:
    """The caller's template by id (404 for another organisation's)."""
    return await get_scoped(session, MessageTemplate, template_id, principal, what="Template")


async def _channel_of(session: AsyncSession, template: MessageTemplate) -> Channel | None:
    """A Cloud API number of the organisation in the template's Business Account."""
    channel = await session.get(Channel, template.channel_id) if template.channel_id else None
    if channel is not None and channel.business_account_id == template.business_account_id:
        return channel
    return await session.scalar(
        select(Channel)
        .where(
            Channel.organization_id == template.organization_id,
            Channel.provider == "official",
            Channel.business_account_id == template.business_account_id,
        )
        .order_by(Channel.is_default.desc(), Channel.created_at)
        .limit(1)
    )


async def delete_template(
    session: AsyncSession,
    settings: Settings,
    http: aiohttp.ClientSession,
    principal: Principal,
    template_id: uuid.UUID,
) -> None:
    """Delete the template at Meta (this language only, by its id) and then here."""
    template = await get_scoped_template(session, principal, template_id)
    channel = await _channel_of(session, template)
    if template.meta_template_id and channel is not None:
        provider = await template_provider(channel, settings, http)
        try:
            await provider.delete_template(template.name, template.meta_template_id)
        except ProviderError as exc:
            # Already gone at Meta (deleted in its tools): delete our copy too.
            if exc.code != 100 or (exc.http_status or 0) >= 500:
                raise meta_refusal(exc, "delete the template") from exc
            log.info("template %s was already gone at Meta: %s", template.id, exc)
    await session.delete(template)
    await session.flush()


def preview(template: MessageTemplate, variables: Any) -> Preview:
    """The template as the customer will see it with these variables."""
    return render_preview(template, variables)
