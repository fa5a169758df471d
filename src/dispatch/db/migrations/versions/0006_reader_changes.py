"""reader_changes: every change to a reader, with who made it and when

A reader who unsubscribes through the link in an email (the page, or the mail provider's
one-click POST) and staff who deactivate a reader leave a row here, so staff can see where
a change came from.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SOURCES = ("page", "one-click", "mail", "staff", "import")


def upgrade() -> None:
    op.create_table(
        "reader_changes",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("reader_id", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("field", sa.String(30), nullable=False),
        sa.Column("old", sa.Text),
        sa.Column("new", sa.Text),
        sa.CheckConstraint(f"source IN {SOURCES!r}", name=op.f("ck_reader_changes_source")),
        sa.ForeignKeyConstraint(
            ["reader_id"], ["readers.id"], ondelete="CASCADE",
            name=op.f("fk_reader_changes_reader_id_readers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reader_changes")),
    )
    op.create_index("ix_reader_changes_reader", "reader_changes", ["reader_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_reader_changes_reader", table_name="reader_changes")
    op.drop_table("reader_changes")
