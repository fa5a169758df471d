"""An issue's figures, from a few GROUP BY queries on the issue's rows: the one place for
the counting rules, which docs/tracking-report.md explains to staff.

Counting rules (every figure `dispatch report` prints or gives as JSON follows them):

- The unit is the **delivery**: one issue to one reader by one channel. A reader with
  email and WeChat Work has two; "unique" counts count deliveries, never events.
- **sent**: deliveries handed to their channel (state ``sent``), bounced ones included;
  **bounced**: sent deliveries a hard bounce came back for (``bounced_at``);
  **failed**: deliveries the channel refused for good; **pending**: still to go
  (``queued``, ``sending``, ``retry``); **cancelled** apart.
- A delivery is **opened by a human** when it has any event not marked ``machine``, of any
  kind: a click or a web read proves a person opened it even when images were blocked
  (no pixel). It is **opened by machine only** when it has events and all are machine's
  (image proxies, security scanners fetching on arrival: dispatch.track.machines).
- **open rate** = deliveries opened by a human ÷ deliveries sent (bounced ones stay in
  the denominator: they were sent). Machine-only opens are not in it.
- **clicks**: click events not by a machine: the total, and the deliveries with one;
  **click rate** = deliveries with a human click ÷ deliveries sent.
- **web reads**: web_view and article_view events not by a machine: the total, and the
  deliveries with one.
- **per article**: human clicks and article pages read (total, and deliveries); the 有用 /
  没用 votes (one per delivery and article, the last one counts) and comments on it.
- **per industry**: readers (people, not deliveries) with a sent delivery who follow the
  industry, and how many of them opened any of their deliveries (human). Readers who follow
  全部 are one row of their own, not counted in each industry; 综合 is a tag of articles,
  not something a reader follows, so it has no row. A reader's industries are read as they
  are now: the lists keep no history of them.
- **on the whole issue**: the 有用 / 没用 votes not on an article (WeChat Work's card
  buttons), one per delivery, the last one counts; they are in the feedback counts too.
- **feedback**: feedback rows of the issue by kind; "from readers" = replies, comments and
  votes (auto-replies and bounces are what mail servers send, not readers).

Each query filters on the issue first, so it reads the issue's rows by index
(ix_events_issue, uq_deliveries_target, ix_feedback_issue) whatever the size of the tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, literal_column, not_, select
from sqlalchemy.orm import Session

from dispatch import clock, editorial
from dispatch.db.models import (
    CHANNELS,
    FEEDBACK_KINDS,
    VOTE_KINDS,
    Delivery,
    Event,
    Feedback,
    Issue,
    Reader,
    ReaderIndustry,
)
from dispatch.industries import CODES, name_of
from dispatch.lifecycle import PENDING_STATES

WEB_KINDS = ("web_view", "article_view")
ALL = "all"  # the industry row of readers who follow 全部
ALL_NAME = "全部"
READER_KINDS = ("reply", "comment", "useful", "not_useful")  # feedback from readers


@dataclass
class DeliveryFigures:
    """One channel's figures, or all channels' (DeliveryFigures.total)."""

    planned: int = 0
    sent: int = 0
    failed: int = 0
    bounced: int = 0
    pending: int = 0
    cancelled: int = 0
    opened_human: int = 0
    opened_machine_only: int = 0
    clicks: int = 0
    clicked: int = 0
    web_reads: int = 0
    web_readers: int = 0

    @property
    def open_rate(self) -> float | None:
        """Deliveries opened by a human ÷ deliveries sent; None when none was sent."""
        return rate(self.opened_human, self.sent)

    @property
    def click_rate(self) -> float | None:
        """Deliveries with a human click ÷ deliveries sent; None when none was sent."""
        return rate(self.clicked, self.sent)

    def add(self, other: DeliveryFigures) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["open_rate"] = rounded(self.open_rate)
        return out


@dataclass
class ArticleFigures:
    id: int
    title: str
    section: str
    kind: str  # article | note
    order: int  # its place in the issue
    industries: list[str]
    clicks: int = 0
    clicked: int = 0
    reads: int = 0
    readers: int = 0
    useful: int = 0
    not_useful: int = 0
    comments: int = 0

    def to_json(self, rank: int) -> dict[str, Any]:
        return {
            "rank": rank, "id": self.id, "title": self.title, "section": self.section,
            "kind": self.kind, "industries": self.industries, "clicks": self.clicks,
            "clicked": self.clicked, "reads": self.reads, "readers": self.readers,
            "useful": self.useful, "not_useful": self.not_useful, "comments": self.comments,
        }


@dataclass
class IndustryFigures:
    code: str  # an industry's code, or ALL
    name: str
    readers: int = 0
    opened: int = 0

    @property
    def open_rate(self) -> float | None:
        return rate(self.opened, self.readers)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "readers": self.readers,
                "opened": self.opened, "open_rate": rounded(self.open_rate)}


@dataclass
class IssueFigures:
    issue_id: int
    title: str
    number: str | None
    status: str
    publish_at: datetime | None
    as_of: datetime
    first_sent_at: datetime | None = None
    last_sent_at: datetime | None = None
    readers: int = 0  # people with a sent delivery
    channels: dict[str, DeliveryFigures] = field(default_factory=dict)
    articles: list[ArticleFigures] = field(default_factory=list)  # ranked
    industries: list[IndustryFigures] = field(default_factory=list)
    feedback: dict[str, int] = field(default_factory=dict)  # kind → n, every kind
    issue_votes: dict[str, int] = field(default_factory=dict)  # useful / not_useful, no article

    @property
    def total(self) -> DeliveryFigures:
        out = DeliveryFigures()
        for figures in self.channels.values():
            out.add(figures)
        return out

    @property
    def from_readers(self) -> int:
        """Replies, comments and votes: what readers said."""
        return sum(self.feedback[k] for k in READER_KINDS)

    @property
    def sent_yet(self) -> bool:
        return self.status in ("sending", "sent")


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def rank_articles(articles: list[ArticleFigures]) -> list[ArticleFigures]:
    """Most telling first: more readers clicking, then more 有用, more readers of its page,
    fewer 没用; ties keep the issue's order."""
    return sorted(
        articles,
        key=lambda a: (-a.clicked, -a.useful, -a.readers, a.not_useful, a.order),
    )


