"""/v1/contacts and /v1/tags: the CRM."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, File, Query, Request, Response, UploadFile
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from pytake.auth.dependencies import DbSession, require_scope
from pytake.auth.principal import Principal
from pytake.auth.scopes import Scope
from pytake.contact import bulk, importer, listing, service
from pytake.contact import tags as tag_service
from pytake.contact.export import export_csv
from pytake.contact.listing import Cursor
from pytake.contact.schemas import (
    BulkTagIn,
    BulkTagOut,
    ConsentIn,
    ContactCreateIn,
    ContactDetailOut,
    ContactListMeta,
    ContactOut,
    ContactPage,
    ContactUpdateIn,
    ImportErrorOut,
    ImportJobOut,
    TagCreateIn,
    TagOut,
    TagUpdateIn,
)
from pytake.contact.service import ContactFilter
from pytake.errors import ValidationFailed
from pytake.kit.pagination import Paging, page_meta
from pytake.models.contact import Contact, ContactImportError, ContactImportJob, Tag

router = APIRouter(prefix="/contacts", tags=["contacts"])
tags_router = APIRouter(prefix="/tags", tags=["tags"])

Reader = Annotated[Principal, Depends(require_scope(Scope.CONTACTS_READ))]
Writer = Annotated[Principal, Depends(require_scope(Scope.CONTACTS_WRITE))]


def contact_filter(
    search: Annotated[
        str | None,
        Query(
            max_length=200, description="Name, phone or e-mail fragment; case/accent-insensitive."
        ),
    ] = None,
    tags: Annotated[
        list[str] | None,
        Query(description="Repeatable or comma-separated; contacts having all of them."),
    ] = None,
    opt_in: Annotated[bool | None, Query(description="Filter by opt-in status.")] = None,
) -> ContactFilter:
    names = [t.strip() for value in tags or [] for t in value.split(",") if t.strip()]
    return ContactFilter(search=search, tags=names, opt_in=opt_in)


async def _out(session: AsyncSession, contact: Contact) -> ContactOut:
    names = await tag_service.tag_names_of(session, [contact.id])
    return ContactOut.model_validate({**_fields(contact), "tags": names[contact.id]})


def _fields(contact: Contact) -> dict[str, object]:
    return {c: getattr(contact, c) for c in ContactDetailOut.model_fields if hasattr(contact, c)}


def list_cursor(
    params: Paging,
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            description=(
                "`meta.next_cursor` of the previous page: the page after it (keyset paging, as "
                "fast deep in the list as at the top). Not combined with `page`."
            ),
        ),
    ] = None,
) -> Cursor | None:
    if cursor is None:
        return None
    if params.page != 1:
        raise ValidationFailed.on("cursor", "Give either page or cursor, not both")
    return Cursor.decode(cursor)


@router.get("", response_model=ContactPage)
async def list_contacts(
    params: Paging,
    principal: Reader,
    session: DbSession,
    cursor: Cursor | None = Depends(list_cursor),
    filt: ContactFilter = Depends(contact_filter),
) -> ContactPage:
    """Live contacts, newest first (ties by id), by `page` number or by `cursor`.

    `meta.total` is exact up to 10,000 matches (1,000 with a search or several filters, when the
    planner does not expect over 2,000); beyond that (PostgreSQL) it is the query planner's
    estimate and `meta.total_is_estimate` is true. Walk a long list with
    `cursor` = `meta.next_cursor`: each page then costs the same however deep it is.
    """
    found = await listing.list_contacts(session, principal, params, filt, cursor)
    names = await tag_service.tag_names_of(session, [c.id for c in found.contacts])
    meta = page_meta(params, found.total).model_dump() | {"current_page": found.current_page}
    return ContactPage(
        data=[
            ContactOut.model_validate({**_fields(c), "tags": names[c.id]}) for c in found.contacts
        ],
        meta=ContactListMeta(
            **meta, total_is_estimate=found.total_is_estimate, next_cursor=found.next_cursor
        ),
    )


@router.post("", status_code=201, response_model=ContactOut)
async def create_contact(
    body: ContactCreateIn, principal: Writer, session: DbSession
) -> ContactOut:
    """Create a contact; its number must be E.164 and not belong to another live contact (409)."""
    contact = await service.create_contact(session, principal, body)
    return await _out(session, contact)


@router.get("/export", response_class=StreamingResponse)
async def export_contacts(
    request: Request,
    principal: Reader,
    filt: ContactFilter = Depends(contact_filter),
) -> StreamingResponse:
    """The filtered contacts as CSV (streamed); attribute keys become columns."""
    return StreamingResponse(
        export_csv(request.app.state.session_factory, principal, filt),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="contacts.csv"'},
    )


@router.post("/import", status_code=202, response_model=ImportJobOut)
async def import_contacts(
    request: Request,
    background: BackgroundTasks,
    file: Annotated[UploadFile, File(description="CSV: whatsapp_id,name,email,tags,…")],
    principal: Writer,
    session: DbSession,
) -> ImportJobOut:
    """Start a CSV import (202); other columns become attributes. Poll the job for progress.

    Rows whose number matches a live contact update it (name and e-mail when given, attributes
    merged, tags added; consent is left as it is); the others create contacts.
    """
    job = await importer.save_upload(session, principal, file.file, file.filename or "")
    # Background tasks run after the request's transaction has committed the job row.
    background.add_task(importer.start_import, request.app.state.session_factory, job.id)
    return _job_out(job, [])


@router.get("/import/{job_id}", response_model=ImportJobOut)
async def get_import_job(job_id: uuid.UUID, principal: Reader, session: DbSession) -> ImportJobOut:
    """An import's progress, counts and first 100 failed rows."""
    job, errors = await importer.get_job(session, principal, job_id)
    return _job_out(job, errors)


