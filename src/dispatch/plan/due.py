"""Which finalized issues are due, and claiming them for fan-out.

Whether an issue is due, claimed or sent lives in the `issues` table, never in the
scheduler: claiming is one conditional UPDATE (PostgreSQL and SQLite ≥ 3.35 alike), so two
processes racing get disjoint sets and each issue is claimed exactly once.

A claim marks the issue 'sending' and not yet `planned`; planning then commits one chunk
of readers at a time (workers start on the first rows at once) and marks it planned at
the end. An issue is closed as sent only when planned; a fan-out cut short by a crash is
found by `unplanned` and resumed (planning again plans only what is missing).

    with transaction(factory) as s:
        claimed = claim_due(s, now, max_lateness)
    for issue_id in claimed:
        fan_out(factory, issue_id, now=now)   # dispatch.plan.outbox
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from dispatch.clock import show, utcnow
from dispatch.db.models import Delivery, Issue
from dispatch.db.session import is_postgres
from dispatch.errors import Refused

log = logging.getLogger(__name__)

PENDING_STATES = ("queued", "sending", "retry")


def claim_due(session: Session, now: datetime, max_lateness: timedelta) -> list[int]:
    """Move every finalized issue whose publication time has come (and is no more than
    `max_lateness` ago) to 'sending'; return their ids, oldest first."""
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
        raise Refused(f"issue {issue_id}: no such issue")
    if issue.status == "draft":
        raise Refused(
            f"issue {issue_id} is a draft: check it and finalize it first "
            f"(dispatch issues finalize {issue_id})"
        )
    before = issue.status
    result = session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.status != "draft")
        .values(
            status="sending", fanned_out_at=func.coalesce(Issue.fanned_out_at, now), planned=False
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # SQLite reads without a lock: it changed in between
        raise Refused(f"issue {issue_id} was taken back to draft or deleted meanwhile")
    if before == "finalized" and issue.publish_at is not None:
        log.info("issue %s sent by hand (publication time %s)", issue_id, show(issue.publish_at))
    return before


def finish_if_done(session: Session, issue_id: int) -> bool:
    """When no delivery of a 'sending' issue is queued, sending or waiting to retry, the
    issue is sent. True if this call moved it to 'sent'.

    The issue's row is locked first (PostgreSQL), and the outbox read after: two workers
    acking an issue's last two rows at once then can't both see the other's row pending.
    Best called in its own short transaction after the acks are committed (one issue
    lock at a time: no lock-order deadlocks between workers).
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
    if result.rowcount != 1:
        return False
    log.info("issue %s sent", issue_id)
    return True


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


def mark_planned(session: Session, issue_id: int) -> None:
    """The issue's outbox is complete: from now on it may be closed as sent."""
    session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.status == "sending")
        .values(planned=True)
        .execution_options(synchronize_session=False)
    )


def finish_done(session: Session) -> list[int]:
    """finish_if_done for every issue in 'sending': a safety net for the reconcile tick."""
    ids = session.scalars(
        select(Issue.id).where(Issue.status == "sending").order_by(Issue.id)
    ).all()
    return [i for i in ids if finish_if_done(session, i)]


def lock_issue(session: Session, issue_id: int):
    """The issue's status, publication and fan-out times, its row locked until commit on
    PostgreSQL (SQLite has one writer: the later UPDATE is the lock)."""
    stmt = select(Issue.id, Issue.status, Issue.publish_at, Issue.fanned_out_at).where(
        Issue.id == issue_id
    )
    if is_postgres(session):
        stmt = stmt.with_for_update()
    return session.execute(stmt).one_or_none()
