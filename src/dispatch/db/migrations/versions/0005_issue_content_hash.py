"""issues.content_hash: ingesting the same content twice is refused unless asked for

Ingest quietly made a second issue of a file already ingested (and the demo, run twice,
mailed everyone twice). The hash of what is stored (dispatch.content_hash) finds the
earlier issue; the issues stored before this revision are backfilled with the same rule,
read from their sections and articles, so a file ingested before the upgrade is found too.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dispatch.content_hash import issue_content_hash

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

issues = sa.table(
    "issues",
    sa.column("id", sa.Integer),
    sa.column("title", sa.String),
    sa.column("number", sa.String),
    sa.column("issue_date", sa.Date),
    sa.column("content_hash", sa.String),
)
sections = sa.table(
    "sections",
    sa.column("id", sa.Integer),
    sa.column("issue_id", sa.Integer),
    sa.column("position", sa.Integer),
    sa.column("title", sa.String),
)
articles = sa.table(
    "articles",
    sa.column("section_id", sa.Integer),
    sa.column("position", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("title", sa.String),
    sa.column("source", sa.String),
    sa.column("blocks", sa.JSON),
)


def upgrade() -> None:
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_issues_content_hash", ["content_hash"], unique=False)
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    """One issue at a time: a handful of issues a week, never many."""
    for issue in conn.execute(sa.select(issues).order_by(issues.c.id)).all():
        parts = []
        for section in conn.execute(
            sa.select(sections.c.id, sections.c.title)
            .where(sections.c.issue_id == issue.id)
            .order_by(sections.c.position)
        ).all():
            rows = conn.execute(
                sa.select(articles.c.kind, articles.c.title, articles.c.source, articles.c.blocks)
                .where(articles.c.section_id == section.id)
                .order_by(articles.c.position)
            ).all()
            parts.append((section.title, [(r.kind, r.title, r.source, r.blocks or []) for r in rows]))
        digest = issue_content_hash(issue.title, issue.number, issue.issue_date, parts)
        conn.execute(
            sa.update(issues).where(issues.c.id == issue.id).values(content_hash=digest)
        )


def downgrade() -> None:
    # Not in batch mode: on SQLite that copies the table and drops the old one, and with
    # foreign keys on, dropping `issues` deletes every section and article by cascade.
    # SQLite ≥ 3.35 drops a column in place once its index is gone.
    op.drop_index("ix_issues_content_hash", table_name="issues")
    op.drop_column("issues", "content_hash")
