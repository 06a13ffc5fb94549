"""New contact rows for Core inserts (ingest, CSV import, sending to a new number)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pytake.kit.rows import RowBuilder
from pytake.models.contact import contacts_table

contact_rows = RowBuilder(contacts_table)


def new_contact_row(
    organization_id: uuid.UUID, whatsapp_id: str, key: str, now: datetime, **fields: Any
) -> dict[str, Any]:
    """A live contact for a number (E.164 `whatsapp_id`, its `match_key`), with the model's
    defaults for every field not given; `search_text` follows from name, e-mail and number."""
    return contact_rows.row(
        id=uuid.uuid4(),
        organization_id=organization_id,
        whatsapp_id=whatsapp_id,
        match_key=key,
        created_at=now,
        updated_at=now,
        **fields,
    )
