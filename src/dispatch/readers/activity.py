"""What one reader received and did, and what changed for them, as staff read it on the
reader's page: deliveries, opens and clicks, feedback, and the change log with who made
each change. Newest first; each list capped, with its full count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatch.db.models import (
    Article,
    Delivery,
    Event,
    Feedback,
    Issue,
    ReaderChange,
    Staff,
)
from dispatch.readers.changes import describe_change
from dispatch.report.words import channel_word, kind_word
from dispatch.statewords import CHANGE_SOURCE_WORDS, DELIVERY_WORDS

# What each kind of event is, as staff read it.
EVENT_WORDS = {
    "open": "打开邮件",
    "click": "点击链接",
    "web_view": "在网页上阅读",
    "article_view": "阅读文章",
}


@dataclass(frozen=True)
class Capped:
    """The newest rows of a list, and how many there are in all."""

    rows: list[Any]
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.rows)


@dataclass(frozen=True)
class Received:
    issue_id: int
    issue_title: str
    channel: str  # in words
    state: str  # in words
    created_at: datetime
    sent_at: datetime | None
    bounced: bool


@dataclass(frozen=True)
class Did:
    kind: str  # in words
    issue_id: int
    issue_title: str
    article_title: str | None
    link: int | None  # a click's link number
    at: datetime
    machine: bool  # an image proxy or a scanner, not the reader


@dataclass(frozen=True)
class Said:
    kind: str  # in words
    channel: str  # in words
    text: str
    issue_title: str | None
    article_title: str | None
    at: datetime
    handled: bool


@dataclass(frozen=True)
class Changed:
    at: datetime
    source: str  # in words
    staff: str | None  # the staff member's display name, for a change made in the staff web
    what: str  # describe_change


def _count(session: Session, stmt: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


def deliveries(session: Session, reader_id: int, limit: int) -> Capped:
    stmt = (select(Delivery.issue_id, Issue.title, Delivery.channel, Delivery.state,
                   Delivery.created_at, Delivery.sent_at, Delivery.bounced_at)
            .join(Issue, Issue.id == Delivery.issue_id)
            .where(Delivery.reader_id == reader_id))
    rows = [Received(r[0], r[1], channel_word(r[2]), DELIVERY_WORDS.get(r[3], r[3]), r[4], r[5],
                     r[6] is not None)
            for r in session.execute(stmt.order_by(Delivery.created_at.desc(),
                                                   Delivery.id.desc()).limit(limit))]
    return Capped(rows, _count(session, stmt))


def events(session: Session, reader_id: int, limit: int) -> Capped:
    stmt = (select(Event.kind, Event.issue_id, Issue.title, Article.title, Event.n, Event.at,
                   Event.machine)
            .join(Delivery, Delivery.id == Event.delivery_id)
            .join(Issue, Issue.id == Event.issue_id)
            .outerjoin(Article, Article.id == Event.article_id)
            .where(Delivery.reader_id == reader_id))
    rows = [Did(EVENT_WORDS.get(r[0], r[0]), r[1], r[2], r[3], r[4], r[5], bool(r[6]))
            for r in session.execute(stmt.order_by(Event.at.desc(), Event.id.desc()).limit(limit))]
    return Capped(rows, _count(session, stmt))


def feedback(session: Session, reader_id: int, limit: int) -> Capped:
    stmt = (select(Feedback.kind, Feedback.channel, Feedback.text, Issue.title, Article.title,
                   Feedback.received_at, Feedback.handled_at)
            .outerjoin(Issue, Issue.id == Feedback.issue_id)
            .outerjoin(Article, Article.id == Feedback.article_id)
            .where(Feedback.reader_id == reader_id))
    rows = [Said(kind_word(r[0]), channel_word(r[1]), r[2], r[3], r[4], r[5], r[6] is not None)
            for r in session.execute(stmt.order_by(Feedback.received_at.desc(),
                                                   Feedback.id.desc()).limit(limit))]
    return Capped(rows, _count(session, stmt))


def changes(session: Session, reader_id: int, limit: int) -> Capped:
    stmt = (select(ReaderChange.at, ReaderChange.source, Staff.display_name, ReaderChange.field,
                   ReaderChange.old, ReaderChange.new)
            .outerjoin(Staff, Staff.id == ReaderChange.staff_id)
            .where(ReaderChange.reader_id == reader_id))
    rows = [Changed(r[0], CHANGE_SOURCE_WORDS.get(r[1], r[1]), r[2], describe_change(r[3], r[4], r[5]))
            for r in session.execute(stmt.order_by(ReaderChange.at.desc(),
                                                   ReaderChange.id.desc()).limit(limit))]
    return Capped(rows, _count(session, stmt))