# --- the queries -------------------------------------------------------------------------


def _by_delivery() -> Any:
    """The events of the issue grouped by delivery. SQLite, asked to group by the bare
    column, walks ix_events_delivery for its order and fetches every row at random (three
    times slower than reading the issue's rows and sorting them): `+ 0` makes the
    grouping an expression no index orders. PostgreSQL hashes either way."""
    return Event.delivery_id + 0


def _delivery_flags(issue_id: int) -> Any:
    """Per delivery with events: human events, human clicks, human web reads (a subquery,
    only ever joined *to* tables, which it drives through their keys)."""
    human = not_(Event.machine)
    delivery = _by_delivery()
    return (
        select(
            delivery.label("delivery_id"),
            func.sum(case((human, 1), else_=0)).label("human"),
            func.sum(case((and_(human, Event.kind == "click"), 1), else_=0)).label("clicks"),
            func.sum(case((and_(human, Event.kind.in_(WEB_KINDS)), 1), else_=0)).label("web"),
        )
        .where(Event.issue_id == issue_id)
        .group_by(delivery)
        .subquery("flags")
    )


def _deliveries(session: Session, issue_id: int, out: IssueFigures) -> None:
    rows = session.execute(
        select(
            Delivery.channel, Delivery.state, func.count(), func.count(Delivery.bounced_at),
            func.min(Delivery.sent_at), func.max(Delivery.sent_at),
        )
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.channel, Delivery.state)
    ).all()
    for channel, state, n, bounced, first, last in rows:
        figures = out.channels[channel]
        figures.planned += n
        if state == "sent":
            figures.sent += n
            figures.bounced += bounced
            out.first_sent_at = min(filter(None, (out.first_sent_at, first)), default=None)
            out.last_sent_at = max(filter(None, (out.last_sent_at, last)), default=None)
        elif state == "failed":
            figures.failed += n
        elif state in PENDING_STATES:
            figures.pending += n
        elif state == "cancelled":
            figures.cancelled += n
    out.readers = session.scalar(
        select(func.count(func.distinct(Delivery.reader_id)))
        .where(Delivery.issue_id == issue_id, Delivery.state == "sent")
    ) or 0


