"""The tables. Times are naive UTC (see dispatch.clock)."""

from __future__ import annotations

from datetime import date, datetime
from typing import TypedDict

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from dispatch.clock import utcnow
from dispatch.industries import TAG_CODES
from dispatch.track.tokens import new_token

# Stable constraint names so Alembic migrations read the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class StoredBlock(TypedDict):
    """One block of an article's body, as Article.blocks stores it (JSON)."""

    kind: str  # "paragraph" | "subheading"
    text: str


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


ISSUE_STATUSES = ("draft", "finalized", "sending", "sent")
READER_STATUSES = ("active", "inactive", "unsubscribed")
# Who changed a reader: the reader on a page behind their link, a mail provider's
# one-click unsubscribe (RFC 8058), an unsubscribe mail, staff (CLI, staff web), a list
# import, the bounce rule (email suspended after repeated hard bounces), a WeChat Work message.
CHANGE_SOURCES = ("page", "one-click", "mail", "staff", "import", "bounce", "wecom")
CHANNELS = ("email", "wecom")
DELIVERY_STATES = ("queued", "sending", "sent", "retry", "failed", "cancelled")
TAG_ORIGINS = ("auto", "editor")
# What a reader did, as the track stage records it.
EVENT_KINDS = ("open", "click", "web_view", "article_view")
# Where feedback came from: an email reply, a WeChat Work message, a reader page.
FEEDBACK_CHANNELS = ("email", "wecom", "web")
# useful / not_useful: the 有用 / 没用 votes (one per delivery and article, changeable);
# comment: words left on a page; reply: a person's answer by mail or WeChat Work;
# auto_reply, bounce: what mail servers and out-of-office rules send back.
VOTE_KINDS = ("useful", "not_useful")
FEEDBACK_KINDS = (*VOTE_KINDS, "comment", "reply", "auto_reply", "bounce")


