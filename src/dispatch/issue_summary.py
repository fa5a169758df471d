"""What the staff web reads about issues besides their content: each issue's article
count and delivery totals (the list), what is scheduled, whether a send is still moving
(the live counts), and the change log kept by editorial.log_change (`dispatch issues
show` reads it too). Reads only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatch.db.models import Article, Delivery, Issue, IssueChange, Section, Staff
from dispatch.editorial import CHANGE_FIELDS

# A finalized issue due within this long is followed live: the scheduler claims it
# within a tick of its time, and staff watching the page see it start.
FOLLOW_BEFORE = timedelta(minutes=15)


@dataclass(frozen=True)
class Row:
    id: int
    title: str
    number: str | None
    status: str
    publish_at: datetime | None
    created_at: datetime
    articles: int
    deliveries: int
    sent: int
    failed: int
    overdue: bool = False


def rows(session: Session, now: datetime, max_lateness: timedelta) -> list[Row]:
    """Every issue, newest first, with its counts."""
    articles: dict[int, int] = {
        issue_id: n for issue_id, n in session.execute(
            select(Section.issue_id, func.count(Article.id))
            .join(Article, Article.section_id == Section.id)
            .group_by(Section.issue_id))
    }
    totals: dict[int, dict[str, int]] = {}
    for issue_id, state, n in session.execute(
        select(Delivery.issue_id, Delivery.state, func.count())
        .group_by(Delivery.issue_id, Delivery.state)
    ):
        totals.setdefault(issue_id, {})[state] = n
    out = []
    for i in session.scalars(select(Issue).order_by(Issue.created_at.desc(), Issue.id.desc())):
        states = totals.get(i.id, {})
        late = (i.status == "finalized" and i.fanned_out_at is None
                and i.publish_at is not None and i.publish_at < now - max_lateness)
        out.append(Row(i.id, i.title, i.number, i.status, i.publish_at, i.created_at,
                       articles.get(i.id, 0), sum(states.values()), states.get("sent", 0),
                       states.get("failed", 0), late))
    return out


def scheduled(all_rows: list[Row]) -> list[Row]:
    """Finalized issues that have not gone out, soonest first: what is scheduled."""
    waiting = [r for r in all_rows if r.status == "finalized" and r.publish_at is not None]
    return sorted(waiting, key=lambda r: (r.publish_at or r.created_at, r.id))


def moving(status: str, pending: int, publish_at: datetime | None, now: datetime) -> bool:
    """Whether an issue's deliveries may still change by themselves: sending, rows
    pending, or finalized and due soon (or just due). A draft, a sent issue, one due
    later and an overdue one (it waits for staff) are not followed."""
    if status == "sending" or pending:
        return True
    if status != "finalized" or publish_at is None:
        return False
    return now - FOLLOW_BEFORE <= publish_at <= now + FOLLOW_BEFORE


# Who made a change with no staff member: the CLI on the server (accounts are disabled,
# never deleted, so a staff member's changes keep their name).
SERVER_CLI = "服务器命令行"


@dataclass(frozen=True)
class Change:
    at: datetime
    who: str  # the staff member's display name, or SERVER_CLI
    what: str  # CHANGE_FIELDS' words
    article_id: int | None
    article_title: str | None
    old: str | None
    new: str | None
    field: str = ""  # CHANGE_FIELDS' key
    staff_id: int | None = None  # None: the CLI

    @property
    def words(self) -> str:
        """What changed, in a line: 改标签：标题  综合（自动） → 生物医药（编辑指定）."""
        what = f"{self.what}：{self.article_title}" if self.article_title else self.what
        values = " → ".join(v for v in (self.old, self.new) if v)
        return f"{what}  {values}" if values else what


def changes(session: Session, issue_id: int, limit: int | None = None) -> list[Change]:
    """The issue's change log, newest first (the newest `limit` of it)."""
    stmt = (
        select(IssueChange, Staff.display_name, Article.title)
        .outerjoin(Staff, Staff.id == IssueChange.staff_id)
        .outerjoin(Article, Article.id == IssueChange.article_id)
        .where(IssueChange.issue_id == issue_id)
        .order_by(IssueChange.at.desc(), IssueChange.id.desc())
        .limit(limit)
    )
    return [
        Change(c.at, who if who is not None else SERVER_CLI,
               CHANGE_FIELDS.get(c.field, c.field), c.article_id, title, c.old, c.new,
               c.field, c.staff_id)
        for c, who, title in session.execute(stmt)
    ]
