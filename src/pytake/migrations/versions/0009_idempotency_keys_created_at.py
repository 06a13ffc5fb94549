"""idempotency keys: index on created_at, for pruning expired keys

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 22:40:00.000000

The worker deletes keys older than `idempotency_ttl_seconds` in batches
(pytake.message.sending.pruning); without this index every batch scans the whole table.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index("ix_idempotency_keys_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_idempotency_keys_created_at")
