"""delivery retry horizon and attempt history index

deliveries.first_attempt_at: when the first outcome since planning (or since staff's last
`dispatch retry`) was recorded; the retry horizon counts from it.
delivery_attempts.delivery_id gets an index: history is read per delivery, and deleting
an issue cascades through it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 04:17:51.131401
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_attempt_at", sa.DateTime(), nullable=True))

    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_attempts_delivery_id"), ["delivery_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_attempts_delivery_id"))

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("first_attempt_at")
