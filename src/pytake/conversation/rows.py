"""New conversation rows for Core inserts (ingest)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table

from pytake.kit.rows import RowBuilder
from pytake.models import Conversation

conversation_rows = RowBuilder(cast(Table, Conversation.__table__))


def new_conversation_row(
    organization_id: uuid.UUID,
    contact_id: uuid.UUID,
    channel_id: uuid.UUID,
    now: datetime,
    **fields: Any,
) -> dict[str, Any]:
    """An open conversation of a contact on a WhatsApp number, with the model's defaults."""
    return conversation_rows.row(
        id=uuid.uuid4(),
        organization_id=organization_id,
        contact_id=contact_id,
        channel_id=channel_id,
        created_at=now,
        updated_at=now,
        **fields,
    )
