"""statuses update in place: no index on messages mentions status; publication kept aside

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 01:20:00.000000

A delivery status (the bulk of a busy number's writes) changed `messages.status`, which three
indexes mentioned, so every status wrote a new version of the row and of all eight index
entries. Now no index mentions it: `ix_messages_status_created` served no query, and the send
queue's partial indexes key on their own column being set. PostgreSQL can then update the row in
place (HOT); fillfactor 50 leaves the room on each page that this needs (see models/conversation.py).
ix_messages_organization_id goes too: ix_messages_org_created leads with the same column.

Publishing an event updated its outbox row (`published_at`, indexed): another new version of
the row and its indexes per event. The ids awaiting publication now live in a small
`events_unpublished` table, one row per batch, deleted once published.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import pytake.models.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHUNK = 500


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"

    # The queue's invariant the new partial indexes rely on.
    op.execute("UPDATE messages SET next_attempt_at = NULL WHERE status <> 'queued'")
    op.execute("UPDATE messages SET claimed_at = NULL WHERE status <> 'sending'")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_status_created")
        # ix_messages_org_created leads with the organisation: this one only cost writes.
        batch_op.drop_index("ix_messages_organization_id")
        batch_op.drop_index("ix_messages_queued_due")
        batch_op.drop_index("ix_messages_sending_claimed")
        batch_op.create_index(
            "ix_messages_queued_due",
            ["next_attempt_at"],
            unique=False,
            sqlite_where=sa.text("next_attempt_at IS NOT NULL"),
            postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_messages_sending_claimed",
            ["claimed_at"],
            unique=False,
            sqlite_where=sa.text("claimed_at IS NOT NULL"),
            postgresql_where=sa.text("claimed_at IS NOT NULL"),
        )
    if postgres:
        op.execute("ALTER TABLE messages SET (fillfactor = 50)")

    unpublished = op.create_table(
        "events_unpublished",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "event_ids",
            sa.JSON().with_variant(postgresql.ARRAY(sa.BigInteger()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", pytake.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events_unpublished")),
    )
    # Events never published before the upgrade are handed to the relay.
    waiting = [
        row[0]
        for row in bind.execute(
            sa.text("SELECT id FROM events WHERE published_at IS NULL ORDER BY id")
        )
    ]
    if waiting:
        now = pytake.models.base.utcnow()
        op.bulk_insert(
            unpublished,
            [
                {"event_ids": waiting[i : i + _CHUNK], "created_at": now}
                for i in range(0, len(waiting), _CHUNK)
            ],
        )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_published_at")
        batch_op.drop_column("published_at")


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("published_at", pytake.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_events_published_at", ["published_at"], unique=False)
    # Treated as published: the old relay would otherwise repeat every event ever recorded.
    op.execute("UPDATE events SET published_at = created_at")
    op.drop_table("events_unpublished")

    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE messages RESET (fillfactor)")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_sending_claimed")
        batch_op.drop_index("ix_messages_queued_due")
        batch_op.create_index(
            "ix_messages_queued_due",
            ["next_attempt_at"],
            unique=False,
            sqlite_where=sa.text("status = 'queued'"),
            postgresql_where=sa.text("status = 'queued'"),
        )
        batch_op.create_index(
            "ix_messages_sending_claimed",
            ["claimed_at"],
            unique=False,
            sqlite_where=sa.text("status = 'sending'"),
            postgresql_where=sa.text("status = 'sending'"),
        )
        batch_op.create_index("ix_messages_status_created", ["status", "created_at"], unique=False)
        batch_op.create_index("ix_messages_organization_id", ["organization_id"], unique=False)