def _opens(session: Session, issue_id: int, out: IssueFigures) -> None:
    flags = _delivery_flags(issue_id)
    rows = session.execute(
        select(
            Delivery.channel,
            func.sum(case((flags.c.human > 0, 1), else_=0)),
            func.sum(case((flags.c.human == 0, 1), else_=0)),
            func.sum(flags.c.clicks),
            func.sum(case((flags.c.clicks > 0, 1), else_=0)),
            func.sum(flags.c.web),
            func.sum(case((flags.c.web > 0, 1), else_=0)),
        )
        .select_from(flags)
        .join(Delivery, Delivery.id == flags.c.delivery_id)
        .group_by(Delivery.channel)
    ).all()
    for channel, human, machine_only, clicks, clicked, web, web_readers in rows:
        figures = out.channels[channel]
        # int(): PostgreSQL sums bigints to numeric (Decimal).
        figures.opened_human = int(human or 0)
        figures.opened_machine_only = int(machine_only or 0)
        figures.clicks = int(clicks or 0)
        figures.clicked = int(clicked or 0)
        figures.web_reads = int(web or 0)
        figures.web_readers = int(web_readers or 0)


def _industry_key() -> Any:
    # A reader who follows 全部 has no industry rows: one row of ALL for them. A literal,
    # not a bound value: PostgreSQL must see the same expression in GROUP BY.
    return case(
        (Reader.follows_all, literal_column(f"'{ALL}'")), else_=ReaderIndustry.industry
    ).label("key")


def _readers_by_industry(session: Session, source: Any, issue_id: int) -> dict[str, int]:
    """Readers (distinct) per industry key, of the issue's sent deliveries in `source`."""
    key = _industry_key()
    rows = session.execute(
        select(key, func.count(func.distinct(Delivery.reader_id)))
        .select_from(source)
        .join(Reader, Reader.id == Delivery.reader_id)
        .outerjoin(
            ReaderIndustry,
            and_(ReaderIndustry.reader_id == Delivery.reader_id, not_(Reader.follows_all)),
        )
        .where(Delivery.issue_id == issue_id, Delivery.state == "sent")
        .group_by(key)
    ).all()
    return {k: n for k, n in rows if k is not None}


def _industries(session: Session, issue_id: int) -> list[IndustryFigures]:
    readers = _readers_by_industry(session, Delivery, issue_id)
    # The deliveries a person opened drive the join, through the tables' keys. (Joined
    # the other way, deliveries LEFT JOIN a grouped subquery, SQLite scanned the subquery
    # once per delivery: minutes at 100,000.)
    opened_deliveries = (
        select(_by_delivery().label("delivery_id"))
        .where(Event.issue_id == issue_id, not_(Event.machine))
        .distinct()
        .subquery("opened")
    )
    opened = _readers_by_industry(
        session,
        opened_deliveries.join(Delivery, Delivery.id == opened_deliveries.c.delivery_id),
        issue_id,
    )
    out = []
    for code in (*CODES, ALL):
        name = ALL_NAME if code == ALL else name_of(code)
        out.append(IndustryFigures(code, name, readers.get(code, 0), opened.get(code, 0)))
    return out


