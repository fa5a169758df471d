"""What staff see of an issue's deliveries: how many by channel and state, which failed
and why, and the summary `dispatch status` and `dispatch send` print (or give as JSON)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatch import clock, editorial
from dispatch.db.models import CHANNELS, DELIVERY_STATES, Delivery, Reader
from dispatch.lifecycle import PENDING_STATES, overdue


@dataclass(frozen=True)
class Failure:
    delivery_id: int
    reader_id: int
    reader_name: str
    channel: str
    reason: str
    attempts: int


def counts(session: Session, issue_id: int) -> dict[str, dict[str, int]]:
    """{channel: {state: n}} for the channels the issue has rows in; every state listed."""
    rows = session.execute(
        select(Delivery.channel, Delivery.state, func.count())
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.channel, Delivery.state)
    ).all()
    present = {channel for channel, _, _ in rows}
    out = {c: dict.fromkeys(DELIVERY_STATES, 0) for c in CHANNELS if c in present}
    for channel, state, n in rows:
        out[channel][state] = n
    return out


def pending(
    by_channel: dict[str, dict[str, int]], channels: Collection[str] | None = None
) -> tuple[int, int]:
    """Of `counts`, the deliveries still pending and all of them: in every channel, or in
    `channels` only."""
    states = [s for c, s in by_channel.items() if channels is None or c in channels]
    return (
        sum(n for s in states for state, n in s.items() if state in PENDING_STATES),
        sum(n for s in states for n in s.values()),
    )


def failures(session: Session, issue_id: int, limit: int = 50) -> list[Failure]:
    """The issue's failed rows, oldest first: who, by which channel, why, after how many."""
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.reader_id,
            Reader.name,
            Delivery.channel,
            Delivery.last_error,
            Delivery.attempts,
        )
        .join(Reader, Reader.id == Delivery.reader_id)
        .where(Delivery.issue_id == issue_id, Delivery.state == "failed")
        .order_by(Delivery.id)
        .limit(limit)
    ).all()
    return [Failure(r[0], r[1], r[2], r[3], r[4] or "", r[5]) for r in rows]


def issue_status(
    session: Session, issue_id: int, now: datetime, max_lateness: timedelta
) -> dict[str, Any]:
    """An issue's state and its deliveries', as `dispatch status --json` gives them:
    {issue, status, publish_at, counts, pending, failures, overdue}."""
    issue = editorial.get_issue(session, issue_id)
    by_channel = counts(session, issue_id)
    return {
        "issue": issue_id,
        "status": issue.status,
        "publish_at": clock.show(issue.publish_at) or None,
        "counts": by_channel,
        "pending": pending(by_channel)[0],
        "failures": [
            {"delivery": f.delivery_id, "reader": f.reader_id, "name": f.reader_name,
             "channel": f.channel, "reason": f.reason, "attempts": f.attempts}
            for f in failures(session, issue_id, limit=50)
        ],
        "overdue": issue_id in {i.id for i in overdue(session, now, max_lateness)},
    }
