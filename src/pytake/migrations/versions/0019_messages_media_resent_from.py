"""messages.media_resent_from: the wamid a media message was failed under with 131053

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 23:10:00.000000

Meta can accept a send by media id and then report it `failed` with 131053 (media upload
error): the id has vanished on its side. A message sent by a stored file is then uploaded
again and re-sent once; this column records that it was (the wamid it failed under), so a
second 131053 fails it for good and late statuses of the old wamid are told apart.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "media_resent_from",
                sa.String(200),
                nullable=True,
                comment="the wamid a 131053 failed; re-sent once since",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("media_resent_from")
