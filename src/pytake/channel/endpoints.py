"""WhatsApp configuration routes: /api/v1/whatsapp-configs, /api/v1/whatsapp/instance and
/v1/whatsapp-configs."""

from __future__ import annotations

import uuid
from typing import Annotated

import aiohttp
from fastapi import APIRouter, Depends, Query, Request, Response

from pytake.auth.dependencies import DbSession, require_scope
from pytake.auth.principal import Principal
from pytake.auth.scopes import Scope
from pytake.channel import instances, service
from pytake.channel.schemas import (
    ConfigCreateIn,
    ConfigDeletedOut,
    ConfigListOut,
    ConfigOut,
    ConfigTestOut,
    ConfigUpdateIn,
    DefaultConfigBrief,
    InstanceCreatedOut,
    InstanceCreateIn,
    InstanceStatusOut,
    Provider,
    QrCodeOut,
    SetDefaultOut,
)
from pytake.config import Settings
from pytake.kit.pagination import Page, Paging, page_meta
from pytake.kit.responses import FastJSONResponse

legacy_router = APIRouter(prefix="/whatsapp-configs", tags=["whatsapp configs (/api/v1)"])
instance_router = APIRouter(prefix="/whatsapp/instance", tags=["whatsapp instances (/api/v1)"])
v1_router = APIRouter(prefix="/whatsapp-configs", tags=["whatsapp configs"])

Reader = Annotated[Principal, Depends(require_scope(Scope.WHATSAPP_READ))]
Writer = Annotated[Principal, Depends(require_scope(Scope.WHATSAPP_WRITE))]
ActiveFilter = Annotated[bool | None, Query(description="Only active (true) or inactive (false).")]
ProviderFilter = Annotated[Provider | None, Query(description="official or evolution.")]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _http(request: Request) -> aiohttp.ClientSession:
    http: aiohttp.ClientSession = request.app.state.http
    return http


def _base_url(request: Request) -> str:
    """Where providers reach PyTake: settings.public_base_url, else this request's origin."""
    return _settings(request).public_base_url or str(request.base_url)


# ---- /api/v1/whatsapp-configs (handlers with decorators for both surfaces serve /v1 too) ----


@legacy_router.get("", response_model=ConfigListOut)
async def legacy_list(
    principal: Reader,
    session: DbSession,
    active: ActiveFilter = None,
    provider: ProviderFilter = None,
) -> ConfigListOut:
    """The organisation's WhatsApp numbers; secrets are never included."""
    channels, total = await service.list_channels(session, principal, active, provider)
    return ConfigListOut(configs=[service.to_out(c) for c in channels], total=total)


@legacy_router.post("", status_code=201, response_model=ConfigOut)
@v1_router.post("", status_code=201, response_model=ConfigOut)
async def create_config(
    body: ConfigCreateIn,
    request: Request,
    principal: Writer,
    session: DbSession,
) -> ConfigOut:
    """Add a number (`official`: Meta Cloud API; `evolution`: an Evolution API instance)."""
    channel = await service.create_channel(session, principal, _settings(request), body)
    return service.to_out(channel)


@legacy_router.get("/default", response_model=ConfigOut)
@v1_router.get("/default", response_model=ConfigOut)
async def get_default(principal: Reader, session: DbSession) -> ConfigOut:
    """The default number (used when a send names none)."""
    return service.to_out(await service.get_default(session, principal))


@legacy_router.get("/{config_id}", response_model=ConfigOut)
@v1_router.get("/{config_id}", response_model=ConfigOut)
async def get_config(config_id: uuid.UUID, principal: Reader, session: DbSession) -> ConfigOut:
    return service.to_out(await service.get_channel(session, principal, config_id))


@legacy_router.put("/{config_id}", response_model=ConfigOut)
@v1_router.patch("/{config_id}", response_model=ConfigOut)
async def update_config(
    config_id: uuid.UUID,
    body: ConfigUpdateIn,
    request: Request,
    principal: Writer,
    session: DbSession,
) -> ConfigOut:
    """Partial update: only the fields sent change; omitted secrets are kept."""
    channel = await service.update_channel(session, principal, _settings(request), config_id, body)
    return service.to_out(channel)


@legacy_router.delete("/{config_id}", response_model=ConfigDeletedOut)
async def legacy_delete(
    config_id: uuid.UUID, principal: Writer, session: DbSession
) -> ConfigDeletedOut:
    await service.delete_channel(session, principal, config_id)
    return ConfigDeletedOut(config_id=config_id)


@legacy_router.post(
    "/{config_id}/test",
    response_model=ConfigTestOut,
    responses={400: {"model": ConfigTestOut, "description": "The test failed (`success: false`)"}},
)
async def legacy_test(
    config_id: uuid.UUID,
    request: Request,
    principal: Writer,
    session: DbSession,
) -> Response:
    """Call the provider with the stored credentials; the outcome becomes the health status."""
    result = await service.test_channel(
        session, principal, _settings(request), _http(request), config_id, _base_url(request)
    )
    # A failed test is still a completed test: its health status is recorded (committed).
    return FastJSONResponse(
        result.model_dump(mode="json"), status_code=200 if result.success else 400
    )