def _job_out(job: ContactImportJob, errors: list[ContactImportError]) -> ImportJobOut:
    header_done = job.status == "completed" or job.file_size == 0
    progress = 1.0 if header_done else min(1.0, job.resume_offset / job.file_size)
    return ImportJobOut(
        id=job.id,
        status=job.status,
        filename=job.filename,
        columns=job.columns,
        file_size=job.file_size,
        bytes_processed=job.resume_offset,
        progress=round(progress, 4),
        rows_processed=job.rows_processed,
        created=job.created_count,
        updated=job.updated_count,
        failed=job.failed_count,
        errors=[
            ImportErrorOut(
                row=e.row_number, whatsapp_id=e.whatsapp_id, field=e.field, reason=e.reason
            )
            for e in errors
        ],
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


@router.post("/bulk/tags", response_model=BulkTagOut)
async def bulk_tag(body: BulkTagIn, principal: Writer, session: DbSession) -> BulkTagOut:
    """Add a tag to, or remove it from, every contact matching a filter."""
    affected = await bulk.apply_tag(session, principal, body)
    return BulkTagOut(tag=body.tag.strip(), action=body.action, affected=affected)


@router.get("/{contact_id}", response_model=ContactDetailOut)
async def get_contact(
    contact_id: uuid.UUID, principal: Reader, session: DbSession
) -> ContactDetailOut:
    """One contact with its conversation and message totals."""
    contact = await service.get_contact(session, principal, contact_id)
    return await _detail(session, contact)


async def _detail(session: AsyncSession, contact: Contact) -> ContactDetailOut:
    activity = await service.contact_activity(session, contact)
    names = await tag_service.tag_names_of(session, [contact.id])
    return ContactDetailOut.model_validate(
        {
            **_fields(contact),
            "phone": contact.whatsapp_id,
            "tags": names[contact.id],
            "total_conversations": activity.total_conversations,
            "total_messages": activity.total_messages,
            "last_message_at": activity.last_message_at,
        }
    )


@router.patch("/{contact_id}", response_model=ContactDetailOut)
async def update_contact(
    contact_id: uuid.UUID,
    body: ContactUpdateIn,
    principal: Writer,
    session: DbSession,
) -> ContactDetailOut:
    """Change the given fields; `attributes` merge (null removes a key); `tags` replace the set."""
    contact = await service.update_contact(session, principal, contact_id, body)
    return await _detail(session, contact)


@router.delete("/{contact_id}", status_code=204)
async def delete_contact(contact_id: uuid.UUID, principal: Writer, session: DbSession) -> Response:
    """Soft delete: the contact leaves lists and lookups; its number may be used again."""
    await service.delete_contact(session, principal, contact_id)
    return Response(status_code=204)


@router.post("/{contact_id}/opt-in", response_model=ContactDetailOut)
async def opt_in(
    contact_id: uuid.UUID,
    principal: Writer,
    session: DbSession,
    body: ConsentIn | None = None,
) -> ContactDetailOut:
    """Record the contact's consent to be messaged (with its source)."""
    source = body.source if body else "api"
    contact = await service.change_consent(session, principal, contact_id, True, source)
    return await _detail(session, contact)


@router.post("/{contact_id}/opt-out", response_model=ContactDetailOut)
async def opt_out(
    contact_id: uuid.UUID,
    principal: Writer,
    session: DbSession,
    body: ConsentIn | None = None,
) -> ContactDetailOut:
    """Record that the contact withdrew consent; campaigns skip them from now on."""
    source = body.source if body else "api"
    contact = await service.change_consent(session, principal, contact_id, False, source)
    return await _detail(session, contact)


@router.post("/{contact_id}/block", response_model=ContactDetailOut)
async def block(contact_id: uuid.UUID, principal: Writer, session: DbSession) -> ContactDetailOut:
    """Block the contact: never messaged until unblocked."""
    contact = await service.change_blocked(session, principal, contact_id, True)
    return await _detail(session, contact)


@router.post("/{contact_id}/unblock", response_model=ContactDetailOut)
async def unblock(contact_id: uuid.UUID, principal: Writer, session: DbSession) -> ContactDetailOut:
    contact = await service.change_blocked(session, principal, contact_id, False)
    return await _detail(session, contact)


# --- tags --------------------------------------------------------------------------------------


def _tag_out(tag: Tag, count: int) -> TagOut:
    return TagOut(
        id=tag.id, name=tag.name, color=tag.color, contact_count=count, created_at=tag.created_at
    )


@tags_router.get("", response_model=list[TagOut])
async def list_tags(principal: Reader, session: DbSession) -> list[TagOut]:
    """The organisation's tags by name, each with its number of (live) contacts."""
    return [_tag_out(t, n) for t, n in await tag_service.list_tags(session, principal)]


@tags_router.post("", status_code=201, response_model=TagOut)
async def create_tag(body: TagCreateIn, principal: Writer, session: DbSession) -> TagOut:
    """Create a tag (tags are also created on first use on a contact)."""
    return _tag_out(await tag_service.create_tag(session, principal, body), 0)


@tags_router.get("/{tag_id}", response_model=TagOut)
async def get_tag(tag_id: uuid.UUID, principal: Reader, session: DbSession) -> TagOut:
    return _tag_out(*await tag_service.get_tag(session, principal, tag_id))


@tags_router.patch("/{tag_id}", response_model=TagOut)
async def update_tag(
    tag_id: uuid.UUID,
    body: TagUpdateIn,
    principal: Writer,
    session: DbSession,
) -> TagOut:
    """Rename or recolour a tag; a name in use is a 409."""
    return _tag_out(*await tag_service.update_tag(session, principal, tag_id, body))


@tags_router.delete("/{tag_id}", status_code=204)
async def delete_tag(tag_id: uuid.UUID, principal: Writer, session: DbSession) -> Response:
    """Delete a tag; it is removed from every contact."""
    await tag_service.delete_tag(session, principal, tag_id)
    return Response(status_code=204)
