"""Media request and response models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

MediaStatus = Literal["pending", "stored", "failed", "expired"]


class MediaOut(BaseModel):
    """A media item as messages, events and `POST /v1/media` show it."""

    id: uuid.UUID
    status: MediaStatus
    mime_type: str | None = None
    size: int | None = Field(default=None, description="Bytes, once stored.")
    file_name: str | None = None
    caption: str | None = None
    url: str = Field(description="Where the bytes are served: `GET /v1/media/{id}`.")


class MediaDetailOut(MediaOut):
    """`POST /v1/media`'s answer: the stored file, with what it may be sent as."""

    sha256: str | None = None
    source: Literal["inbound", "upload"]
    error: str | None = Field(default=None, description="Why a fetch failed.")
    sendable_as: list[str] = Field(
        default_factory=list, description="Message types WhatsApp accepts this file as."
    )
    created_at: datetime


class SignedUrlOut(BaseModel):
    url: str = Field(description="Fetches the bytes without an Authorization header.")
    expires_at: datetime


class RetentionIn(BaseModel):
    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36500,
        description="Delete stored media older than this many days (null: keep forever).",
    )


class RetentionOut(BaseModel):
    retention_days: int | None
