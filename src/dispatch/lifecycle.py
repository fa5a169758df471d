"""An issue's life cycle: the one place that changes `Issue.status` and `Issue.planned`.

    draft ──finalize──▶ finalized ──claim_due / claim_for_send──▶ sending ──finish_if_done──▶ sent
                                                    ▲                                   │
                                                    └────── claim_for_send, reopen ◀────┘

- An issue is born a draft (the model's default) and only a draft's content may change.
- `finalize` freezes it and sets its publication time; `reschedule` moves that time while
  nothing of the issue has gone out (finalized, never claimed).
- `claim_due` (the scheduler's tick) and `claim_for_send` (`dispatch send`, whatever the
  publication time, and again on an issue already sending or sent to add readers who joined
  since) move it to 'sending' with `planned` false; planning (dispatch.plan.fanout) fills
  the outbox chunk by chunk, then `mark_planned`. A fan-out cut short by a crash is found by
  `unplanned` and resumed (planning again plans only what is missing).
- `finish_if_done` closes it as 'sent' once it is planned and none of its deliveries is
  pending; `reopen` makes a 'sent' issue 'sending' again when `dispatch retry` queued its
  failed rows again.

Whether an issue is due, claimed or sent lives in the `issues` table, never in the
scheduler. Every change is one conditional UPDATE whose WHERE names the state it leaves,
so it happens once however many processes race (PostgreSQL and SQLite ≥ 3.35 alike: two
ticks claiming at once get disjoint sets).

Locking, where a change depends on the issue's deliveries: the issue's row is locked first
(`lock_issue`: `SELECT … FOR UPDATE` on PostgreSQL), its deliveries read or written after.
Two workers acking an issue's last two rows at once then can't both miss the other's row,
and `dispatch retry` can't requeue a row while a worker closes the issue. SQLite has one
writer at a time: there the conditional UPDATE is the lock. Callers take one issue lock per
short transaction (no lock-order deadlocks between workers).

    with transaction(sessions) as s:
        claimed = claim_due(s, now, max_lateness)
    for issue_id in claimed:
        fan_out(sessions, issue_id, now=now)   # dispatch.plan.fanout

This module is below the flow's stages (it imports only the database layer): editorial,
plan and deliver all call it, and none of them imports another for an issue's state.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Row, exists, func, select, update
from sqlalchemy.orm import Session

from dispatch.clock import show, utcnow
from dispatch.db.models import Delivery, Issue
from dispatch.db.session import is_postgres, rowcount
from dispatch.errors import Hinted, Refused
from dispatch.statewords import ISSUE_WORDS

log = logging.getLogger(__name__)

# Deliveries in these states keep their issue 'sending'.
PENDING_STATES = ("queued", "sending", "retry")


def not_found(issue_id: int) -> Refused:
    """The refusal for an issue id that names no issue, wherever it is looked up."""
    return Refused(f"期刊 {issue_id} 不存在（见 dispatch issues list）")


# lock_issue's row: (id, status, publish_at, fanned_out_at).
IssueState = Row[int, str, datetime | None, datetime | None]


def lock_issue(session: Session, issue_id: int) -> IssueState | None:
    """The issue's status, publication and fan-out times, its row locked until commit on
    PostgreSQL (SQLite has one writer: the later UPDATE is the lock); None if no such issue."""
    stmt = select(Issue.id, Issue.status, Issue.publish_at, Issue.fanned_out_at).where(
        Issue.id == issue_id
    )
    if is_postgres(session):
        stmt = stmt.with_for_update()
    return session.execute(stmt).one_or_none()


def finalize(session: Session, issue: Issue, publish_at: datetime, now: datetime) -> None:
    """draft → finalized: the content is frozen, to go out at `publish_at` (naive UTC).

    The editor's checks (a time not in the past, at least one article) are
    dispatch.editorial's; this refuses only an issue that is no longer a draft."""
    result = session.execute(
        update(Issue)
        .where(Issue.id == issue.id, Issue.status == "draft")
        .values(status="finalized", publish_at=publish_at, finalized_at=now)
        # The caller's Issue object is updated too: it shows what was written.
        .execution_options(synchronize_session="evaluate")
    )
    if rowcount(result) != 1:
        raise Refused(f"期刊 {issue.id} 已不是草稿：刚在别处定稿或删除")


def reschedule(session: Session, issue_id: int, publish_at: datetime) -> None:
    """A finalized issue's publication time moves to `publish_at` (naive UTC), as long as
    nothing of it has gone out: never claimed for sending, no delivery planned.

    The editor's check (a time not in the past) is dispatch.editorial's. One conditional
    UPDATE, so a scheduler claiming the issue at the same moment either comes first (and
    this refuses) or finds the new time."""
    untouched = ~exists().where(Delivery.issue_id == issue_id)
    result = session.execute(
        update(Issue)
        .where(
            Issue.id == issue_id,
            Issue.status == "finalized",
            Issue.fanned_out_at.is_(None),
            untouched,
        )
        .values(publish_at=publish_at)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) == 1:
        return
    issue = lock_issue(session, issue_id)
    if issue is None:
        raise not_found(issue_id)
    if issue.status == "draft":
        raise Hinted(
            f"期刊 {issue_id} 还是草稿，没有发布时间可改",
            f'：定稿时设定：dispatch issues finalize {issue_id} --publish-at "YYYY-MM-DD HH:MM"',
        )
    raise Hinted(
        f"期刊 {issue_id} {ISSUE_WORDS[issue.status]}，已开始发送，发布时间不能再改",
        f"（进度见 dispatch status {issue_id}）",
    )


