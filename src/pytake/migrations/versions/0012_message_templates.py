"""message templates

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 14:18:49.753333

`message_templates` holds PyTake's copy of each template of an organisation's WhatsApp Business
Accounts (kept current by creation, sync and Meta's account-level webhooks);
`template_sync_states` when each number's templates are due to be read from Meta again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
import pytake.models.base

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_templates",
        sa.Column("channel_id", sa.Uuid(), nullable=True),
        sa.Column(
            "business_account_id", sa.String(length=64), nullable=False, comment="the WABA id"
        ),
        sa.Column("meta_template_id", sa.String(length=64), nullable=True, comment="Meta's id"),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=15), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("previous_category", sa.String(length=20), nullable=True),
        sa.Column("parameter_format", sa.String(length=12), nullable=False),
        sa.Column(
            "components",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_reason", sa.String(length=500), nullable=True),
        sa.Column(
            "rejection_info",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "quality_score", sa.String(length=20), nullable=True, comment="GREEN | YELLOW | RED"
        ),
        sa.Column(
            "status_updated_at", pytake.models.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("last_synced_at", pytake.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pytake.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pytake.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["whatsapp_configs.id"],
            name=op.f("fk_message_templates_channel_id_whatsapp_configs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_message_templates_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_templates")),
        sa.UniqueConstraint(
            "organization_id",
            "business_account_id",
            "name",
            "language",
            name="uq_message_templates_org_waba_name_language",
        ),
    )
    with op.batch_alter_table("message_templates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_message_templates_org_status", ["organization_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_message_templates_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(
            "ix_message_templates_waba_meta_id",
            ["business_account_id", "meta_template_id"],
            unique=False,
        )

    op.create_table(
        "template_sync_states",
        sa.Column("channel_id", sa.Uuid(), nullable=False),
        sa.Column("next_sync_at", pytake.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_synced_at", pytake.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("leased_until", pytake.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["whatsapp_configs.id"],
            name=op.f("fk_template_sync_states_channel_id_whatsapp_configs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_template_sync_states_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_template_sync_states")),
    )
    with op.batch_alter_table("template_sync_states", schema=None) as batch_op:
        batch_op.create_index(
            "ix_template_sync_states_next_sync_at", ["next_sync_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_template_sync_states_organization_id"), ["organization_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("template_sync_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_template_sync_states_organization_id"))
        batch_op.drop_index("ix_template_sync_states_next_sync_at")

    op.drop_table("template_sync_states")
    with op.batch_alter_table("message_templates", schema=None) as batch_op:
        batch_op.drop_index("ix_message_templates_waba_meta_id")
        batch_op.drop_index(batch_op.f("ix_message_templates_organization_id"))
        batch_op.drop_index("ix_message_templates_org_status")

    op.drop_table("message_templates")
