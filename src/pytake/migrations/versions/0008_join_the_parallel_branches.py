"""Join the branches that parallel work left (events/webhooks, send queue, contact search)

Revision ID: 0008
Revises: 0005, 0006, 0007
Create Date: 2026-11-23 21:13:57.389267
"""

from collections.abc import Sequence

revision: str = "0008"
down_revision: tuple[str, ...] = ("0005", "0006", "0007")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
