"""WhatsApp configurations as both API surfaces show them. Secrets go in, never out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, WithJsonSchema, field_validator

from pytake.models.channel import DEFAULT_THROUGHPUT, MAX_THROUGHPUT

Provider = Literal["official", "evolution"]
HealthStatus = Literal["unknown", "healthy", "unhealthy", "inactive"]

_SECRET = "Write-only: stored encrypted, never returned."
# Credentials PyTake sends in an HTTP header (`Authorization: Bearer`, Evolution's `apikey`):
# visible ASCII only, so they can be encoded there and cannot inject a header line.
HEADER_SAFE = r"^[!-~]*$"
_THROUGHPUT = (
    "Messages per second Meta lets this number send: 80 by default, up to 1,000 once Meta has "
    "raised the number's throughput. Campaigns on the number are paced to "
    "min(send_rate_limit, throughput), shared between the campaigns running on it."
)
_THROUGHPUT_SCHEMA = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_THROUGHPUT,
    "description": _THROUGHPUT,
}


class ConfigCreateIn(BaseModel):
    """`official` needs phone_number_id, access_token and app_secret; `evolution` needs
    evolution_url, evolution_api_key and instance_name."""

    name: str = Field(min_length=1, max_length=200)
    provider: Provider
    phone_number_id: str | None = Field(default=None, max_length=64)
    access_token: str | None = Field(
        default=None, max_length=4096, pattern=HEADER_SAFE, description=_SECRET
    )
    app_secret: str | None = Field(default=None, max_length=512, description=_SECRET)
    business_account_id: str | None = Field(default=None, max_length=64)
    webhook_verify_token: str | None = Field(
        default=None,
        max_length=200,
        description="Token Meta echoes in the webhook subscription; generated when omitted.",
    )
    evolution_url: str | None = Field(default=None, max_length=500)
    evolution_api_key: str | None = Field(
        default=None, max_length=512, pattern=HEADER_SAFE, description=_SECRET
    )
    instance_name: str | None = Field(default=None, max_length=100)
    is_active: bool = True
    is_default: bool = False
    chatbot_id: uuid.UUID | None = Field(
        default=None,
        description="The chatbot that answers on this number (none: every active chatbot).",
    )
    throughput: int = Field(
        default=DEFAULT_THROUGHPUT, ge=1, le=MAX_THROUGHPUT, description=_THROUGHPUT
    )


class ConfigUpdateIn(BaseModel):
    """Partial update: only the fields sent change."""

    # Not nullable: a number always has a name (omit it to keep the current one).
    name: Annotated[
        str | None, WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 200})
    ] = Field(default=None, min_length=1, max_length=200)
    phone_number_id: str | None = Field(default=None, max_length=64)
    access_token: str | None = Field(
        default=None, max_length=4096, pattern=HEADER_SAFE, description=_SECRET
    )
    app_secret: str | None = Field(default=None, max_length=512, description=_SECRET)
    business_account_id: str | None = Field(default=None, max_length=64)
    webhook_verify_token: str | None = Field(default=None, max_length=200)
    evolution_url: str | None = Field(default=None, max_length=500)
    evolution_api_key: str | None = Field(
        default=None, max_length=512, pattern=HEADER_SAFE, description=_SECRET
    )
    instance_name: str | None = Field(default=None, max_length=100)
    is_active: bool | None = None
    is_default: bool | None = None
    chatbot_id: uuid.UUID | None = Field(
        default=None,
        description="The chatbot that answers on this number (none: every active chatbot).",
    )
    # Not nullable either: omit it to keep the current throughput.
    throughput: Annotated[int | None, WithJsonSchema(_THROUGHPUT_SCHEMA)] = Field(
        default=None, ge=1, le=MAX_THROUGHPUT
    )

    @field_validator("name", "throughput")
    @classmethod
    def _not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:  # only an explicit null gets here: an omitted field is not validated
            raise ValueError(f"{info.field_name} cannot be null; omit it to keep the current one")
        return value


class ConfigOut(BaseModel):
    id: uuid.UUID
    name: str
    provider: Provider
    phone_number_id: str | None = None
    business_account_id: str | None = None
    display_phone_number: str | None = None
    verified_name: str | None = None
    webhook_verify_token: str | None = None
    evolution_url: str | None = None
    instance_name: str | None = None
    connection_state: str | None = None
    has_access_token: bool = False
    has_app_secret: bool = False
    has_evolution_api_key: bool = False
    is_active: bool
    is_default: bool
    health_status: HealthStatus
    health_detail: str | None = None
    last_health_check: datetime | None = None
    chatbot_id: uuid.UUID | None = None
    throughput: int = Field(default=DEFAULT_THROUGHPUT, description=_THROUGHPUT)
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None


class ConfigListOut(BaseModel):
    configs: list[ConfigOut]
    total: int


class ConfigDeletedOut(BaseModel):
    message: str = "Configuration deleted successfully"
    config_id: uuid.UUID


class DefaultConfigBrief(BaseModel):
    id: uuid.UUID
    name: str
    is_default: bool


class SetDefaultOut(BaseModel):
    message: str = "Default configuration updated successfully"
    config: DefaultConfigBrief


class ConfigTestOut(BaseModel):
    """The result of a connectivity test (HTTP 400 on /api/v1 when `success` is false)."""

    success: bool
    message: str
    config_id: uuid.UUID
    provider: Provider
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class InstanceCreateIn(BaseModel):
    instance_name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    token: str | None = Field(
        default=None, max_length=200, description="The instance's own API key (write-only)."
    )
    qrcode: bool = True
    config_id: uuid.UUID | None = Field(
        default=None,
        description="Evolution configuration (server) to create the instance on; defaults to "
        "the configuration with this instance name, else the default Evolution configuration.",
    )


class InstanceOut(BaseModel):
    instance_name: str
    status: str
    qr_code: str | None = None
    config_id: uuid.UUID
    connection_state: str | None = None


class InstanceCreatedOut(BaseModel):
    instance: InstanceOut


class InstanceStatusOut(BaseModel):
    instance_name: str
    status: Literal["connected", "connecting", "disconnected", "refused"]
    phone_number: str | None = None
    connected_at: datetime | None = None


class QrCodeOut(BaseModel):
    qr_code: str | None
    pairing_code: str | None = None
    expires_at: datetime | None
