"""partial indexes for claiming deliveries

Claims walked (state, available_at) and sorted what matched: at 100,000 rows each claim
read the whole issue's outbox, and PostgreSQL spent as much CPU as the workers
(bench/deliver.py). Two partial indexes hold only the claimable rows, in claim order.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 23:59:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in dispatch.db.models (CLAIM_READY, CLAIM_LEASED) when this revision was written.
READY = "state IN ('queued', 'retry')"
LEASED = "state = 'sending'"


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deliveries_ready",
            ["available_at", "id"],
            unique=False,
            postgresql_where=sa.text(READY),
            sqlite_where=sa.text(READY),
        )
        batch_op.create_index(
            "ix_deliveries_leased",
            ["lease_expires_at", "id"],
            unique=False,
            postgresql_where=sa.text(LEASED),
            sqlite_where=sa.text(LEASED),
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_leased")
        batch_op.drop_index("ix_deliveries_ready")
