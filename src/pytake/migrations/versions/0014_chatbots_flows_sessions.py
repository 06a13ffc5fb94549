"""chatbots: bots, flows, frozen flow versions, sessions, the bot inbox, per-node counters

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 14:18:31.384988

`chatbot_inbox` is the bot's durable queue of inbound messages: ingest writes a row in the
message's own transaction, the consumer deletes it in the transaction that saves the session
and queues the replies. `whatsapp_configs.chatbot_id` names the bot answering on a number;
`conversations.bot_variables` keeps what a bot collected for the agent it handed off to.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
import pytake.models.base

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chatbots",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("welcome_message", sa.Text(), nullable=True),
        sa.Column("fallback_message", sa.Text(), nullable=True),
        sa.Column("handoff_enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "settings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pytake.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pytake.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_chatbots_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chatbots")),
    )
    with op.batch_alter_table("chatbots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_chatbots_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "chatbot_flows",
        sa.Column("chatbot_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column(
            "definition",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "legacy_source",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("published_at", pytake.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pytake.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pytake.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["chatbot_id"],
            ["chatbots.id"],
            name=op.f("fk_chatbot_flows_chatbot_id_chatbots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_chatbot_flows_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chatbot_flows")),
    )
    with op.batch_alter_table("chatbot_flows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_chatbot_flows_chatbot", ["chatbot_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_chatbot_flows_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "chatbot_flow_versions",
        sa.Column("flow_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "definition",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("published_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", pytake.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"],
            ["chatbot_flows.id"],
            name=op.f("fk_chatbot_flow_versions_flow_id_chatbot_flows"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_chatbot_flow_versions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["published_by_id"],
            ["users.id"],
            name=op.f("fk_chatbot_flow_versions_published_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chatbot_flow_versions")),
        sa.UniqueConstraint("flow_id", "version", name="uq_chatbot_flow_versions_flow_version"),
    )
    with op.batch_alter_table("chatbot_flow_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_chatbot_flow_versions_organization_id"),
            ["organization_id"],
            unique=False,
        )

    op.create_table(
        "chatbot_node_stats",
        sa.Column("flow_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(length=100), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("entered", sa.BigInteger(), nullable=False),
        sa.Column("completed", sa.BigInteger(), nullable=False),
        sa.Column("dropped", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"],
            ["chatbot_flows.id"],
            name=op.f("fk_chatbot_node_stats_flow_id_chatbot_flows"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_chatbot_node_stats_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("flow_id", "version", "node", name=op.f("pk_chatbot_node_stats")),
    )
    op.create_table(
        "chatbot_sessions",
        sa.Column("chatbot_id", sa.Uuid(), nullable=False),
        sa.Column("flow_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("node", sa.String(length=100), nullable=False),
        sa.Column(
            "variables",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("waiting", sa.String(length=10), nullable=True, comment="input | timer | http"),
        sa.Column("wake_at", pytake.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "pending_http",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("end_reason", sa.String(length=200), nullable=True),
        sa.Column("ended_at", pytake.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("messages_in", sa.Integer(), nullable=False),
        sa.Column("messages_out", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", pytake.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pytake.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["chatbot_id"],
            ["chatbots.id"],
            name=op.f("fk_chatbot_sessions_chatbot_id_chatbots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_chatbot_sessions_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_chatbot_sessions_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["flow_id"],
            ["chatbot_flows.id"],
            name=op.f("fk_chatbot_sessions_flow_id_chatbot_flows"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_chatbot_sessions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chatbot_sessions")),
    )
    with op.batch_alter_table("chatbot_sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_chatbot_sessions_chatbot", ["chatbot_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_chatbot_sessions_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(
            "ix_chatbot_sessions_wake",
            ["wake_at"],
            unique=False,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )
        batch_op.create_index(
            "uq_chatbot_sessions_one_active",
            ["conversation_id"],
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )

    op.create_table(
        "chatbot_inbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("new_conversation", sa.Boolean(), nullable=False),
        sa.Column("due_at", pytake.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", pytake.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_chatbot_inbox_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_chatbot_inbox_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_chatbot_inbox_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chatbot_inbox")),
    )
    with op.batch_alter_table("chatbot_inbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_chatbot_inbox_conversation", ["conversation_id", "id"], unique=False
        )
        batch_op.create_index("ix_chatbot_inbox_due", ["due_at", "id"], unique=False)

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "bot_variables",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )

    with op.batch_alter_table("whatsapp_configs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chatbot_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_whatsapp_configs_chatbot_id_chatbots"),
            "chatbots",
            ["chatbot_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_configs", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_whatsapp_configs_chatbot_id_chatbots"), type_="foreignkey"
        )
        batch_op.drop_column("chatbot_id")

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("bot_variables")

    with op.batch_alter_table("chatbot_inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_chatbot_inbox_due")
        batch_op.drop_index("ix_chatbot_inbox_conversation")

    op.drop_table("chatbot_inbox")
    with op.batch_alter_table("chatbot_sessions", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_chatbot_sessions_one_active",
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )
        batch_op.drop_index(
            "ix_chatbot_sessions_wake",
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )
        batch_op.drop_index(batch_op.f("ix_chatbot_sessions_organization_id"))
        batch_op.drop_index("ix_chatbot_sessions_chatbot")

    op.drop_table("chatbot_sessions")
    op.drop_table("chatbot_node_stats")
    with op.batch_alter_table("chatbot_flow_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chatbot_flow_versions_organization_id"))

    op.drop_table("chatbot_flow_versions")
    with op.batch_alter_table("chatbot_flows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chatbot_flows_organization_id"))
        batch_op.drop_index("ix_chatbot_flows_chatbot")

    op.drop_table("chatbot_flows")
    with op.batch_alter_table("chatbots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chatbots_organization_id"))

    op.drop_table("chatbots")
