"""events, feedback, site_keys; readers' pause and bounce suspension; deliveries.bounced_at

The track and feedback stages: what readers did (opens, clicks, web reads) and said (votes,
comments, replies), what bounced; a reader's own pause, and the email suspension that
repeated hard bounces bring. reader_changes may now also say `bounce` and `wecom`.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SOURCES = ("page", "one-click", "mail", "staff", "import")
SOURCES = (*OLD_SOURCES, "bounce", "wecom")
EVENT_KINDS = ("open", "click", "web_view", "article_view")
FEEDBACK_CHANNELS = ("email", "wecom", "web")
VOTE_KINDS = ("useful", "not_useful")
FEEDBACK_KINDS = (*VOTE_KINDS, "comment", "reply", "auto_reply", "bounce")


def _sources(allowed: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite's reflection does not see CHECK constraints, so the copy batch mode makes
        # leaves the old one behind by itself; reader_changes has no children to lose.
        with op.batch_alter_table("reader_changes", recreate="always") as batch_op:
            batch_op.create_check_constraint("source", f"source IN {allowed!r}")
        return
    op.drop_constraint(op.f("ck_reader_changes_source"), "reader_changes", type_="check")
    op.create_check_constraint("source", "reader_changes", f"source IN {allowed!r}")


def upgrade() -> None:
    # Plain ADD COLUMN, outside batch mode: batch mode copies readers for a column with a
    # server default, and dropping the original cascades deletes to its children (the
    # readers' industries and channels). SQLite adds columns in place.
    op.add_column("readers", sa.Column("paused_until", sa.DateTime, nullable=True))
    op.add_column(
        "readers",
        sa.Column("email_bounces", sa.Integer, server_default=sa.text("0"), nullable=False),
    )
    op.add_column("readers", sa.Column("email_suspended_at", sa.DateTime, nullable=True))
    op.add_column("deliveries", sa.Column("bounced_at", sa.DateTime, nullable=True))
    _sources(SOURCES)

    op.create_table(
        "events",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("issue_id", sa.Integer, nullable=False),
        sa.Column("delivery_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("article_id", sa.Integer, nullable=True),
        sa.Column("n", sa.Integer, nullable=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("machine", sa.Boolean, nullable=False),
        sa.Column("user_agent", sa.String(400), nullable=False),
        sa.Column("client_ip", sa.String(45), nullable=True),
        sa.CheckConstraint(f"kind IN {EVENT_KINDS!r}", name=op.f("ck_events_kind")),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], ondelete="CASCADE",
            name=op.f("fk_events_issue_id_issues"),
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["deliveries.id"], ondelete="CASCADE",
            name=op.f("fk_events_delivery_id_deliveries"),
        ),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], ondelete="SET NULL",
            name=op.f("fk_events_article_id_articles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_issue", "events", ["issue_id", "kind"])
    op.create_index("ix_events_delivery", "events", ["delivery_id", "kind"])

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("reader_id", sa.Integer, nullable=True),
        sa.Column("issue_id", sa.Integer, nullable=True),
        sa.Column("delivery_id", sa.Integer, nullable=True),
        sa.Column("article_id", sa.Integer, nullable=True),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("sender", sa.String(254), nullable=True),
        sa.Column("subject", sa.String(500), nullable=True),
        sa.Column("raw", sa.LargeBinary, nullable=True),
        sa.Column("source_key", sa.String(300), nullable=True),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("handled_at", sa.DateTime, nullable=True),
        sa.Column("handled_by", sa.String(100), nullable=True),
        sa.CheckConstraint(f"kind IN {FEEDBACK_KINDS!r}", name=op.f("ck_feedback_kind")),
        sa.CheckConstraint(
            f"channel IN {FEEDBACK_CHANNELS!r}", name=op.f("ck_feedback_channel")
        ),
        sa.ForeignKeyConstraint(
            ["reader_id"], ["readers.id"], ondelete="SET NULL",
            name=op.f("fk_feedback_reader_id_readers"),
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], ondelete="SET NULL",
            name=op.f("fk_feedback_issue_id_issues"),
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["deliveries.id"], ondelete="SET NULL",
            name=op.f("fk_feedback_delivery_id_deliveries"),
        ),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], ondelete="SET NULL",
            name=op.f("fk_feedback_article_id_articles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("source_key", name=op.f("uq_feedback_source_key")),
    )
    op.create_index("ix_feedback_received", "feedback", ["received_at"])
    op.create_index("ix_feedback_issue", "feedback", ["issue_id", "received_at"])
    vote = sa.text(f"kind IN {VOTE_KINDS!r}")
    op.create_index(
        "uq_feedback_vote", "feedback", ["delivery_id", "article_id"], unique=True,
        postgresql_where=vote, sqlite_where=vote,
    )

    op.create_table(
        "site_keys",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_site_keys")),
    )


def downgrade() -> None:
    op.drop_table("site_keys")
    op.drop_index("uq_feedback_vote", table_name="feedback")
    op.drop_index("ix_feedback_issue", table_name="feedback")
    op.drop_index("ix_feedback_received", table_name="feedback")
    op.drop_table("feedback")
    op.drop_index("ix_events_delivery", table_name="events")
    op.drop_index("ix_events_issue", table_name="events")
    op.drop_table("events")
    op.execute(
        sa.text(f"DELETE FROM reader_changes WHERE source NOT IN {OLD_SOURCES!r}")
    )
    _sources(OLD_SOURCES)
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+): batch mode would copy readers and
    # deliveries, and dropping the originals cascades to their children.
    for table, column in (
        ("deliveries", "bounced_at"),
        ("readers", "email_suspended_at"),
        ("readers", "email_bounces"),
        ("readers", "paused_until"),
    ):
        op.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
