"""/v1/templates: message templates kept in step with Meta (create, list, get, delete, preview,
sync)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from pytake.auth.dependencies import DbSession, require_scope
from pytake.auth.principal import Principal
from pytake.auth.scopes import Scope
from pytake.kit.pagination import Page, Paging, page_meta
from pytake.models import MessageTemplate
from pytake.template import service, sync
from pytake.template.parameters import variable_names
from pytake.template.schemas import (
    Category,
    PreviewButtonOut,
    PreviewIn,
    PreviewOut,
    SyncOut,
    TemplateCreateIn,
    TemplateOut,
    TemplateStatus,
)

router = APIRouter(prefix="/templates", tags=["templates"])

Reader = Annotated[Principal, Depends(require_scope(Scope.TEMPLATES_READ))]
Writer = Annotated[Principal, Depends(require_scope(Scope.TEMPLATES_WRITE))]

_CREATE_RESPONSES: dict[int | str, dict[str, object]] = {
    201: {"description": "Submitted to Meta; `status` is Meta's answer (PENDING until review)"},
    409: {"description": "A template with this name and language already exists"},
    422: {"description": "A rule of Meta's is broken (the component and field are named)"},
    503: {"description": "Meta could not be reached; nothing was created"},
}


def to_out(template: MessageTemplate) -> TemplateOut:
    """The API view of a template (with the variable names a send takes)."""
    return TemplateOut(
        id=template.id,
        organization_id=template.organization_id,
        channel_id=template.channel_id,
        business_account_id=template.business_account_id,
        meta_template_id=template.meta_template_id,
        name=template.name,
        language=template.language,
        category=template.category,
        previous_category=template.previous_category,
        parameter_format=template.parameter_format,
        components=template.components or [],
        status=template.status,
        status_reason=template.status_reason,
        rejection_info=template.rejection_info,
        quality_score=template.quality_score,
        variables=variable_names(template),
        status_updated_at=template.status_updated_at,
        last_synced_at=template.last_synced_at,
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


@router.post("", status_code=201, response_model=TemplateOut, responses=_CREATE_RESPONSES)
async def create_template(
    body: TemplateCreateIn, request: Request, principal: Writer
) -> TemplateOut:
    """Check the template against Meta's rules, then submit it to the number's Business
    Account (`POST /{waba_id}/message_templates`). Approval arrives later by webhook."""
    state = request.app.state
    template = await service.create_template(
        state.session_factory, state.settings, state.http, principal, body
    )
    return to_out(template)


@router.get("", response_model=Page[TemplateOut])
async def list_templates(
    params: Paging,
    principal: Reader,
    session: DbSession,
    name: Annotated[str | None, Query(max_length=512)] = None,
    language: Annotated[str | None, Query(max_length=15)] = None,
    category: Annotated[Category | None, Query()] = None,
    status: Annotated[TemplateStatus | None, Query()] = None,
    channel_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[TemplateOut]:
    """The organisation's templates, by name and language."""
    rows, total = await service.list_templates(
        session,
        principal,
        params,
        name=name,
        language=language,
        category=category,
        status=status,
        channel_id=channel_id,
    )
    return Page[TemplateOut](data=[to_out(t) for t in rows], meta=page_meta(params, total))


@router.post("/sync", response_model=SyncOut)
async def sync_templates(
    request: Request,
    principal: Writer,
    session: DbSession,
    channel_id: Annotated[
        uuid.UUID | None, Query(description="One number; all when omitted")
    ] = None,
) -> SyncOut:
    """Read every template of the organisation's Business Accounts from Meta, page by page,
    and create or update PyTake's copies (templates made in Meta's own tools appear too)."""
    state = request.app.state
    return await sync.sync_organization(session, state.settings, state.http, principal, channel_id)


@router.get("/{template_id}", response_model=TemplateOut)
async def get_template(
    template_id: uuid.UUID, principal: Reader, session: DbSession
) -> TemplateOut:
    return to_out(await service.get_scoped_template(session, principal, template_id))


@router.delete("/{template_id}", status_code=204)
async def delete_template(
    template_id: uuid.UUID,
    request: Request,
    principal: Writer,
    session: DbSession,
) -> Response:
    """Delete the template at Meta (this language) and in PyTake."""
    state = request.app.state
    await service.delete_template(session, state.settings, state.http, principal, template_id)
    return Response(status_code=204)


@router.post("/{template_id}/preview", response_model=PreviewOut)
async def preview_template(
    template_id: uuid.UUID,
    body: PreviewIn,
    principal: Reader,
    session: DbSession,
) -> PreviewOut:
    """The message exactly as the customer will see it with these variables (header, body,
    footer, buttons as text), the variables that are missing and, when none is, the `template`
    object that sends it."""
    template = await service.get_scoped_template(session, principal, template_id)
    shown = service.preview(template, body.variables)
    complete = not shown.missing
    return PreviewOut(
        header=shown.header,
        body=shown.body,
        footer=shown.footer,
        buttons=[PreviewButtonOut.model_validate(b) for b in shown.buttons],
        text=shown.text,
        missing=shown.missing,
        unused=shown.unused,
        complete=complete,
        message=service.template_message(template, body.variables) if complete else None,
    )
