"""wecom_tokens, wecom_inbound: the WeChat Work channel's shared access token and the
callback's record of what it has already accepted; issues.web_key: the key of an issue's
pages that need no delivery (/i/KEY), for messages without personal links;
uq_feedback_issue_vote: one vote on the whole issue per delivery

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dispatch.track.tokens import new_token

VOTE_KINDS = ("useful", "not_useful")

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
    # Plain ADD COLUMN, outside batch mode: a copied issues table, dropped, would cascade
    # deletes to its sections and deliveries (see 0007). Nullable for the ADD; every
    # issue gets its key here and new ones from the model's default.
    op.add_column("issues", sa.Column("web_key", sa.String(length=32), nullable=True))
    conn = op.get_bind()
    issues = sa.table("issues", sa.column("id", sa.Integer), sa.column("web_key", sa.String))
    for (issue_id,) in conn.execute(sa.select(issues.c.id).where(issues.c.web_key.is_(None))).all():
        conn.execute(sa.update(issues).where(issues.c.id == issue_id).values(web_key=new_token()))
    op.create_index(op.f("ix_issues_web_key"), "issues", ["web_key"], unique=True)
    # One vote on the whole issue per delivery (WeChat Work's card): uq_feedback_vote
    # can't hold it, NULL articles being distinct. None exist before this revision.
    issue_vote = sa.text(f"kind IN {VOTE_KINDS!r} AND article_id IS NULL")
    op.create_index(
        "uq_feedback_issue_vote", "feedback", ["delivery_id"], unique=True,
        postgresql_where=issue_vote, sqlite_where=issue_vote,
    )


def downgrade() -> None:
    op.drop_index("uq_feedback_issue_vote", table_name="feedback")
    op.drop_index(op.f("ix_issues_web_key"), table_name="issues")
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+), as in 0007: no copy, no cascade.
    op.execute(sa.text("ALTER TABLE issues DROP COLUMN web_key"))
    op.drop_table("wecom_inbound")
    op.drop_table("wecom_tokens")
