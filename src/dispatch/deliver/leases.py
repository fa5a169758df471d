"""The outbox as workers see it: claims with a lease, renewals, fenced acks, release.

(Rows are planned by dispatch.plan.fanout; what staff see of them is dispatch.deliver.report.)

A worker claims a small batch of rows it can serve ('queued', 'retry' whose time has come,
or 'sending' whose lease expired), marks them 'sending' under its name until
`lease_expires_at`, hands them to the channel and acks each outcome as soon as it is known.
The lease is the lock, not a transaction: call each function in its own short transaction
(`dispatch.db.session.transaction`) and commit before talking to a mail server.

Every ack is fenced: it changes the row only while the row is still 'sending' under the
acking worker (and, when given, at the claimed attempt). An ack from a worker whose lease
expired and whose row was claimed again returns False and changes nothing.

Attempts count claims: `claim` adds one. `release` (clean shutdown) gives back what was
claimed but never handed to a channel, and takes that one back off. `expire_dead` ends
at once the leases of workers that died on this host (see dispatch.deliver.owner).
`retry_failed` (staff's `dispatch retry`) queues failed rows again, reopening their issue
through dispatch.lifecycle.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, case, func, insert, select, text, update
from sqlalchemy.orm import Session

from dispatch.clock import utcnow
from dispatch.db.models import (
    CLAIM_LEASED,
    CLAIM_READY,
    Delivery,
    DeliveryAttempt,
)
from dispatch.db.session import is_postgres, rowcount
from dispatch.deliver.channel import Outcome
from dispatch.deliver.retry import BASE, HORIZON, backoff, describe_span, gives_up
from dispatch.lifecycle import lock_issue, not_found, reopen

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    """A row a worker holds: what it needs to render and send, and the attempt number
    (1 for the first try) that also fences its ack."""

    delivery_id: int
    issue_id: int
    reader_id: int
    channel: str
    token: str
    attempts: int


def _claimable(now: datetime, channels: Iterable[str]) -> list[Select[int]]:
    """The two kinds of claimable rows, each in the order of its partial index
    (dispatch.db.models): leases that expired (a dead worker's rows) first, then rows
    whose time has come, oldest first."""
    of_channels = Delivery.channel.in_(sorted(channels))
    return [
        select(Delivery.id)
        .where(text(CLAIM_LEASED), Delivery.lease_expires_at < now, of_channels)
        .order_by(Delivery.lease_expires_at, Delivery.id),
        select(Delivery.id)
        .where(text(CLAIM_READY), Delivery.available_at <= now, of_channels)
        .order_by(Delivery.available_at, Delivery.id),
    ]


def claim(
    session: Session,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    channels: set[str],
    now: datetime,
) -> list[Claimed]:
    """Claim up to `limit` rows of the given channels for `lease_seconds`: expired
    leases first, then the oldest available rows.

    PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED, then UPDATE: concurrent workers get
    disjoint rows without waiting for each other. SQLite: UPDATE … WHERE id IN (SELECT …
    LIMIT n) RETURNING …; SQLite has one writer, so claims serialize.
    """
    if limit <= 0 or not channels:
        return []
    postgres = is_postgres(session)
    claimed: list[Claimed] = []
    for pick in _claimable(now, channels):
        want = limit - len(claimed)
        if want <= 0:
            break
        pick = pick.limit(want)
        if postgres:
            ids = list(session.scalars(pick.with_for_update(skip_locked=True)))
            if not ids:
                continue
            target = Delivery.id.in_(ids)
        else:
            target = Delivery.id.in_(pick.scalar_subquery())
        stmt = (
            update(Delivery)
            .where(target)
            .values(
                state="sending",
                lease_owner=worker_id,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                attempts=Delivery.attempts + 1,
            )
            .returning(
                Delivery.id,
                Delivery.issue_id,
                Delivery.reader_id,
                Delivery.channel,
                Delivery.token,
                Delivery.attempts,
            )
            .execution_options(synchronize_session=False)
        )
        rows = sorted(session.execute(stmt).all(), key=lambda r: r.id)
        claimed += [Claimed(r.id, r.issue_id, r.reader_id, r.channel, r.token, r.attempts) for r in rows]
    return claimed


def renew(
    session: Session,
    worker_id: str,
    delivery_ids: Iterable[int],
    lease_seconds: float,
    now: datetime,
) -> int:
    """Extend the lease on rows this worker still holds (a slow batch); returns how many."""
    ids = list(delivery_ids)
    if not ids:
        return 0
    result = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.state == "sending", Delivery.lease_owner == worker_id)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


def _fence(
    delivery_ids: Iterable[int], worker_id: str, attempt: int | None
) -> list[ColumnElement[bool]]:
    cond = [
        Delivery.id.in_(list(delivery_ids)),
        Delivery.state == "sending",
        Delivery.lease_owner == worker_id,
    ]
    if attempt is not None:
        cond.append(Delivery.attempts == attempt)
    return cond


def _record(session: Session, now: datetime, entries: list[tuple[int, str, str]]) -> None:
    """Append (delivery_id, outcome, detail) to the history: one multi-row INSERT."""
    if entries:
        session.execute(
            insert(DeliveryAttempt),
            [
                {"delivery_id": d, "at": now, "outcome": kind, "detail": detail or None}
                for d, kind, detail in entries
            ],
        )


def _log_failed(delivery_id: int, reason: str | None) -> None:
    # A reason may quote the reader's address (an SMTP reply, a splicer's refusal): it is
    # kept for staff in the database (`dispatch status`), and logged at DEBUG only.
    log.info("delivery %s failed (the reason: dispatch status)", delivery_id)
    log.debug("delivery %s failed: %s", delivery_id, reason)


def _fenced_out(delivery_id: int, worker_id: str, kind: str) -> bool:
    log.warning(
        "delivery %s: %s ack from %s ignored: no longer its lease", delivery_id, kind, worker_id
    )
    return False


_RELEASED = {"lease_owner": None, "lease_expires_at": None}


def _per_row(values: dict[int, str | None]) -> str | None | ColumnElement[str | None]:
    """One column value per row, in a single UPDATE: CASE id WHEN … THEN … END."""
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return case(values, value=Delivery.id)


def _settle(
    session: Session,
    worker_id: str,
    outcomes: list[Outcome],
    now: datetime,
    attempt: int | None,
) -> set[int]:
    """'sent' or 'permanent' outcomes of one kind and attempt, fenced, in one UPDATE;
    the ids it changed (the others were fenced out and are logged)."""
    kind = outcomes[0].kind
    values: dict[str, object]
    if kind == "sent":
        values = {
            "state": "sent",
            "provider_id": _per_row({o.delivery_id: o.provider_id for o in outcomes}),
            "sent_at": now,
        }
    else:
        values = {
            "state": "failed",
            "last_error": _per_row(
                {o.delivery_id: o.detail or "permanent failure" for o in outcomes}
            ),
        }
    done = set(
        session.scalars(
            update(Delivery)
            .where(*_fence((o.delivery_id for o in outcomes), worker_id, attempt))
            .values(
                first_attempt_at=func.coalesce(Delivery.first_attempt_at, now),
                **values,
                **_RELEASED,
            )
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        )
    )
    _record(session, now, [(o.delivery_id, kind, o.detail) for o in outcomes if o.delivery_id in done])
    for o in outcomes:
        if o.delivery_id not in done:
            _fenced_out(o.delivery_id, worker_id, kind)
        elif kind == "permanent":
            _log_failed(o.delivery_id, o.detail)
    return done


def ack_temporary(
    session: Session,
    worker_id: str,
    delivery_id: int,
    now: datetime,
    detail: str,
    *,
    attempt: int | None = None,
    rng: random.Random | None = None,
    horizon: timedelta = HORIZON,
    base: timedelta = BASE,
) -> bool:
    """Try again later ('retry', available after a jittered backoff), unless the next try
    would fall past the horizon counted from the first attempt: then 'failed'."""
    row = session.execute(
        select(Delivery.attempts, Delivery.first_attempt_at).where(
            *_fence([delivery_id], worker_id, attempt)
        )
    ).one_or_none()
    if row is None:
        return _fenced_out(delivery_id, worker_id, "temporary")
    first = row.first_attempt_at or now
    retry_at = now + backoff(row.attempts, rng, base)
    reply = detail or "temporary failure"
    values: dict[str, object]
    if gives_up(first, retry_at, horizon):
        values = {
            "state": "failed",
            "last_error": (
                f"gave up after {row.attempts} attempts in {describe_span(now - first)}: {reply}"
            ),
        }
    else:
        values = {"state": "retry", "available_at": retry_at, "last_error": reply}
    result = session.execute(
        update(Delivery)
        .where(*_fence([delivery_id], worker_id, row.attempts))
        .values(first_attempt_at=first, **values, **_RELEASED)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return _fenced_out(delivery_id, worker_id, "temporary")
    _record(session, now, [(delivery_id, "temporary", detail)])
    if values["state"] == "failed":
        _log_failed(delivery_id, str(values["last_error"]))
    return True


def ack_many(
    session: Session,
    worker_id: str,
    outcomes: Iterable[tuple[Outcome, int | None]],
    now: datetime,
    *,
    rng: random.Random | None = None,
    horizon: timedelta = HORIZON,
    base: timedelta = BASE,
) -> set[int]:
    """Record a batch of (Outcome, claimed attempt); the ids whose ack was accepted.

    Sent and permanent outcomes of the same attempt take one UPDATE (and one history
    INSERT) together: a worker's batch costs a few statements, not two per row. Each row
    is still fenced on its own; temporary ones (rare) go one by one, as each has its own
    backoff."""
    groups: dict[tuple[str, int | None], list[Outcome]] = {}
    accepted: set[int] = set()
    for outcome, attempt in outcomes:
        if outcome.kind == "temporary":
            if ack_temporary(
                session, worker_id, outcome.delivery_id, now, outcome.detail,
                attempt=attempt, rng=rng, horizon=horizon, base=base,
            ):
                accepted.add(outcome.delivery_id)
        elif outcome.kind in ("sent", "permanent"):
            groups.setdefault((outcome.kind, attempt), []).append(outcome)
        else:
            raise ValueError(f"unknown outcome kind {outcome.kind!r}")
    for (_, attempt), group in groups.items():
        accepted |= _settle(session, worker_id, group, now, attempt)
    return accepted


def release(session: Session, worker_id: str, keep: Iterable[int] = ()) -> int:
    """Clean shutdown, or a batch cut short by a fault: rows this worker still holds
    (but those in `keep`) go back to 'queued', claimable at once.

    A released row was claimed but never handed to a channel, so the claim's attempt is
    taken back (attempts - 1). Call it only after every row handed to a channel has been
    acked, or pass such rows in `keep`: a row in flight is not 'not attempted'.
    """
    held = [Delivery.state == "sending", Delivery.lease_owner == worker_id]
    kept = list(keep)
    if kept:
        held.append(Delivery.id.not_in(kept))
    result = session.execute(
        update(Delivery)
        .where(*held)
        .values(
            state="queued",
            attempts=case((Delivery.attempts > 0, Delivery.attempts - 1), else_=0),
            **_RELEASED,
        )
        .execution_options(synchronize_session=False)
    )
    n = rowcount(result)
    if n:
        log.info("released %s deliveries held by %s", n, worker_id)
    return n


def expire_dead(session: Session, is_dead: Callable[[str], bool], now: datetime) -> int:
    """Make the rows of dead lease holders claimable now, as if their lease had run out.

    `is_dead(owner)` judges each holder (dispatch.deliver.owner.is_dead_here: a worker on
    this host whose process is gone). The rows stay 'sending' with their attempt count:
    they may have been handed to a mail server before the crash, so they are re-sent like
    any expired lease, with the same Message-ID (never released as 'not attempted').
    Returns how many rows were freed.
    """
    owners = session.scalars(
        select(Delivery.lease_owner)
        .where(text(CLAIM_LEASED), Delivery.lease_owner.is_not(None))
        .distinct()
    ).all()
    dead = sorted(o for o in owners if o is not None and is_dead(o))
    if not dead:
        return 0
    result = session.execute(
        update(Delivery)
        .where(
            text(CLAIM_LEASED),
            Delivery.lease_owner.in_(dead),
            Delivery.lease_expires_at > now,
        )
        .values(lease_expires_at=now)
        .execution_options(synchronize_session=False)
    )
    n = rowcount(result)
    if n:
        log.info(
            "%s deliveries held by %d dead worker(s) on this host are claimable now: %s",
            n, len(dead), ", ".join(dead),
        )
    return n


def retry_failed(session: Session, issue_id: int, now: datetime | None = None) -> int:
    """`dispatch retry`: the issue's failed rows go back to 'queued', available now.

    Attempt counters and history stay; the retry horizon starts again. A 'sent' issue is
    sending again until those rows are done. Returns how many rows were requeued.
    """
    now = now or utcnow()
    # The issue before its rows: see dispatch.lifecycle on locking.
    if lock_issue(session, issue_id) is None:
        raise not_found(issue_id)
    result = session.execute(
        update(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.state == "failed")
        .values(state="queued", available_at=now, first_attempt_at=None, **_RELEASED)
        .execution_options(synchronize_session=False)
    )
    n = rowcount(result)
    if n:
        reopen(session, issue_id)
        log.info("issue %s: %s failed deliveries queued again", issue_id, n)
    return n
