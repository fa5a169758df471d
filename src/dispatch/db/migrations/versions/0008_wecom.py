"""wecom_tokens, wecom_inbound: the WeChat Work channel's shared access token and the
callback's record of what it has already accepted

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wecom_tokens",
        sa.Column("app", sa.String(100), nullable=False),
        sa.Column("access_token", sa.String(1000), nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("fetched_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("app", name=op.f("pk_wecom_tokens")),
    )
    op.create_table(
        "wecom_inbound",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_wecom_inbound")),
    )


def downgrade() -> None:
    op.drop_table("wecom_inbound")
    op.drop_table("wecom_tokens")