class Issue(Base):
    __tablename__ = "issues"
    __table_args__ = (
        CheckConstraint(f"status IN {ISSUE_STATUSES!r}", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    number: Mapped[str | None] = mapped_column(String(50))
    # The date printed in the masthead, when the file gives one.
    issue_date: Mapped[date | None] = mapped_column(Date)
    source_file: Mapped[str] = mapped_column(String(500))
    source_format: Mapped[str] = mapped_column(String(20))
    # dispatch.content_hash of what was stored: ingesting the same content again is refused
    # unless asked for (`--again`). Migration 0005 backfilled the issues stored before it.
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    publish_at: Mapped[datetime | None] = mapped_column(DateTime)
    finalized_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Set when the scheduler (or `dispatch send`) first claims the issue for fan-out.
    fanned_out_at: Mapped[datetime | None] = mapped_column(DateTime)
    # False while a fan-out is planning the outbox (it commits reader chunk by chunk, so
    # workers start on the first rows at once); an issue is closed as sent only once
    # its outbox is complete, and a fan-out cut short by a crash is resumed.
    planned: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The key of the issue's pages that need no delivery (/i/KEY, track.links.IssueLinks:
    # WeChat Work messages without personal links). Unguessable, like a token; made with
    # the issue (no race to make it later); migration 0008 gave the older issues theirs.
    web_key: Mapped[str | None] = mapped_column(String(32), unique=True, index=True, default=new_token)

    sections: Mapped[list[Section]] = relationship(
        back_populates="issue", order_by="Section.position", cascade="all, delete-orphan"
    )

    @property
    def articles(self) -> list[Article]:
        return [a for s in self.sections for a in s.articles]


class Section(Base):
    __tablename__ = "sections"
    __table_args__ = (UniqueConstraint("issue_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))

    issue: Mapped[Issue] = relationship(back_populates="sections")
    articles: Mapped[list[Article]] = relationship(
        back_populates="section", order_by="Article.position", cascade="all, delete-orphan"
    )


class Article(Base):
    __tablename__ = "articles"
    __table_args__ = (
        UniqueConstraint("section_id", "position"),
        CheckConstraint("kind IN ('article', 'note')", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    section_id: Mapped[int] = mapped_column(ForeignKey("sections.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10), default="article")
    title: Mapped[str] = mapped_column(String(300))
    blocks: Mapped[list[StoredBlock]] = mapped_column(JSON, default=list)  # in order
    source: Mapped[str | None] = mapped_column(String(300))

    section: Mapped[Section] = relationship(back_populates="articles")
    tags: Mapped[list[ArticleTag]] = relationship(
        back_populates="article", cascade="all, delete-orphan", order_by="ArticleTag.industry"
    )

    def tag_codes(self, origin: str) -> list[str]:
        """Codes in the canonical order of the 6 + 3 + 3 (then 综合)."""
        codes = {t.industry for t in self.tags if t.origin == origin}
        return [c for c in TAG_CODES if c in codes]

    @property
    def overridden(self) -> bool:
        return any(t.origin == "editor" for t in self.tags)

    @property
    def industries(self) -> list[str]:
        """The tags that count: the editor's where given, else the automatic ones."""
        return self.tag_codes("editor" if self.overridden else "auto")


class ArticleTag(Base):
    """An industry tag; automatic and editor's tags live side by side, so re-tagging
    (which only rewrites 'auto' rows) never touches an editor's override."""

    __tablename__ = "article_tags"
    __table_args__ = (CheckConstraint(f"origin IN {TAG_ORIGINS!r}", name="origin"),)

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    industry: Mapped[str] = mapped_column(String(20), primary_key=True)
    origin: Mapped[str] = mapped_column(String(10), primary_key=True)
    score: Mapped[float] = mapped_column(default=0.0)

    article: Mapped[Article] = relationship(back_populates="tags")


class Reader(Base):
    __tablename__ = "readers"
    __table_args__ = (
        CheckConstraint(f"status IN {READER_STATUSES!r}", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    organization: Mapped[str] = mapped_column(String(200), default="")
    position: Mapped[str] = mapped_column(String(100), default="")  # 职务
    group: Mapped[str] = mapped_column("group_name", String(100), default="")
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    wecom_userid: Mapped[str | None] = mapped_column(String(64), unique=True)
    follows_all: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="active")
    # The reader asked for a break (preferences page): nothing is planned for them before.
    paused_until: Mapped[datetime | None] = mapped_column(DateTime)
    # Hard bounces of their email in a row; at [feedback] bounce_limit their email is
    # suspended (email_suspended_at) until staff lift it.
    email_bounces: Mapped[int] = mapped_column(
        Integer, default=0, server_default=text("0")
    )
    email_suspended_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    industry_rows: Mapped[list[ReaderIndustry]] = relationship(
        cascade="all, delete-orphan", order_by="ReaderIndustry.industry"
    )
    channel_rows: Mapped[list[ReaderChannel]] = relationship(
        cascade="all, delete-orphan", order_by="ReaderChannel.channel"
    )

    @property
    def industries(self) -> list[str]:
        codes = {r.industry for r in self.industry_rows}
        return [c for c in TAG_CODES if c in codes]

    @property
    def channels(self) -> list[str]:
        return [r.channel for r in self.channel_rows]


class ReaderIndustry(Base):
    __tablename__ = "reader_industries"

    reader_id: Mapped[int] = mapped_column(
        ForeignKey("readers.id", ondelete="CASCADE"), primary_key=True
    )
    industry: Mapped[str] = mapped_column(String(20), primary_key=True)


class ReaderChannel(Base):
    """A channel the reader receives the bulletin by; the address is on the reader."""

    __tablename__ = "reader_channels"
    __table_args__ = (CheckConstraint(f"channel IN {CHANNELS!r}", name="channel"),)

    reader_id: Mapped[int] = mapped_column(
        ForeignKey("readers.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(10), primary_key=True)


class ReaderChange(Base):
    """One change to a reader (a field, its value before and after), who made it and when:
    staff see where an unsubscribe or a new set of industries came from."""

    __tablename__ = "reader_changes"
    __table_args__ = (
        CheckConstraint(f"source IN {CHANGE_SOURCES!r}", name="source"),
        Index("ix_reader_changes_reader", "reader_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(20))
    field: Mapped[str] = mapped_column(String(30))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)
    # The staff member who made it in the staff web (source "staff"); None for the CLI on
    # the server, an import from the command line, and readers' own changes.
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))


# What a worker may claim, as SQL text: the partial indexes below are defined by it and
# the claim query says it word for word, so both databases can prove the index applies
# (a bound parameter would hide it from PostgreSQL's generic plans).
CLAIM_READY = "state IN ('queued', 'retry')"
CLAIM_LEASED = "state = 'sending'"


class Delivery(Base):
    """The outbox: one issue to one reader by one channel."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("issue_id", "reader_id", "channel", name="uq_deliveries_target"),
        CheckConstraint(f"state IN {DELIVERY_STATES!r}", name="state"),
        CheckConstraint(f"channel IN {CHANNELS!r}", name="channel"),
        Index("ix_deliveries_claim", "state", "available_at"),
        # Claims walk these in order and stop at the batch size: sent rows are not in
        # them, so a claim costs the same at the first row of 100,000 as at the last.
        Index(
            "ix_deliveries_ready",
            "available_at",
            "id",
            postgresql_where=text(CLAIM_READY),
            sqlite_where=text(CLAIM_READY),
        ),
        Index(
            "ix_deliveries_leased",
            "lease_expires_at",
            "id",
            postgresql_where=text(CLAIM_LEASED),
            sqlite_where=text(CLAIM_LEASED),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(10))
    token: Mapped[str] = mapped_column(String(40), unique=True)
    state: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    provider_id: Mapped[str | None] = mapped_column(String(300))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    # When the first outcome since planning (or since staff's last `dispatch retry`) was
    # recorded: the retry horizon counts from here (see dispatch.deliver.retry).
    first_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    # A hard bounce came back for this delivery after it was handed over (state stays sent).
    bounced_at: Mapped[datetime | None] = mapped_column(DateTime)


class DeliveryAttempt(Base):
    """History of a delivery: every hand-over to a channel and what came back."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)


class Event(Base):
    """Something a reader (or a machine on their behalf) did with a delivery."""

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint(f"kind IN {EVENT_KINDS!r}", name="kind"),
        Index("ix_events_issue", "issue_id", "kind"),
        Index("ix_events_delivery", "delivery_id", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Kept beside delivery_id so a report reads one issue's events by index.
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    article_id: Mapped[int | None] = mapped_column(
        ForeignKey("articles.id", ondelete="SET NULL")
    )
    n: Mapped[int | None] = mapped_column(Integer)  # the link number of a click
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # An image proxy, a security scanner or a fetch on arrival: kept, counted apart.
    machine: Mapped[bool] = mapped_column(Boolean, default=False)
    user_agent: Mapped[str] = mapped_column(String(400), default="")
    client_ip: Mapped[str | None] = mapped_column(String(45))


class Feedback(Base):
    """What a reader said (or what came back in their name): votes, comments, replies,
    auto-replies and bounces, tied to the delivery, issue, reader and article where known."""

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint(f"kind IN {FEEDBACK_KINDS!r}", name="kind"),
        CheckConstraint(f"channel IN {FEEDBACK_CHANNELS!r}", name="channel"),
        Index("ix_feedback_received", "received_at"),
        Index("ix_feedback_issue", "issue_id", "received_at"),
        # One vote per delivery and article: a second click changes it.
        Index(
            "uq_feedback_vote",
            "delivery_id",
            "article_id",
            unique=True,
            postgresql_where=text(f"kind IN {VOTE_KINDS!r}"),
            sqlite_where=text(f"kind IN {VOTE_KINDS!r}"),
        ),
        # One vote on the whole issue (no article: WeChat Work's card) per delivery.
        Index(
            "uq_feedback_issue_vote",
            "delivery_id",
            unique=True,
            postgresql_where=text(f"kind IN {VOTE_KINDS!r} AND article_id IS NULL"),
            sqlite_where=text(f"kind IN {VOTE_KINDS!r} AND article_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int | None] = mapped_column(ForeignKey("readers.id", ondelete="SET NULL"))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"))
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL")
    )
    article_id: Mapped[int | None] = mapped_column(
        ForeignKey("articles.id", ondelete="SET NULL")
    )
    channel: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text, default="")
    sender: Mapped[str | None] = mapped_column(String(254))  # the From address of a message
    subject: Mapped[str | None] = mapped_column(String(500))
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)  # the whole message, as received
    # Where it came from, once: "imap:<Message-ID>", "wecom:<MsgId>"; a replay stores nothing.
    source_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(DateTime)
    handled_by: Mapped[str | None] = mapped_column(String(100))


class SiteKey(Base):
    """Keys the service makes for itself once (e.g. the form-signing key when
    $DISPATCH_SECRET_KEY is unset), shared by every process on the database."""

    __tablename__ = "site_keys"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WecomToken(Base):
    """WeChat Work's access token, shared by every worker and process on the database.

    Keyed by corp and agent, never by the secret (which is kept out of the database)."""

    __tablename__ = "wecom_tokens"

    app: Mapped[str] = mapped_column(String(100), primary_key=True)  # "<corp_id>:<agent_id>"
    access_token: Mapped[str] = mapped_column(String(1000))
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    fetched_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WecomInbound(Base):
    """Each message or event the WeChat Work callback accepted, once: WeChat Work retries
    a callback it had no answer to in 5 s, and a replayed request must store nothing new."""

    __tablename__ = "wecom_inbound"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)  # "msg:<MsgId>", "event:…"
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


STAFF_ROLES = ("editor", "admin")


class Staff(Base):
    """A staff account of the staff web (/admin). `session_epoch` is part of every session
    cookie: raising it (password changed, account disabled, signed out) ends them all."""

    __tablename__ = "staff"
    __table_args__ = (CheckConstraint(f"role IN {STAFF_ROLES!r}", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)  # the login name
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)


class StaffChange(Base):
    """One change to a staff account (created, role, disabled, password …): who made it
    (a staff member, or None for the CLI on the server), when, and the field's old and new
    value (never a password or its hash)."""

    __tablename__ = "staff_changes"
    __table_args__ = (Index("ix_staff_changes_staff", "staff_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    field: Mapped[str] = mapped_column(String(30))  # "created", "role", "active", "password"
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)


class IssueChange(Base):
    """One change staff made to an issue, in the staff web or with the CLI (no staff
    member): who, when, what (`field`, one of editorial.CHANGE_FIELDS: "ingested", "tags"
    (with the article), "retagged" (each changed article, then the whole), "finalized",
    "publish_at", "retried", "test_copy", "deleted"), and the value before and after in
    words staff read."""

    __tablename__ = "issue_changes"
    __table_args__ = (Index("ix_issue_changes_issue", "issue_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL once a draft is deleted: its record ("deleted", the title in `old`) is kept.
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"))
    article_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id", ondelete="SET NULL"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    field: Mapped[str] = mapped_column(String(30))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)


class LoginFailure(Base):
    """A failed sign-in, kept for the throttle's window (stale rows are dropped as new ones
    come): in the database so the limits hold across restarts and processes.
    `counts_for_name` is cleared by a success for that name; the address still counts it."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_name", "name", "at"),
        Index("ix_login_failures_address", "address", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    name: Mapped[str] = mapped_column(String(100))  # as typed: unknown names count alike
    address: Mapped[str] = mapped_column(String(64))
    counts_for_name: Mapped[bool] = mapped_column(Boolean, default=True)
