"""media: inbound attachments and uploads (the fetch queue), and their uploads to numbers

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 19:20:00.000000

`media` is one row per file: an inbound message's attachment (`pending` until the fetch loop
stores it, or `failed`) or an upload; the bytes live in the media storage under
`<organization>/<sha256>`. `media_uploads` remembers Meta's media id per number (30 days).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
import pytake.models.base

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DT = pytake.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("source", sa.String(length=10), nullable=False, comment="inbound | upload"),
        sa.Column(
            "kind", sa.String(length=20), nullable=True, comment="image|video|audio|document|…"
        ),
        sa.Column(
            "status", sa.String(length=10), nullable=False, comment="pending|stored|failed|expired"
        ),
        sa.Column(
            "provider_media_id",
            sa.String(length=200),
            nullable=True,
            comment="Meta's media id, or the Evolution message key id",
        ),
        sa.Column("expected_sha256", sa.String(length=100), nullable=True),
        sa.Column("expected_size", sa.BigInteger(), nullable=True),
        sa.Column("mime_type", sa.String(length=200), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("file_name", sa.String(length=255), nullable=True),
        sa.Column(
            "sha256", sa.String(length=64), nullable=True, comment="hex, of the stored bytes"
        ),
        sa.Column("storage_key", sa.String(length=300), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", _DT, nullable=True),
        sa.Column("claimed_until", _DT, nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", _DT, nullable=False),
        sa.Column("updated_at", _DT, nullable=False),
        sa.Column("stored_at", _DT, nullable=True),
        sa.Column("expired_at", _DT, nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["whatsapp_configs.id"],
            name=op.f("fk_media_channel_id_whatsapp_configs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_media_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_media_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media")),
    )
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.create_index("uq_media_message_id", ["message_id"], unique=True)
        batch_op.create_index(
            "ix_media_pending_due",
            ["next_attempt_at"],
            unique=False,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index("ix_media_org_sha256", ["organization_id", "sha256"], unique=False)
        batch_op.create_index(
            "ix_media_org_created", ["organization_id", "created_at"], unique=False
        )

    op.create_table(
        "media_uploads",
        sa.Column("media_id", sa.Uuid(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("provider_media_id", sa.String(length=200), nullable=False),
        sa.Column("uploaded_at", _DT, nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["whatsapp_configs.id"],
            name=op.f("fk_media_uploads_channel_id_whatsapp_configs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["media_id"],
            ["media.id"],
            name=op.f("fk_media_uploads_media_id_media"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("media_id", "channel_id", name=op.f("pk_media_uploads")),
    )


def downgrade() -> None:
    op.drop_table("media_uploads")
    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_index("ix_media_org_created")
        batch_op.drop_index("ix_media_org_sha256")
        batch_op.drop_index("ix_media_pending_due")
        batch_op.drop_index("uq_media_message_id")
    op.drop_table("media")
