"""Opens and clicks over the first days after an issue went out, for the report's chart.

By the counting rules of dispatch.report.figures: a delivery counts once, at its first
event not by a machine (any kind: a click or a web read proves it was opened) for the
opens, at its first human click for the clicks. So the opens of all periods, with those
later than the window, add up to the report's 有人打开, and the clicks to 有点击的份数.

Periods start on the hour (Beijing time) of the first delivery sent — 6 hours each for 3
days, or whole days (from that day's midnight) for 7 — and are named by their start:
12月1日 08时, 12月1日. One query reads the issue's human events by index, grouped by
delivery and by whether they are clicks; `counts` (pure) puts the first times in periods.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, func, not_, select
from sqlalchemy.orm import Session

from dispatch import clock
from dispatch.db.models import Event


@dataclass(frozen=True)
class Span:
    key: str  # as the page's ?by= names it
    name: str  # what staff read
    step: timedelta
    count: int


HOURS = Span("hours", "每 6 小时（前 3 天）", timedelta(hours=6), 12)
DAYS = Span("days", "每天（前 7 天）", timedelta(days=1), 7)
SPANS = {s.key: s for s in (HOURS, DAYS)}


@dataclass(frozen=True)
class Timeline:
    span: Span
    starts: list[datetime]  # each period's start, naive UTC
    opens: list[int]  # deliveries first opened (by a person) in each period
    clicks: list[int]  # deliveries first clicked in each period
    later_opens: int  # … after the last period
    later_clicks: int

    @property
    def labels(self) -> list[str]:
        return [label(start, self.span) for start in self.starts]


def first_start(sent_at: datetime, span: Span) -> datetime:
    """Where the first period starts: the hour of `sent_at` (naive UTC), or the day's
    midnight for periods of a day, in Beijing time; naive UTC again."""
    local = clock.to_local(sent_at).replace(minute=0, second=0, microsecond=0)
    if span.step >= timedelta(days=1):
        local = local.replace(hour=0)
    return local.astimezone(UTC).replace(tzinfo=None)


def label(start: datetime, span: Span) -> str:
    """A period's name: 12月1日 08时, or 12月1日 for a day."""
    local = clock.to_local(start)
    day = f"{local.month}月{local.day}日"
    return day if span.step >= timedelta(days=1) else f"{day} {local:%H}时"


def counts(start: datetime, times: Iterable[datetime], step: timedelta,
           periods: int) -> tuple[list[int], int]:
    """How many of `times` fall in each of `periods` periods of `step` from `start`,
    and how many later. A time before `start` (a clock behind the sender's) counts in
    the first period."""
    out = [0] * periods
    later = 0
    for at in times:
        i = max(0, int((at - start) / step))
        if i < periods:
            out[i] += 1
        else:
            later += 1
    return out, later


def first_times(session: Session, issue_id: int) -> tuple[list[datetime], list[datetime]]:
    """(each opened delivery's first human event, each clicked delivery's first human
    click), from one query over the issue's events."""
    is_click = case((Event.kind == "click", 1), else_=0).label("is_click")
    delivery = (Event.delivery_id + 0).label("delivery")  # see figures._by_delivery
    rows = session.execute(
        select(delivery, is_click, func.min(Event.at))
        .where(Event.issue_id == issue_id, not_(Event.machine))
        .group_by(delivery, is_click)
    ).all()
    opened: dict[int, datetime] = {}
    clicked: list[datetime] = []
    for delivery_id, click, at in rows:
        if delivery_id in opened:
            opened[delivery_id] = min(opened[delivery_id], at)
        else:
            opened[delivery_id] = at
        if click:
            clicked.append(at)
    return list(opened.values()), clicked


def timeline(session: Session, issue_id: int, sent_at: datetime, span: Span) -> Timeline:
    start = first_start(sent_at, span)
    opened, clicked = first_times(session, issue_id)
    opens, later_opens = counts(start, opened, span.step, span.count)
    clicks, later_clicks = counts(start, clicked, span.step, span.count)
    starts = [start + i * span.step for i in range(span.count)]
    return Timeline(span, starts, opens, clicks, later_opens, later_clicks)
