"""Which readers staff look at: the filters of `recipients list / find / export` and of the
staff web's list and export, as one SQL condition, and a page of the readers matching it.

One place for what each filter means: a reader follows an industry when they follow it or
follow all; their state is the one `reader_states` names (an active reader who paused, or
whose email the bounce rule suspended, is in that state instead). The database does the
filtering: a page of 50 out of 100,000 readers reads 50.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, not_, or_, select
from sqlalchemy.orm import Session

from dispatch.readers.apply import (
    _CHANNELS,
    _INDUSTRIES,
    _READERS,
    Listed,
    list_readers,
)

# The choices of 退订 in the staff web's list: all readers, only those who unsubscribed,
# or all but them.
UNSUBSCRIBED_CHOICES = ("", "only", "hide")


@dataclass(frozen=True)
class ReaderFilter:
    """What to keep; each filter left at its default keeps everyone."""

    text: str = ""  # in the name, organisation, email or WeChat Work user id
    industries: tuple[str, ...] | None = None  # follows any of these (or all)
    group: str | None = None
    channels: tuple[str, ...] | None = None  # receives by any of these
    state: str | None = None  # a key of dispatch.readers.STATE_WORDS
    bounced: bool = False  # email suspended by the bounce rule, whatever the status
    unsubscribed: str = ""  # UNSUBSCRIBED_CHOICES

    @property
    def empty(self) -> bool:
        return self == ReaderFilter()


class FilterError(ValueError):
    """A filter's text staff typed that means nothing; ``field`` names the filter."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def parse_filter(*, text: str = "", industry: str | None = None, group: str | None = None,
                 channel: str | None = None, status: str | None = None,
                 bounced: bool = False, unsubscribed: str = "") -> ReaderFilter:
    """A filter from what staff typed (as the lists write industries, channels and
    states); raises FilterError naming the filter (industry, channel, status)."""
    from dispatch.readers.validate import parse_channels, parse_industries, parse_state

    industries = channels = None
    state = None
    if industry is not None:
        try:
            follows_all, codes = parse_industries(industry)
        except ValueError as exc:
            raise FilterError("industry", str(exc)) from None
        industries = None if follows_all else codes
    if channel is not None:
        try:
            channels = parse_channels(channel)
        except ValueError as exc:
            raise FilterError("channel", str(exc)) from None
    if status is not None:
        try:
            state = parse_state(status)
        except ValueError as exc:
            raise FilterError("status", str(exc)) from None
    if unsubscribed not in UNSUBSCRIBED_CHOICES:
        raise FilterError("unsubscribed", f"未知选项“{unsubscribed}”")
    return ReaderFilter(text=text.strip(), industries=industries,
                        group=None if group is None else group.strip(), channels=channels,
                        state=state, bounced=bounced, unsubscribed=unsubscribed)


def condition(f: ReaderFilter, now: datetime) -> ColumnElement[bool] | None:
    """The filter as a condition on the readers table (None: everyone); ``now`` decides
    who is still paused."""
    r = _READERS.c
    parts: list[ColumnElement[bool]] = []
    if f.text:
        needle = f.text.lower()
        parts.append(or_(*(func.lower(c).contains(needle, autoescape=True)
                           for c in (r.name, r.organization, r.email, r.wecom_userid))))
    if f.industries is not None:
        follows = exists().where(_INDUSTRIES.c.reader_id == r.id,
                                 _INDUSTRIES.c.industry.in_(f.industries))
        parts.append(or_(r.follows_all.is_(True), follows) if f.industries else r.follows_all.is_(True))
    if f.group is not None:
        parts.append(r.group_name == f.group)
    if f.channels is not None:
        parts.append(exists().where(_CHANNELS.c.reader_id == r.id,
                                    _CHANNELS.c.channel.in_(f.channels))
                     if f.channels else false())
    if f.state is not None:
        parts.append(_state(f.state, now))
    if f.bounced:
        parts.append(r.email_suspended_at.is_not(None))
    if f.unsubscribed == "only":
        parts.append(r.status == "unsubscribed")
    elif f.unsubscribed == "hide":
        parts.append(r.status != "unsubscribed")
    return and_(*parts) if parts else None


def _state(state: str, now: datetime) -> ColumnElement[bool]:
    """The readers in ``state`` (dispatch.readers.reader_states, in SQL)."""
    r = _READERS.c
    paused = and_(r.paused_until.is_not(None), r.paused_until > now)
    suspended = r.email_suspended_at.is_not(None)
    active = r.status == "active"
    if state == "paused":
        return and_(active, paused)
    if state == "email_suspended":
        return and_(active, suspended)
    if state == "active":
        return and_(active, not_(paused), not_(suspended))
    return r.status == state


def count_readers(session: Session, where: ColumnElement[bool] | None) -> int:
    stmt = select(func.count()).select_from(_READERS)
    if where is not None:
        stmt = stmt.where(where)
    return int(session.scalar(stmt) or 0)


def page_of_readers(session: Session, where: ColumnElement[bool] | None, *, offset: int,
                    limit: int) -> list[Listed]:
    """The readers matching ``where``, by id, from the ``offset``-th, ``limit`` of them."""
    stmt: Any = select(_READERS.c.id).order_by(_READERS.c.id).offset(offset).limit(limit)
    if where is not None:
        stmt = stmt.where(where)
    # The page's ids first: then only their industries and channels are read.
    return list_readers(session, ids=list(session.scalars(stmt)))


def groups(session: Session) -> list[str]:
    """The groups readers are in, sorted, for a filter's choices."""
    return [g for g in session.scalars(
        select(_READERS.c.group_name).where(_READERS.c.group_name != "").distinct()
        .order_by(_READERS.c.group_name)
    )]
