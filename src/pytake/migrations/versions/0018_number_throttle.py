"""130429 throttling per number: whatsapp_configs.throttle_factor and throttled_at

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 15:10:00.000000

Meta's 130429 (throughput hit) limits the phone number, so the factor it halves belongs to the
number, shared by every campaign on it: on the campaign, a throttled campaign's equal share
went to the others and the number kept its pace. `campaigns.throttled_at` stays (the newest
130429 answer the campaign has reported); `campaigns.throttle_factor` goes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pytake.models.base

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("whatsapp_configs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("throttle_factor", sa.Double(), server_default="1", nullable=False)
        )
        batch_op.add_column(
            sa.Column("throttled_at", pytake.models.base.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("throttle_factor")


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("throttle_factor", sa.Double(), server_default="1", nullable=False)
        )
    with op.batch_alter_table("whatsapp_configs", schema=None) as batch_op:
        batch_op.drop_column("throttled_at")
        batch_op.drop_column("throttle_factor")
