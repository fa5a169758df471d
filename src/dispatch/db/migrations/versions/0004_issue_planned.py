"""issues.planned: the outbox is complete for the current fan-out

Planning now commits one chunk of readers at a time, so workers start at once; the flag
keeps an issue from being closed as sent before its last chunk is in, and lets the next
reconcile tick resume a fan-out that a crash cut short.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("planned", sa.Boolean(), server_default=sa.text("true"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_column("planned")