def _article_events(
    session: Session, issue_id: int
) -> dict[tuple[int | None, str], tuple[int, int]]:
    rows = session.execute(
        select(Event.article_id, Event.kind, func.count(),
               func.count(func.distinct(Event.delivery_id)))
        .where(
            Event.issue_id == issue_id,
            Event.kind.in_(("click", "article_view")),
            not_(Event.machine),
            Event.article_id.is_not(None),
        )
        .group_by(Event.article_id, Event.kind)
    ).all()
    return {(a, kind): (n, unique) for a, kind, n, unique in rows}


def _feedback(session: Session, issue_id: int) -> dict[tuple[int | None, str], int]:
    rows = session.execute(
        select(Feedback.article_id, Feedback.kind, func.count())
        .where(Feedback.issue_id == issue_id)
        .group_by(Feedback.article_id, Feedback.kind)
    ).all()
    return {(a, kind): n for a, kind, n in rows}


def headline(session: Session, issue: Issue, now: datetime | None = None) -> IssueFigures:
    """The figures by channel and the feedback counts, without the articles and the
    industries: what a list of issues shows for each (a few queries, by index)."""
    out = IssueFigures(
        issue_id=issue.id, title=issue.title, number=issue.number, status=issue.status,
        publish_at=issue.publish_at, as_of=now or clock.utcnow(),
        channels={c: DeliveryFigures() for c in CHANNELS},
    )
    _deliveries(session, issue.id, out)
    _opens(session, issue.id, out)
    out.feedback = {kind: 0 for kind in FEEDBACK_KINDS}
    for kind, n in session.execute(
        select(Feedback.kind, func.count()).where(Feedback.issue_id == issue.id)
        .group_by(Feedback.kind)
    ).all():
        out.feedback[kind] += n
    return out


def issue_figures(session: Session, issue_id: int, now: datetime | None = None) -> IssueFigures:
    """Every figure of the report; Refused for an issue that does not exist."""
    issue = editorial.get_issue(session, issue_id)
    out = headline(session, issue, now)
    out.industries = _industries(session, issue_id)

    events = _article_events(session, issue_id)
    votes = _feedback(session, issue_id)
    articles = []
    for order, article in enumerate(issue.articles):
        clicks, clicked = events.get((article.id, "click"), (0, 0))
        reads, readers = events.get((article.id, "article_view"), (0, 0))
        articles.append(ArticleFigures(
            id=article.id, title=article.title, section=article.section.title,
            kind=article.kind, order=order, industries=article.industries,
            clicks=clicks, clicked=clicked, reads=reads, readers=readers,
            useful=votes.get((article.id, "useful"), 0),
            not_useful=votes.get((article.id, "not_useful"), 0),
            comments=votes.get((article.id, "comment"), 0),
        ))
    out.articles = rank_articles(articles)
    out.issue_votes = {kind: votes.get((None, kind), 0) for kind in VOTE_KINDS}
    return out


def local_iso(utc_naive: datetime | None) -> str | None:
    """A stored time as ISO 8601 in Asia/Shanghai, with its offset: 2024-05-07T10:21:00+08:00."""
    return None if utc_naive is None else clock.to_local(utc_naive).isoformat(timespec="seconds")


def to_json(figures: IssueFigures) -> dict[str, Any]:
    """The stable object of `dispatch report --json` (docs/tracking-report.md lists the
    keys): more keys may be added, none removed or renamed."""
    return {
        "issue": {
            "id": figures.issue_id, "title": figures.title, "number": figures.number,
            "status": figures.status, "publish_at": local_iso(figures.publish_at),
            "first_sent_at": local_iso(figures.first_sent_at),
            "last_sent_at": local_iso(figures.last_sent_at),
        },
        "as_of": local_iso(figures.as_of),
        "readers": figures.readers,
        "totals": figures.total.to_json(),
        "channels": {c: f.to_json() for c, f in figures.channels.items()},
        "articles": [a.to_json(rank) for rank, a in enumerate(figures.articles, 1)],
        "industries": [i.to_json() for i in figures.industries],
        "feedback": {**figures.feedback, "from_readers": figures.from_readers},
        "issue_votes": figures.issue_votes,
    }