def claim_due(session: Session, now: datetime, max_lateness: timedelta) -> list[int]:
    """finalized → sending, for every issue whose publication time has come (and is no more
    than `max_lateness` ago); their ids, oldest first."""
    stmt = (
        update(Issue)
        .where(
            Issue.status == "finalized",
            Issue.publish_at <= now,
            Issue.publish_at >= now - max_lateness,
            Issue.fanned_out_at.is_(None),
        )
        .values(status="sending", fanned_out_at=now, planned=False)
        .returning(Issue.id, Issue.publish_at)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(stmt).all()
    ids = [r.id for r in sorted(rows, key=lambda r: (r.publish_at, r.id))]
    if ids:
        log.info("claimed due issues %s", ids)
    return ids


def overdue(session: Session, now: datetime, max_lateness: timedelta) -> list[Issue]:
    """Finalized issues whose publication time passed more than `max_lateness` ago.

    They are not sent by the scheduler (a bulletin days late may be stale, or the
    machine was off for a reason): they wait for staff to `dispatch send` them."""
    stmt = (
        select(Issue)
        .where(
            Issue.status == "finalized",
            Issue.fanned_out_at.is_(None),
            Issue.publish_at < now - max_lateness,
        )
        .order_by(Issue.publish_at, Issue.id)
    )
    return list(session.scalars(stmt))


def claim_for_send(session: Session, issue_id: int, now: datetime | None = None) -> str:
    """`dispatch send`: move an issue to 'sending' now, whatever its publication time.

    Finalized (due, not yet due, or overdue) → sending. An issue already sending or sent
    is (re)opened as sending so that planning again can add readers who joined since;
    planning twice plans nothing new, and finish_if_done closes it again.
    Refuses a draft, or an issue that doesn't exist. Returns the status it had.
    """
    now = now or utcnow()
    issue = lock_issue(session, issue_id)
    if issue is None:
        raise not_found(issue_id)
    if issue.status == "draft":
        raise Refused(
            f"期刊 {issue_id} 还是草稿：先核对，再定稿：dispatch issues finalize {issue_id}"
        )
    before: str = issue.status
    result = session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.status != "draft")
        .values(
            status="sending", fanned_out_at=func.coalesce(Issue.fanned_out_at, now), planned=False
        )
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:  # SQLite reads without a lock: it changed in between
        raise Refused(f"期刊 {issue_id} 刚被改回草稿或删除")
    if before == "finalized" and issue.publish_at is not None:
        log.info("issue %s sent by hand (publication time %s)", issue_id, show(issue.publish_at))
    return before


def mark_planned(session: Session, issue_id: int) -> None:
    """The issue's outbox is complete: from now on it may be closed as sent."""
    session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.status == "sending")
        .values(planned=True)
        .execution_options(synchronize_session=False)
    )


def unplanned(session: Session) -> list[int]:
    """Issues claimed for fan-out whose planning has not completed: a crash cut it short,
    or another process is planning right now (planning twice is harmless)."""
    return list(
        session.scalars(
            select(Issue.id)
            .where(Issue.status == "sending", Issue.planned.is_(False))
            .order_by(Issue.id)
        )
    )


def finish_if_done(session: Session, issue_id: int) -> bool:
    """sending → sent, when the issue is planned and none of its deliveries is queued,
    sending or waiting to retry. True if this call closed it.

    Best called in its own short transaction after the acks are committed (see the
    module's note on locking).
    """
    if lock_issue(session, issue_id) is None:
        return False
    pending = exists().where(Delivery.issue_id == issue_id, Delivery.state.in_(PENDING_STATES))
    # One conditional statement, so SQLite (no row locks) can't interleave a requeue.
    result = session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.status == "sending", Issue.planned.is_(True), ~pending)
        .values(status="sent")
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return False
    log.info("issue %s sent", issue_id)
    return True


def finish_done(session: Session) -> list[int]:
    """finish_if_done for every issue in 'sending': a safety net for the reconcile tick."""
    ids = session.scalars(
        select(Issue.id).where(Issue.status == "sending").order_by(Issue.id)
    ).all()
    return [i for i in ids if finish_if_done(session, i)]


def reopen(session: Session, issue_id: int) -> None:
    """sent → sending: some of its deliveries were queued again (`dispatch retry`).

    Call it with the issue locked by `lock_issue` before those rows were touched, in the
    same transaction; an issue still sending stays so."""
    session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.status == "sent")
        .values(status="sending")
        .execution_options(synchronize_session=False)
    )