@legacy_router.post("/{config_id}/set-default", response_model=SetDefaultOut)
async def legacy_set_default(
    config_id: uuid.UUID, principal: Writer, session: DbSession
) -> SetDefaultOut:
    channel = await service.set_default(session, principal, config_id)
    return SetDefaultOut(
        config=DefaultConfigBrief(id=channel.id, name=channel.name, is_default=True)
    )


# ---- /api/v1/whatsapp/instance --------------------------------------------------------------


@instance_router.post("/create", status_code=201, response_model=InstanceCreatedOut)
async def create_instance(
    body: InstanceCreateIn,
    request: Request,
    principal: Writer,
    session: DbSession,
) -> InstanceCreatedOut:
    """Create an Evolution instance whose webhooks come to PyTake; returns the first QR code."""
    return await instances.create_instance(
        session, principal, _settings(request), _http(request), body, _base_url(request)
    )


@instance_router.get("/{name}/status", response_model=InstanceStatusOut)
async def instance_status(
    name: str, request: Request, principal: Reader, session: DbSession
) -> InstanceStatusOut:
    return await instances.instance_status(
        session, principal, _settings(request), _http(request), name
    )


@instance_router.get("/{name}/qrcode", response_model=QrCodeOut)
async def instance_qrcode(
    name: str, request: Request, principal: Writer, session: DbSession
) -> QrCodeOut:
    """A QR code to link the phone (409 when the instance is already connected)."""
    return await instances.instance_qrcode(
        session, principal, _settings(request), _http(request), name
    )


# ---- /v1/whatsapp-configs -------------------------------------------------------------------


@v1_router.get("", response_model=Page[ConfigOut])
async def v1_list(
    params: Paging,
    principal: Reader,
    session: DbSession,
    active: ActiveFilter = None,
    provider: ProviderFilter = None,
) -> Page[ConfigOut]:
    channels, total = await service.list_channels(session, principal, active, provider, params)
    return Page[ConfigOut](
        data=[service.to_out(c) for c in channels], meta=page_meta(params, total)
    )


@v1_router.delete("/{config_id}", status_code=204)
async def v1_delete(config_id: uuid.UUID, principal: Writer, session: DbSession) -> Response:
    await service.delete_channel(session, principal, config_id)
    return Response(status_code=204)


@v1_router.post("/{config_id}/test", response_model=ConfigTestOut)
async def v1_test(
    config_id: uuid.UUID,
    request: Request,
    principal: Writer,
    session: DbSession,
) -> ConfigTestOut:
    """Run a connectivity test; the answer is 200 either way, `success` tells the outcome."""
    return await service.test_channel(
        session, principal, _settings(request), _http(request), config_id, _base_url(request)
    )


@v1_router.post("/{config_id}/set-default", response_model=ConfigOut)
async def v1_set_default(config_id: uuid.UUID, principal: Writer, session: DbSession) -> ConfigOut:
    return service.to_out(await service.set_default(session, principal, config_id))


@v1_router.post("/{config_id}/instance", status_code=201, response_model=InstanceCreatedOut)
async def v1_create_instance(
    config_id: uuid.UUID,
    request: Request,
    principal: Writer,
    session: DbSession,
) -> InstanceCreatedOut:
    """Create an Evolution number's instance on its server, wired to post its webhooks to
    PyTake; returns the first QR code (409 for a Cloud API number)."""
    name = await instances.instance_name_of(session, principal, config_id)
    body = InstanceCreateIn(instance_name=name, config_id=config_id)
    return await instances.create_instance(
        session, principal, _settings(request), _http(request), body, _base_url(request)
    )


@v1_router.get("/{config_id}/qrcode", response_model=QrCodeOut)
async def v1_qrcode(
    config_id: uuid.UUID,
    request: Request,
    principal: Writer,
    session: DbSession,
) -> QrCodeOut:
    """An Evolution number's QR code to link the phone (409 when it is already connected, or
    for a Cloud API number)."""
    name = await instances.instance_name_of(session, principal, config_id)
    return await instances.instance_qrcode(
        session, principal, _settings(request), _http(request), name
    )


@v1_router.get("/{config_id}/connection", response_model=InstanceStatusOut)
async def v1_connection(
    config_id: uuid.UUID,
    request: Request,
    principal: Reader,
    session: DbSession,
) -> InstanceStatusOut:
    """An Evolution number's live connection state (409 for a Cloud API number)."""
    name = await instances.instance_name_of(session, principal, config_id)
    return await instances.instance_status(
        session, principal, _settings(request), _http(request), name
    )
