"""reader_changes.staff_id and issue_changes: which staff member made a change in the
staff web (a reader's fields, an issue's tags, its publication time, a retry)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch: SQLite adds a column with a foreign key only by rebuilding the table
    with op.batch_alter_table("reader_changes") as batch:
        batch.add_column(sa.Column("staff_id", sa.Integer, nullable=True))
        batch.create_foreign_key(
            op.f("fk_reader_changes_staff_id_staff"), "staff", ["staff_id"], ["id"],
            ondelete="SET NULL",
        )
    op.create_table(
        "issue_changes",
        sa.Column("id", sa.Integer, nullable=False),
        # NULL once the issue is deleted (a draft): the record of who deleted it stays.
        sa.Column("issue_id", sa.Integer, nullable=True),
        sa.Column("article_id", sa.Integer, nullable=True),
        sa.Column("staff_id", sa.Integer, nullable=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("field", sa.String(30), nullable=False),
        sa.Column("old", sa.Text, nullable=True),
        sa.Column("new", sa.Text, nullable=True),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_issue_changes_issue_id_issues"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], name=op.f("fk_issue_changes_article_id_articles"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_issue_changes_staff_id_staff"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_changes")),
    )
    op.create_index("ix_issue_changes_issue", "issue_changes", ["issue_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_issue_changes_issue", table_name="issue_changes")
    op.drop_table("issue_changes")
    with op.batch_alter_table("reader_changes") as batch:
        batch.drop_constraint(op.f("fk_reader_changes_staff_id_staff"), type_="foreignkey")
        batch.drop_column("staff_id")
