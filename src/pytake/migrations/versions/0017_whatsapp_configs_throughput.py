"""whatsapp_configs.throughput: the messages per second Meta lets the number send

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 19:00:00.000000

Campaigns pace each number to min(send_rate_limit, the number's throughput): Meta's default
is 80 messages/s, up to 1,000 once Meta has raised the number. It replaces the global
`campaign_number_throughput` setting; existing numbers get the default.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("whatsapp_configs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "throughput",
                sa.Integer(),
                server_default="80",
                nullable=False,
                comment="messages per second",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_configs", schema=None) as batch_op:
        batch_op.drop_column("throughput")
