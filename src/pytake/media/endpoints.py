"""/v1/media: serve stored media (with ranges and signed URLs), upload files, retention."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import StreamingResponse

from pytake.auth.dependencies import (
    SCOPE_CHECKS,
    DbSession,
    SignedIn,
    require_scope,
)
from pytake.auth.principal import Principal
from pytake.auth.scopes import Scope
from pytake.errors import NotFound, PermissionDenied
from pytake.media import service
from pytake.media.schemas import MediaDetailOut, RetentionIn, RetentionOut, SignedUrlOut
from pytake.media.serving import signature_valid, stream_media
from pytake.media.storage import MediaStorage

router = APIRouter(prefix="/media", tags=["media"])

MessagesSend = Annotated[Principal, Depends(require_scope(Scope.MESSAGES_SEND))]
WhatsappWrite = Annotated[Principal, Depends(require_scope(Scope.WHATSAPP_WRITE))]
# Signed URLs carry their own authorisation: no bearer header, the anonymous rate limit.
signed_router = APIRouter(prefix="/media", tags=["media"])

_BYTES: dict[str, object] = {
    "description": "The file's bytes (206 with `Content-Range` for a `Range` request)",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}
_SERVE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: _BYTES,
    206: {"description": "Partial content (a `Range` request)"},
    409: {"description": "`media_not_available`: pending, failed or expired"},
    416: {"description": "`range_not_satisfiable`"},
}


async def can_read_media(principal: SignedIn) -> Principal:
    """Whoever may read messages or conversations may read their media."""
    if not any(principal.can(s) for s in ("messages:read", "conversations:read", "messages:send")):
        raise PermissionDenied("This credential lacks the 'messages:read' scope")
    return principal


SCOPE_CHECKS[can_read_media] = "messages:read"


def media_storage(request: Request) -> MediaStorage:
    storage: MediaStorage = request.app.state.runtime.media_storage
    return storage


RangeHeader = Annotated[str | None, Header(alias="Range", description="`bytes=start-end`")]


@router.post("", status_code=201, response_model=MediaDetailOut)
async def upload_media(
    request: Request,
    principal: MessagesSend,
    session: DbSession,
    file: UploadFile = File(description="The file (its part's Content-Type is its MIME type)."),
    type: Literal["image", "video", "audio", "document", "sticker"] | None = Form(
        default=None, description="Check the file against WhatsApp's rules for this type now."
    ),
) -> MediaDetailOut:
    """Store a file to send later (`{"media_id": …}` in `POST /v1/messages`); it goes to
    WhatsApp when first sent from a number."""
    media = await service.store_upload(
        session, principal, request.app.state.settings, media_storage(request), file, type
    )
    return await service.media_detail(session, media)


@router.put("/settings/retention", response_model=RetentionOut)
async def set_retention(
    body: RetentionIn,
    principal: WhatsappWrite,
    session: DbSession,
) -> RetentionOut:
    """Delete stored media older than `retention_days` (messages stay, their media `expired`)."""
    await service.set_retention_days(session, principal, body.retention_days)
    return RetentionOut(retention_days=body.retention_days)


@router.get("/settings/retention", response_model=RetentionOut)
async def get_retention(
    session: DbSession, principal: Principal = Depends(can_read_media)
) -> RetentionOut:
    """The organisation's media retention (null: kept forever)."""
    return RetentionOut(retention_days=await service.retention_days(session, principal))


@router.get("/{media_id}", response_class=StreamingResponse, responses=_SERVE_RESPONSES)
async def get_media_bytes(
    request: Request,
    media_id: uuid.UUID,
    session: DbSession,
    range_header: RangeHeader = None,
    principal: Principal = Depends(can_read_media),
) -> StreamingResponse:
    """The file itself, with its type, a sanitised file name, and byte ranges."""
    media = await service.get_media(session, principal, media_id)
    return await stream_media(media_storage(request), media, range_header)


@router.get("/{media_id}/info", response_model=MediaDetailOut)
async def get_media_info(
    media_id: uuid.UUID,
    session: DbSession,
    principal: Principal = Depends(can_read_media),
) -> MediaDetailOut:
    """What is known of a media item: status, type, size, name, why a fetch failed."""
    return await service.media_detail(
        session, await service.get_media(session, principal, media_id)
    )


@router.get("/{media_id}/url", response_model=SignedUrlOut, responses={409: _SERVE_RESPONSES[409]})
async def get_signed_url(
    request: Request,
    media_id: uuid.UUID,
    session: DbSession,
    principal: Principal = Depends(can_read_media),
) -> SignedUrlOut:
    """A short-lived URL for `<img>`/`<audio>` and integrations: no Authorization header."""
    media = await service.get_media(session, principal, media_id)
    url, expires_at = service.signed_url(request.app.state.settings, str(request.base_url), media)
    return SignedUrlOut(url=url, expires_at=expires_at)


@signed_router.get(
    "/{media_id}/content", response_class=StreamingResponse, responses=_SERVE_RESPONSES
)
async def get_signed_content(
    request: Request,
    media_id: uuid.UUID,
    session: DbSession,
    expires: int = Query(ge=0, le=2**40),
    signature: str = Query(min_length=1, max_length=100),
    range_header: RangeHeader = None,
) -> StreamingResponse:
    """The bytes behind a signed URL (`GET /v1/media/{id}/url`); 404 once it has expired."""
    if not signature_valid(request.app.state.settings.secret_key, media_id, expires, signature):
        raise NotFound("Media not found (or the link has expired)")
    media = await service.stored_for_signature(session, media_id)
    return await stream_media(media_storage(request), media, range_header)
