"""The feedback staff read: rows newest first, filtered by issue, article, reader, day,
kind, channel and whether handled (a page of them at a time for the staff web); the same
columns for the terminal, JSON, CSV and XLSX; marking a row handled.

The feedback stage (dispatch.feedback, the reader pages) writes the rows; this reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from dispatch import clock
from dispatch.db.models import VOTE_KINDS, Article, Feedback, Reader
from dispatch.errors import Refused
from dispatch.report.figures import local_iso
from dispatch.report.sheets import Block, Cell
from dispatch.report.words import channel_word, kind_word

Query: TypeAlias = "Select[*tuple[Any, ...]]"  # a select of any columns
DAY_FORMAT = "%Y-%m-%d"
WHOLE_ISSUE = "（整期）"  # the article of a vote on the whole issue (WeChat Work's card)


@dataclass(frozen=True)
class Filters:
    issue_id: int | None = None
    since: datetime | None = None  # naive UTC
    kinds: tuple[str, ...] = ()  # empty: every kind
    unhandled: bool = False
    limit: int | None = None
    article_id: int | None = None
    reader_id: int | None = None
    reader: str = ""  # in the reader's name, organisation, address or the sender's
    channels: tuple[str, ...] = ()  # empty: every channel
    handled: bool = False  # only those handled (unhandled: only those not)
    offset: int = 0


@dataclass(frozen=True)
class Item:
    id: int
    issue_id: int | None
    reader_id: int | None
    reader_name: str | None
    reader_email: str | None
    reader_wecom: str | None
    channel: str
    kind: str
    article_id: int | None
    article_title: str | None
    text: str
    sender: str | None
    subject: str | None
    received_at: datetime
    handled_at: datetime | None
    handled_by: str | None

    @property
    def reader_address(self) -> str:
        return self.reader_email or self.reader_wecom or ""

    @property
    def article_words(self) -> str:
        """The article column: its title; for a vote on no article, the whole issue."""
        if self.article_title:
            return self.article_title
        return WHOLE_ISSUE if self.kind in VOTE_KINDS and self.issue_id is not None else ""


def parse_day(text: str) -> datetime:
    """'2024-05-06', a day in Asia/Shanghai → its first moment in naive UTC.
    Raises ValueError with a Chinese message."""
    try:
        day = datetime.strptime(text.strip(), DAY_FORMAT)
    except ValueError:
        raise ValueError(f"“{text}”不是日期，应写成 YYYY-MM-DD，如 2024-05-06") from None
    local = day.replace(tzinfo=clock.LOCAL_TZ)
    return local.astimezone(UTC).replace(tzinfo=None)


def _items() -> Query:
    """The columns of an Item, readers and articles joined."""
    return (
        select(
            Feedback.id, Feedback.issue_id, Feedback.reader_id, Reader.name, Reader.email,
            Reader.wecom_userid, Feedback.channel, Feedback.kind, Feedback.article_id,
            Article.title, Feedback.text, Feedback.sender, Feedback.subject,
            Feedback.received_at, Feedback.handled_at, Feedback.handled_by,
        )
        .outerjoin(Reader, Reader.id == Feedback.reader_id)
        .outerjoin(Article, Article.id == Feedback.article_id)
    )


def _filtered(query: Query, filters: Filters) -> Query:
    """`query` (on feedback, readers joined) narrowed by every filter that is set."""
    if filters.issue_id is not None:
        query = query.where(Feedback.issue_id == filters.issue_id)
    if filters.article_id is not None:
        query = query.where(Feedback.article_id == filters.article_id)
    if filters.reader_id is not None:
        query = query.where(Feedback.reader_id == filters.reader_id)
    if filters.reader.strip():
        words = filters.reader.strip()
        query = query.where(or_(*(
            column.icontains(words, autoescape=True)
            for column in (Reader.name, Reader.organization, Reader.email,
                           Reader.wecom_userid, Feedback.sender)
        )))
    if filters.since is not None:
        query = query.where(Feedback.received_at >= filters.since)
    if filters.kinds:
        query = query.where(Feedback.kind.in_(filters.kinds))
    if filters.channels:
        query = query.where(Feedback.channel.in_(filters.channels))
    if filters.unhandled:
        query = query.where(Feedback.handled_at.is_(None))
    if filters.handled:
        query = query.where(Feedback.handled_at.is_not(None))
    return query


def list_feedback(session: Session, filters: Filters) -> list[Item]:
    query = _items().order_by(Feedback.received_at.desc(), Feedback.id.desc())
    query = _filtered(query, filters)
    if filters.offset:
        query = query.offset(filters.offset)
    if filters.limit is not None:
        query = query.limit(filters.limit)
    return [Item(*tuple(row)) for row in session.execute(query).all()]


def count_feedback(session: Session, filters: Filters) -> int:
    """How many rows the filters let through (limit and offset aside): for pages."""
    query = select(func.count(Feedback.id)).outerjoin(Reader, Reader.id == Feedback.reader_id)
    return session.scalar(_filtered(query, filters)) or 0


def get_item(session: Session, feedback_id: int) -> Item | None:
    """One row as the list has it; None if there is no such feedback."""
    query = _items().where(Feedback.id == feedback_id)
    row = session.execute(query).first()
    return None if row is None else Item(*tuple(row))


def item_json(item: Item) -> dict[str, Any]:
    """One row of `dispatch feedback list --json` (docs/tracking-report.md lists the keys)."""
    reader = None if item.reader_id is None else {
        "id": item.reader_id, "name": item.reader_name, "email": item.reader_email,
        "wecom_userid": item.reader_wecom,
    }
    article = None if item.article_id is None else {
        "id": item.article_id, "title": item.article_title,
    }
    return {
        "id": item.id, "issue": item.issue_id, "reader": reader, "channel": item.channel,
        "kind": item.kind, "article": article, "text": item.text, "sender": item.sender,
        "subject": item.subject, "received_at": local_iso(item.received_at),
        "handled": item.handled_at is not None, "handled_at": local_iso(item.handled_at),
        "handled_by": item.handled_by,
    }


# The columns of an export, and how wide each is in Excel.
COLUMNS: tuple[tuple[str, int], ...] = (
    ("编号", 8), ("收到时间", 17), ("类别", 9), ("渠道", 9), ("期刊", 6), ("读者", 10),
    ("读者编号", 9), ("读者地址", 28), ("发件人", 28), ("主题", 30), ("文章", 36),
    ("内容", 60), ("已处理", 7), ("处理时间", 17), ("处理人", 10),
)


def item_cells(item: Item) -> list[Cell]:
    return [
        item.id, clock.show(item.received_at), kind_word(item.kind), channel_word(item.channel),
        item.issue_id, item.reader_name or "", item.reader_id, item.reader_address,
        item.sender or "", item.subject or "", item.article_words, item.text,
        "是" if item.handled_at else "否", clock.show(item.handled_at), item.handled_by or "",
    ]


def block(items: Sequence[Item]) -> Block:
    return Block([name for name, _ in COLUMNS], [item_cells(i) for i in items])


WIDTHS = tuple(width for _, width in COLUMNS)


@dataclass(frozen=True)
class Marked:
    id: int
    already: bool  # was handled before: left as it was
    handled_at: datetime
    handled_by: str


def mark_handled(session: Session, ids: Sequence[int], by: str, now: datetime) -> list[Marked]:
    """Marks the rows handled (by whom, when); rows handled before keep their mark.
    Refuses, changing nothing, when an id names no feedback."""
    rows = {f.id: f for f in session.scalars(select(Feedback).where(Feedback.id.in_(ids)))}
    missing = [i for i in ids if i not in rows]
    if missing:
        which = "、".join(str(i) for i in missing)
        raise Refused(f"反馈 {which} 不存在（编号见 dispatch feedback list）")
    out = []
    for i in dict.fromkeys(ids):
        row = rows[i]
        already = row.handled_at is not None
        if not already:
            row.handled_at, row.handled_by = now, by
        out.append(Marked(i, already, row.handled_at or now, row.handled_by or by))
    session.flush()
    return out


def handler() -> str:
    """Who marks feedback handled from the CLI: the OS user, else "staff"."""
    import getpass

    try:
        return getpass.getuser()[:100] or "staff"
    except (OSError, KeyError):  # no user name in the environment or the password file
        return "staff"
