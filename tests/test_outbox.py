"""The outbox on both databases: planning, due issues, claims with leases, fenced acks,
retries and their horizon, release, staff's retry, status. Time is injected, never waited
for; concurrency is real (threads, one connection each)."""

from __future__ import annotations

import logging
import os
import random
import socket
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, func, insert, select, update
from sqlalchemy.orm import Session

from dispatch.db.models import Delivery, DeliveryAttempt, Issue, Reader, ReaderChannel
from dispatch.deliver import leases, owner, report
from dispatch.deliver.channel import Outcome
from dispatch.deliver.retry import CAP, HORIZON, backoff, gives_up, step
from dispatch.errors import Refused
from dispatch.lifecycle import (
    claim_due,
    claim_for_send,
    finalize,
    finish_done,
    finish_if_done,
    overdue,
    reschedule,
    unplanned,
)
from dispatch.plan.fanout import fan_out
from dispatch.plan.reconcile import reconcile
from dispatch.track.tokens import is_token

T0 = datetime(2026, 12, 1, 0, 0)
LATE = timedelta(hours=6)
BOTH = {"email", "wecom"}


# --- helpers -------------------------------------------------------------------------


def add_issue(s, status="sending", publish_at=T0 - timedelta(minutes=1)) -> int:
    issue = Issue(
        title="许昌竞争情报快递",
        source_file="x.txt",
        source_format="text",
        status=status,
        publish_at=publish_at,
    )
    s.add(issue)
    s.flush()
    return issue.id


def add_reader(s, name, channels=("email",), status="active") -> int:
    r = Reader(
        name=name,
        email=f"{name}@example.com" if "email" in channels else None,
        wecom_userid=name if "wecom" in channels else None,
        status=status,
        channel_rows=[ReaderChannel(channel=c) for c in channels],
    )
    s.add(r)
    s.flush()
    return r.id


def add_readers_fast(s, n, channels=("email",)) -> None:
    """Many readers with Core inserts (the ORM would dominate the test's time)."""
    start = s.scalar(select(func.coalesce(func.max(Reader.id), 0))) + 1
    ids = range(start, start + n)
    s.execute(
        insert(Reader),
        [
            {
                "id": i,
                "name": f"r{i}",
                "email": f"r{i}@example.com",
                "status": "active",
                "created_at": T0,
                "updated_at": T0,
            }
            for i in ids
        ],
    )
    s.execute(
        insert(ReaderChannel), [{"reader_id": i, "channel": c} for i in ids for c in channels]
    )


def planned_issue(sessions, n_email=0, n_wecom=0) -> int:
    with sessions.begin() as s:
        issue_id = add_issue(s)
        for i in range(n_email):
            add_reader(s, f"e{i}", ("email",))
        for i in range(n_wecom):
            add_reader(s, f"w{i}", ("wecom",))
    fan_out(sessions, issue_id, now=T0)
    return issue_id


def row(sessions, delivery_id) -> Delivery:
    with sessions() as s:
        return s.get(Delivery, delivery_id)


def attempts_of(sessions, delivery_id) -> list[tuple[str, str | None]]:
    """The delivery's recorded attempts, oldest first."""
    with sessions() as s:
        return [
            (a.outcome, a.detail)
            for a in s.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.at, DeliveryAttempt.id)
            )
        ]


def claim(sessions, worker, now=T0, limit=10, lease=60, channels=BOTH):
    with sessions.begin() as s:
        return leases.claim(s, worker, limit, lease, channels, now)


def ack(s, worker, outcome, now, *, attempt=None, **retry) -> bool:
    """One outcome through the workers' own batch ack; False if it was fenced out."""
    return outcome.delivery_id in leases.ack_many(s, worker, [(outcome, attempt)], now, **retry)


def ack_sent(s, worker, delivery_id, now, *, provider_id=None, detail="", attempt=None) -> bool:
    return ack(s, worker, Outcome(delivery_id, "sent", detail, provider_id), now, attempt=attempt)


def ack_permanent(s, worker, delivery_id, now, detail, *, attempt=None) -> bool:
    return ack(s, worker, Outcome(delivery_id, "permanent", detail), now, attempt=attempt)


def is_pg(sessions) -> bool:
    with sessions() as s:
        return s.get_bind().dialect.name == "postgresql"


# --- retry policy (pure) -------------------------------------------------------------


def test_backoff_doubles_from_a_minute_and_is_capped_at_an_hour():
    assert [step(a) for a in (1, 2, 3, 4, 7, 8, 100)] == [
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=4),
        timedelta(minutes=8),
        CAP,
        CAP,
        CAP,
    ]
    assert (timedelta(hours=1), timedelta(days=2)) == (CAP, HORIZON)


def test_backoff_jitter_stays_within_half_a_step_and_a_step():
    rng = random.Random(20261201)
    for attempt in range(1, 15):
        waits = [backoff(attempt, rng) for _ in range(200)]
        assert all(step(attempt) / 2 <= w <= step(attempt) for w in waits)
        assert len(set(waits)) > 100  # actually jittered
    # Seeded: the same seed gives the same waits.
    assert [backoff(3, random.Random(7)) for _ in range(3)] == [
        backoff(3, random.Random(7)) for _ in range(3)
    ]


def test_backoff_base_is_adjustable():
    half = timedelta(seconds=0.5)
    assert [step(a, half) for a in (1, 2, 3)] == [half, 2 * half, 4 * half]
    assert step(40, half) == CAP
    assert half / 2 <= backoff(1, random.Random(3), half) <= half


def test_gives_up_when_the_next_try_falls_past_the_horizon():
    assert not gives_up(T0, T0 + HORIZON)
    assert gives_up(T0, T0 + HORIZON + timedelta(seconds=1))
    assert gives_up(T0, T0 + timedelta(hours=2), horizon=timedelta(hours=1))


# --- planning ------------------------------------------------------------------------


def test_plan_one_row_per_active_reader_and_chosen_channel(sessions):
    with sessions.begin() as s:
        issue_id = add_issue(s)
        both = add_reader(s, "both", ("email", "wecom"))
        mail = add_reader(s, "mail", ("email",))
        wx = add_reader(s, "wx", ("wecom",))
        add_reader(s, "away", ("email",), status="inactive")
        add_reader(s, "gone", ("email", "wecom"), status="unsubscribed")
        add_reader(s, "none", ())
    assert fan_out(sessions, issue_id, now=T0) == {"email": 2, "wecom": 2}
    with sessions() as s:
        rows = s.scalars(select(Delivery).order_by(Delivery.reader_id, Delivery.channel)).all()
    assert [(r.reader_id, r.channel) for r in rows] == [
        (both, "email"),
        (both, "wecom"),
        (mail, "email"),
        (wx, "wecom"),
    ]
    assert all(r.state == "queued" and r.attempts == 0 and r.available_at == T0 for r in rows)
    assert all(is_token(r.token) for r in rows)
    assert len({r.token for r in rows}) == 4


def test_planning_twice_plans_nothing_new_but_adds_new_readers(sessions):
    issue_id = planned_issue(sessions, n_email=3, n_wecom=1)
    with sessions() as s:
        tokens = set(s.scalars(select(Delivery.token)))
    assert fan_out(sessions, issue_id, now=T0) == {"email": 0, "wecom": 0}
    with sessions.begin() as s:
        assert set(s.scalars(select(Delivery.token))) == tokens  # old tokens kept
        add_reader(s, "late", ("email",))
    assert fan_out(sessions, issue_id, now=T0) == {"email": 1, "wecom": 0}
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 5


def test_plan_pages_readers_in_chunks(sessions):
    """Small chunks of readers with two channels each, and more rows than one chunk."""
    with sessions.begin() as s:
        issue_id = add_issue(s)
        for i in range(7):
            add_reader(s, f"r{i}", ("email", "wecom"))
    assert fan_out(sessions, issue_id, now=T0, chunk=3) == {"email": 7, "wecom": 7}
    assert fan_out(sessions, issue_id, now=T0, chunk=3) == {"email": 0, "wecom": 0}
    with sessions.begin() as s:
        add_readers_fast(s, 2500)
    assert fan_out(sessions, issue_id, now=T0) == {"email": 2500, "wecom": 0}
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 2514


def test_two_planners_racing_plan_each_row_once(sessions):
    with sessions.begin() as s:
        issue_id = add_issue(s)
        add_readers_fast(s, 300, ("email", "wecom"))
    barrier = threading.Barrier(2)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def planner():
        try:
            barrier.wait()
            results.append(fan_out(sessions, issue_id, now=T0, chunk=50))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=planner) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(r["email"] for r in results) == sum(r["wecom"] for r in results) == 300
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 600


def test_fan_out_commits_chunk_by_chunk_and_the_issue_closes_only_when_planned(sessions):
    """Workers can start on the first rows while the rest is planned, and an issue
    whose first rows are all sent is not closed before its last chunk is in."""
    with sessions.begin() as s:
        issue_id = add_issue(s, "finalized", T0 - timedelta(minutes=1))
        for i in range(5):
            add_reader(s, f"r{i}")
    with sessions.begin() as s:
        assert claim_due(s, T0, LATE) == [issue_id]
    engine = sessions.kw["bind"]
    seen: list[tuple[int, bool]] = []

    def look(session: Session) -> None:  # what another process sees after each commit
        with engine.connect() as conn:
            rows = conn.scalar(select(func.count()).select_from(Delivery))
            seen.append((rows, conn.scalar(select(Issue.planned).where(Issue.id == issue_id))))

    event.listen(sessions, "after_commit", look)
    try:
        assert fan_out(sessions, issue_id, now=T0, chunk=2) == {"email": 5, "wecom": 0}
    finally:
        event.remove(sessions, "after_commit", look)
    assert seen == [(2, False), (4, False), (5, False), (5, True)]


def test_a_fan_out_cut_short_is_resumed_by_the_next_tick(sessions):
    with sessions.begin() as s:
        issue_id = add_issue(s, "finalized", T0 - timedelta(minutes=1))
        for i in range(5):
            add_reader(s, f"r{i}")
    with sessions.begin() as s:
        claim_due(s, T0, LATE)
    # The process dies after committing the first chunk of two readers.
    with sessions.begin() as s:
        s.execute(insert(Delivery).values(
            issue_id=issue_id, reader_id=1, channel="email", token="a" * 32, available_at=T0))
        s.execute(insert(Delivery).values(
            issue_id=issue_id, reader_id=2, channel="email", token="b" * 32, available_at=T0))
    for held in claim(sessions, "w1"):
        with sessions.begin() as s:
            ack_sent(s, "w1", held.delivery_id, T0)
    with sessions.begin() as s:
        assert not finish_if_done(s, issue_id)  # its first rows are sent; not the issue
        assert unplanned(s) == [issue_id]
    later = T0 + timedelta(seconds=30)
    result = reconcile(sessions, LATE, now=later)
    assert result.planned == {issue_id: {"email": 3, "wecom": 0}}
    assert result.finished == []
    with sessions() as s:
        issue = s.get(Issue, issue_id)
        assert (issue.status, issue.planned) == ("sending", True)
        assert s.scalar(select(func.count()).select_from(Delivery)) == 5
        assert unplanned(s) == []


def test_plan_refuses_an_issue_not_claimed_for_sending(sessions):
    with sessions.begin() as s:
        draft = add_issue(s, status="draft")
        final = add_issue(s, status="finalized")
    for issue_id in (draft, final, 999):
        with pytest.raises(Refused):
            fan_out(sessions, issue_id, now=T0)


# --- due issues ----------------------------------------------------------------------


def test_finalize_changes_only_a_draft(sessions):
    with sessions.begin() as s:
        issue = s.get(Issue, add_issue(s, status="draft", publish_at=None))
        finalize(s, issue, T0, T0 - timedelta(hours=1))
        assert (issue.status, issue.publish_at) == ("finalized", T0)  # the caller sees it
        issue_id = issue.id
    with pytest.raises(Refused), sessions.begin() as s:
        finalize(s, s.get(Issue, issue_id), T0 + timedelta(days=1), T0)
    with sessions() as s:
        issue = s.get(Issue, issue_id)
        assert (issue.status, issue.publish_at, issue.finalized_at) == (
            "finalized", T0, T0 - timedelta(hours=1),
        )


def test_claim_due_takes_due_issues_once_and_leaves_overdue_ones_to_staff(sessions):
    with sessions.begin() as s:
        due = add_issue(s, "finalized", T0 - timedelta(minutes=5))
        edge = add_issue(s, "finalized", T0 - LATE)
        add_issue(s, "finalized", T0 + timedelta(minutes=1))  # not yet
        late = add_issue(s, "finalized", T0 - LATE - timedelta(seconds=1))
        add_issue(s, "draft", T0 - timedelta(minutes=5))
        add_issue(s, "sending", T0 - timedelta(minutes=5))
    with sessions.begin() as s:
        assert claim_due(s, T0, LATE) == [edge, due]
    with sessions.begin() as s:
        assert claim_due(s, T0, LATE) == []
        assert [i.id for i in overdue(s, T0, LATE)] == [late]
    with sessions() as s:
        issue = s.get(Issue, due)
        assert (issue.status, issue.fanned_out_at) == ("sending", T0)
        assert s.get(Issue, late).status == "finalized"


def test_claim_due_racing_threads_get_disjoint_sets_exactly_once(sessions):
    with sessions.begin() as s:
        ids = {add_issue(s, "finalized", T0 - timedelta(minutes=i)) for i in range(30)}
    barrier = threading.Barrier(4)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def worker():
        try:
            barrier.wait()
            for _ in range(3):
                with sessions.begin() as s:
                    results.append(claim_due(s, T0, LATE))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    claimed = [i for r in results for i in r]
    assert sorted(claimed) == sorted(ids)  # every one, none twice


def test_reschedule_moves_an_unclaimed_issue_and_the_scheduler_follows(sessions):
    with sessions.begin() as s:
        late = add_issue(s, "finalized", T0 - timedelta(days=3))  # overdue: waits for staff
        draft = add_issue(s, "draft", None)
    with sessions.begin() as s:
        assert overdue(s, T0, LATE)[0].id == late
        reschedule(s, late, T0 + timedelta(hours=1))
    with sessions.begin() as s:
        assert overdue(s, T0, LATE) == [] and claim_due(s, T0, LATE) == []
        assert claim_due(s, T0 + timedelta(hours=1), LATE) == [late]
    # Claimed: its time is history.
    with pytest.raises(Refused, match="已开始发送"), sessions.begin() as s:
        reschedule(s, late, T0 + timedelta(days=1))
    with pytest.raises(Refused, match="草稿"), sessions.begin() as s:
        reschedule(s, draft, T0 + timedelta(days=1))
    with pytest.raises(Refused, match="不存在"), sessions.begin() as s:
        reschedule(s, 999, T0)
    with sessions() as s:
        assert s.get(Issue, late).publish_at == T0 + timedelta(hours=1)
        assert s.get(Issue, draft).publish_at is None


def test_claim_for_send_sends_overdue_and_refuses_drafts(sessions):
    with sessions.begin() as s:
        late = add_issue(s, "finalized", T0 - timedelta(days=3))
        future = add_issue(s, "finalized", T0 + timedelta(days=3))
        draft = add_issue(s, "draft", None)
    with sessions.begin() as s:
        assert claim_for_send(s, late, now=T0) == "finalized"
        assert claim_for_send(s, future, now=T0) == "finalized"
        assert claim_for_send(s, late, now=T0 + timedelta(hours=1)) == "sending"
    with sessions() as s:
        assert s.get(Issue, late).status == "sending"
        assert s.get(Issue, late).fanned_out_at == T0  # the first fan-out is kept
        assert overdue(s, T0, LATE) == []
    with pytest.raises(Refused, match="草稿"), sessions.begin() as s:
        claim_for_send(s, draft, now=T0)
    with pytest.raises(Refused, match="不存在"), sessions.begin() as s:
        claim_for_send(s, 999, now=T0)
    with sessions() as s:
        assert s.get(Issue, draft).status == "draft"


def test_finish_if_done_when_nothing_is_pending(sessions):
    issue_id = planned_issue(sessions, n_email=2)
    with sessions.begin() as s:
        assert not finish_if_done(s, issue_id)
    a, b = claim(sessions, "w1")
    with sessions.begin() as s:
        ack_sent(s, "w1", a.delivery_id, T0)
        assert not finish_if_done(s, issue_id)  # one still sending
        ack_permanent(s, "w1", b.delivery_id, T0, "550 no such user")
        assert finish_if_done(s, issue_id)
    with sessions.begin() as s:
        assert s.get(Issue, issue_id).status == "sent"
        assert not finish_if_done(s, issue_id)
        assert finish_done(s) == []


def test_finish_done_closes_an_issue_with_nobody_to_send_to(sessions):
    with sessions.begin() as s:
        issue_id = add_issue(s)
    assert fan_out(sessions, issue_id, now=T0) == {"email": 0, "wecom": 0}
    with sessions.begin() as s:
        assert finish_done(s) == [issue_id]


# --- claims and leases ---------------------------------------------------------------


def test_claim_marks_rows_sending_under_a_lease(sessions):
    planned_issue(sessions, n_email=3)
    got = claim(sessions, "w1", limit=2, lease=90)
    assert [c.attempts for c in got] == [1, 1]
    assert [c.delivery_id for c in got] == sorted(c.delivery_id for c in got)
    r = row(sessions, got[0].delivery_id)
    assert (r.state, r.lease_owner, r.lease_expires_at, r.attempts) == (
        "sending",
        "w1",
        T0 + timedelta(seconds=90),
        1,
    )
    assert r.token == got[0].token and is_token(got[0].token)
    assert len(claim(sessions, "w2", limit=10)) == 1
    assert claim(sessions, "w2") == []


def test_rows_not_yet_available_are_not_claimed(sessions):
    planned_issue(sessions, n_email=1)
    assert claim(sessions, "w1", now=T0 - timedelta(seconds=1)) == []
    assert len(claim(sessions, "w1", now=T0)) == 1


def test_a_worker_only_claims_its_channels_and_the_rest_stay_queued(sessions):
    planned_issue(sessions, n_email=2, n_wecom=3)
    got = claim(sessions, "mailer", channels={"email"})
    assert {c.channel for c in got} == {"email"} and len(got) == 2
    assert claim(sessions, "mailer", channels={"email"}) == []  # all held
    assert claim(sessions, "nobody", channels=set()) == []
    with sessions() as s:
        states = Counter(s.scalars(select(Delivery.state).where(Delivery.channel == "wecom")))
    assert states == {"queued": 3}
    assert len(claim(sessions, "wx", now=T0 + timedelta(days=30), channels={"wecom"})) == 3


def test_expired_lease_is_claimable_again_and_the_old_holder_is_fenced_out(sessions):
    planned_issue(sessions, n_email=1)
    (old,) = claim(sessions, "w1", lease=60)
    assert claim(sessions, "w2", now=T0 + timedelta(seconds=60)) == []  # not yet expired
    (new,) = claim(sessions, "w2", now=T0 + timedelta(seconds=61))
    assert new.delivery_id == old.delivery_id and new.attempts == 2
    later = T0 + timedelta(seconds=70)
    with sessions.begin() as s:
        assert not ack_sent(s, "w1", old.delivery_id, later, provider_id="X")
        assert not leases.ack_temporary(s, "w1", old.delivery_id, later, "421 busy")
        assert not ack_permanent(s, "w1", old.delivery_id, later, "550 nope")
    r = row(sessions, old.delivery_id)
    assert (r.state, r.lease_owner, r.provider_id, r.attempts) == ("sending", "w2", None, 2)
    assert attempts_of(sessions, old.delivery_id) == []
    with sessions.begin() as s:
        assert ack_sent(s, "w2", new.delivery_id, later, provider_id="Q1")
    assert row(sessions, new.delivery_id).state == "sent"


def test_an_ack_for_an_earlier_claim_by_the_same_worker_is_fenced_by_attempt(sessions):
    planned_issue(sessions, n_email=1)
    (first,) = claim(sessions, "w1", lease=60)
    (second,) = claim(sessions, "w1", now=T0 + timedelta(minutes=5))
    assert second.attempts == 2
    late = T0 + timedelta(minutes=6)
    with sessions.begin() as s:
        assert not ack_sent(s, "w1", first.delivery_id, late, attempt=first.attempts)
        assert ack_sent(s, "w1", second.delivery_id, late, attempt=second.attempts)


def test_a_batch_ack_keeps_each_rows_reply_and_fences_rows_one_by_one(sessions):
    planned_issue(sessions, n_email=6)
    mine = claim(sessions, "w1", lease=60)
    a, b, c, d, e, f = mine
    # e's lease ran out and w2 took it: w1's ack for e must change nothing.
    with sessions.begin() as s:
        s.execute(
            update(Delivery).where(Delivery.id == e.delivery_id).values(lease_owner="w2")
        )
    now = T0 + timedelta(seconds=3)
    batch = [
        (Outcome(a.delivery_id, "sent", "250 Ok: queued as AAA", "AAA"), a.attempts),
        (Outcome(b.delivery_id, "sent", "250 Ok: queued as BBB", "BBB"), b.attempts),
        (Outcome(c.delivery_id, "permanent", "550 5.1.1 no such user"), c.attempts),
        (Outcome(d.delivery_id, "permanent", "552 5.2.2 mailbox full"), d.attempts),
        (Outcome(e.delivery_id, "sent", "250 Ok: queued as EEE", "EEE"), e.attempts),
        (Outcome(f.delivery_id, "temporary", "451 4.7.1 greylisted"), f.attempts),
    ]
    with sessions.begin() as s:
        accepted = leases.ack_many(s, "w1", batch, now, rng=random.Random(1))
    assert accepted == {a.delivery_id, b.delivery_id, c.delivery_id, d.delivery_id, f.delivery_id}
    got = {x.delivery_id: row(sessions, x.delivery_id) for x in mine}
    assert [(got[x.delivery_id].state, got[x.delivery_id].provider_id) for x in (a, b)] == [
        ("sent", "AAA"),
        ("sent", "BBB"),
    ]
    assert [got[x.delivery_id].last_error for x in (c, d)] == [
        "550 5.1.1 no such user",
        "552 5.2.2 mailbox full",
    ]
    assert (got[e.delivery_id].state, got[e.delivery_id].lease_owner) == ("sending", "w2")
    assert got[f.delivery_id].state == "retry"
    assert attempts_of(sessions, a.delivery_id) == [("sent", "250 Ok: queued as AAA")]
    assert attempts_of(sessions, d.delivery_id) == [("permanent", "552 5.2.2 mailbox full")]
    assert attempts_of(sessions, e.delivery_id) == []


def test_claims_from_racing_threads_are_disjoint_and_lose_nothing(sessions):
    planned_issue(sessions, n_email=120, n_wecom=40)
    n_threads = 4
    barrier = threading.Barrier(n_threads)
    got: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(name):
        try:
            barrier.wait()
            while True:
                with sessions.begin() as s:
                    batch = leases.claim(s, name, 7, 60, BOTH, T0)
                if not batch:
                    return
                with lock:
                    got.extend(c.delivery_id for c in batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(got) == 160 and len(set(got)) == 160


def test_postgresql_skip_locked_hands_concurrent_claims_disjoint_rows(pg_sessions):
    """Two connections, both claims open at once: the second skips the first's rows
    instead of waiting for them. (PostgreSQL only: SQLite has one writer.)"""
    sessions = pg_sessions
    planned_issue(sessions, n_email=10)
    with sessions.begin() as a, sessions.begin() as b:
        got_a = leases.claim(a, "wa", 4, 60, BOTH, T0)
        got_b = leases.claim(b, "wb", 4, 60, BOTH, T0)  # a has not committed
        ids_a = {c.delivery_id for c in got_a}
        ids_b = {c.delivery_id for c in got_b}
    assert len(ids_a) == len(ids_b) == 4 and not ids_a & ids_b
    with sessions() as s:
        owners = Counter(s.scalars(select(Delivery.lease_owner)))
    assert owners == {"wa": 4, "wb": 4, None: 2}


# --- acks and history ----------------------------------------------------------------


def test_acks_move_rows_and_append_history(sessions):
    planned_issue(sessions, n_email=3)
    sent, temp, perm = claim(sessions, "w1")
    now = T0 + timedelta(seconds=5)
    rng = random.Random(1)
    with sessions.begin() as s:
        assert ack(
            s,
            "w1",
            Outcome(sent.delivery_id, "sent", "250 2.0.0 Ok: queued as 4Xyz", "4Xyz"),
            now,
        )
        assert ack(
            s, "w1", Outcome(temp.delivery_id, "temporary", "451 4.7.1 greylisted"), now, rng=rng
        )
        assert ack(
            s, "w1", Outcome(perm.delivery_id, "permanent", "550 5.1.1 no such user"), now
        )

    r = row(sessions, sent.delivery_id)
    assert (r.state, r.provider_id, r.sent_at, r.lease_owner, r.lease_expires_at) == (
        "sent",
        "4Xyz",
        now,
        None,
        None,
    )
    assert attempts_of(sessions, sent.delivery_id) == [("sent", "250 2.0.0 Ok: queued as 4Xyz")]

    r = row(sessions, perm.delivery_id)
    assert (r.state, r.last_error, r.lease_owner) == ("failed", "550 5.1.1 no such user", None)
    assert attempts_of(sessions, perm.delivery_id) == [("permanent", "550 5.1.1 no such user")]

    r = row(sessions, temp.delivery_id)
    assert (r.state, r.last_error, r.lease_owner, r.first_attempt_at) == (
        "retry",
        "451 4.7.1 greylisted",
        None,
        now,
    )
    assert now + timedelta(seconds=30) <= r.available_at <= now + timedelta(minutes=1)
    assert attempts_of(sessions, temp.delivery_id) == [("temporary", "451 4.7.1 greylisted")]

    # Not before its time; then claimed again as attempt 2.
    assert claim(sessions, "w1", now=r.available_at - timedelta(seconds=1)) == []
    (again,) = claim(sessions, "w1", now=r.available_at)
    assert (again.delivery_id, again.attempts) == (temp.delivery_id, 2)
    with sessions.begin() as s:
        assert ack_sent(s, "w1", again.delivery_id, r.available_at, provider_id="5Abc")
    assert [o for o, _ in attempts_of(sessions, temp.delivery_id)] == ["temporary", "sent"]


def test_temporary_failures_give_up_after_the_horizon(sessions):
    planned_issue(sessions, n_email=1)
    rng = random.Random(42)
    now = T0
    start = None
    for _ in range(200):
        got = claim(sessions, "w1", now=now)
        if not got:
            break
        (c,) = got
        start = start or now
        with sessions.begin() as s:
            assert leases.ack_temporary(s, "w1", c.delivery_id, now, "421 try later", rng=rng)
        r = row(sessions, c.delivery_id)
        if r.state == "failed":
            break
        assert r.state == "retry"
        now = r.available_at
    r = row(sessions, c.delivery_id)
    assert r.state == "failed"
    assert r.last_error.startswith(f"gave up after {r.attempts} attempts in 1 d")
    assert r.last_error.endswith(": 421 try later")
    assert HORIZON - CAP <= now - start <= HORIZON
    assert len(attempts_of(sessions, c.delivery_id)) == r.attempts
    assert claim(sessions, "w1", now=now + timedelta(days=30)) == []


def test_the_horizon_is_configurable(sessions):
    planned_issue(sessions, n_email=1)
    now, n = T0, 0
    while True:
        (c,) = claim(sessions, "w1", now=now)
        n += 1
        with sessions.begin() as s:
            leases.ack_temporary(
                s,
                "w1",
                c.delivery_id,
                now,
                "busy",
                rng=random.Random(n),
                horizon=timedelta(minutes=10),
            )
        r = row(sessions, c.delivery_id)
        if r.state == "failed":
            break
        now = r.available_at
    assert 2 <= n <= 5  # 1 + 2 + 4 (+ jitter) minutes fit in ten


# --- release, staff's retry, status --------------------------------------------------


def test_release_puts_held_rows_back_as_not_attempted(sessions):
    planned_issue(sessions, n_email=4)
    a, b, c = claim(sessions, "w1", limit=3)
    (d,) = claim(sessions, "w2")
    with sessions.begin() as s:
        ack_sent(s, "w1", a.delivery_id, T0)
        assert leases.release(s, "w1") == 2
    for held in (b, c):
        r = row(sessions, held.delivery_id)
        assert (r.state, r.attempts, r.lease_owner, r.lease_expires_at) == ("queued", 0, None, None)
    assert row(sessions, a.delivery_id).state == "sent"
    assert row(sessions, d.delivery_id).lease_owner == "w2"  # another worker's rows stay
    with sessions.begin() as s:
        assert not ack_sent(s, "w1", b.delivery_id, T0)  # released: fenced out
    assert {x.delivery_id for x in claim(sessions, "w3")} == {b.delivery_id, c.delivery_id}


def test_release_can_keep_rows_a_channel_still_has(sessions):
    planned_issue(sessions, n_email=3)
    a, b, c = claim(sessions, "w1", limit=3)
    with sessions.begin() as s:
        assert leases.release(s, "w1", keep={c.delivery_id}) == 2
    assert [row(sessions, x.delivery_id).state for x in (a, b, c)] == ["queued", "queued", "sending"]
    assert row(sessions, c.delivery_id).lease_owner == "w1"


def dead_pid() -> int:
    """The pid of a process that has exited (pids are handed out in turn: not reused soon)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_rows_of_a_dead_worker_on_this_host_are_claimable_at_once(sessions):
    planned_issue(sessions, n_email=5)
    here = owner.local_host()
    dead = f"{here}:{dead_pid()}:a1b2c3"
    alive = f"{here}:{os.getpid()}:d4e5f6"  # this process: alive
    elsewhere = f"otherhost:{dead_pid()}:a1b2c3"  # another machine's pids mean nothing here
    other_ns = f"{socket.gethostname()}~1:{dead_pid()}:a1b2c3"  # same name, other container
    held = {w: claim(sessions, w, limit=1, lease=600) for w in (dead, alive, elsewhere, other_ns)}
    later = T0 + timedelta(seconds=5)
    assert claim(sessions, "w9", now=later, limit=1) != []  # the fifth row, never claimed

    with sessions.begin() as s:
        assert leases.expire_dead(s, owner.is_dead_here, later) == 1
    # Claimable now, long before its 600 s lease would run out; re-sent as an expired
    # lease is (same token, so the same Message-ID; the attempt counts), never released.
    (again,) = claim(sessions, "w2", now=later + timedelta(seconds=1), lease=600)
    (was,) = held[dead]
    assert (again.delivery_id, again.token, again.attempts) == (was.delivery_id, was.token, 2)
    assert claim(sessions, "w2", now=later + timedelta(seconds=1)) == []  # the rest stay held
    for w in (alive, elsewhere, other_ns):
        assert row(sessions, held[w][0].delivery_id).lease_owner == w
    with sessions.begin() as s:
        assert leases.expire_dead(s, owner.is_dead_here, later) == 0


def test_a_worker_name_tells_host_and_pid():
    name = owner.worker_name()
    host, pid, suffix = name.rsplit(":", 2)
    assert host == owner.local_host() and int(pid) == os.getpid() and len(suffix) == 6
    assert name != owner.worker_name()
    assert not owner.is_dead_here(name)  # ourselves
    assert not owner.is_dead_here("not a worker name")


def test_retry_failed_queues_failed_rows_again_keeping_counts_and_history(sessions):
    issue_id = planned_issue(sessions, n_email=2)
    a, b = claim(sessions, "w1")
    with sessions.begin() as s:
        ack_permanent(s, "w1", a.delivery_id, T0, "550 mailbox full")
        ack_sent(s, "w1", b.delivery_id, T0)
        assert finish_if_done(s, issue_id)
    later = T0 + timedelta(days=1)
    with sessions.begin() as s:
        assert leases.retry_failed(s, issue_id, now=later) == 1
        assert s.get(Issue, issue_id).status == "sending"
    r = row(sessions, a.delivery_id)
    assert (r.state, r.available_at, r.attempts, r.first_attempt_at) == ("queued", later, 1, None)
    assert attempts_of(sessions, a.delivery_id) == [("permanent", "550 mailbox full")]
    (again,) = claim(sessions, "w1", now=later)
    assert (again.delivery_id, again.attempts) == (a.delivery_id, 2)
    with sessions.begin() as s:
        assert leases.retry_failed(s, issue_id, now=later) == 0
    with pytest.raises(Refused), sessions.begin() as s:
        leases.retry_failed(s, 999)


def test_counts_and_failures_for_status(sessions):
    issue_id = planned_issue(sessions, n_email=3, n_wecom=1)
    a, b = claim(sessions, "w1", limit=2, channels={"email"})
    with sessions.begin() as s:
        ack_permanent(s, "w1", a.delivery_id, T0, "550 5.1.1 no such user")
        ack_sent(s, "w1", b.delivery_id, T0)
    with sessions() as s:
        got = report.counts(s, issue_id)
        fails = report.failures(s, issue_id, limit=10)
        assert report.counts(s, 999) == {}
    assert got["email"] == {
        "queued": 1,
        "sending": 0,
        "sent": 1,
        "retry": 0,
        "failed": 1,
        "cancelled": 0,
    }
    assert got["wecom"]["queued"] == 1 and sum(got["wecom"].values()) == 1
    assert len(fails) == 1
    f = fails[0]
    r = row(sessions, a.delivery_id)
    assert (f.delivery_id, f.reader_id, f.channel, f.reason, f.attempts) == (
        a.delivery_id,
        r.reader_id,
        "email",
        "550 5.1.1 no such user",
        1,
    )
    assert f.reader_name.startswith("e")


def test_history_rows_point_at_their_delivery(sessions):
    planned_issue(sessions, n_email=1)
    (c,) = claim(sessions, "w1")
    with sessions.begin() as s:
        ack_sent(s, "w1", c.delivery_id, T0, detail="ok")
    with sessions() as s:
        (h,) = s.scalars(select(DeliveryAttempt)).all()
    assert (h.delivery_id, h.at, h.outcome, h.detail) == (c.delivery_id, T0, "sent", "ok")


def test_a_failure_reason_quoting_the_reader_stays_out_of_info_logs(sessions, caplog):
    planned_issue(sessions, n_email=2)
    a, b = claim(sessions, "w1", limit=2, channels={"email"})
    reply = "550 5.1.1 <li.hongmei@example.gov.cn>: Recipient address rejected"
    with caplog.at_level(logging.INFO, logger="dispatch"), sessions.begin() as s:
        ack_permanent(s, "w1", a.delivery_id, T0, reply)
        # A temporary failure past the horizon fails too, with its reply.
        assert leases.ack_temporary(s, "w1", b.delivery_id, T0, reply, horizon=timedelta(0))
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert sum(f"delivery {d} failed" in m for m in info for d in (a.delivery_id, b.delivery_id)) == 2
    assert not [m for m in info if "example.gov.cn" in m]
    assert row(sessions, a.delivery_id).last_error == reply  # kept for staff


# --- pauses and suspended email ------------------------------------------------------


def test_planning_skips_readers_paused_past_publication_and_suspended_email(sessions):
    """A reader's pause holds back what is published before it ends; a suspended email
    holds back the email channel only. The dry run's audience says the same."""
    from dispatch.plan.fanout import audience, audience_by_channel, publication_time

    with sessions.begin() as s:
        issue_id = add_issue(s, publish_at=T0)
        plain = add_reader(s, "plain", ("email", "wecom"))
        paused = add_reader(s, "paused", ("email", "wecom"))
        over = add_reader(s, "over", ("email",))  # paused until the issue came out
        bounced = add_reader(s, "bounced", ("email", "wecom"))
        bounced_only = add_reader(s, "bounced_only", ("email",))
        s.get(Reader, paused).paused_until = T0 + timedelta(seconds=1)
        s.get(Reader, over).paused_until = T0
        for r in (bounced, bounced_only):
            s.get(Reader, r).email_suspended_at = T0 - timedelta(days=1)
            s.get(Reader, r).email_bounces = 3
    with sessions() as s:
        # Scheduled for T0 and not gone out yet; the tick that takes it comes an hour late.
        published = publication_time(s, issue_id, now=T0 + timedelta(hours=1))
        assert published == T0
        expected = audience_by_channel(s, published)
        reached = [(r.id, channels) for r, channels in audience(s, published)]
    assert reached == [(plain, ["email", "wecom"]), (over, ["email"]), (bounced, ["wecom"])]
    assert fan_out(sessions, issue_id, now=T0 + timedelta(hours=1)) == expected == {
        "email": 2, "wecom": 2}
    with sessions() as s:
        rows = s.execute(select(Delivery.reader_id, Delivery.channel)
                         .order_by(Delivery.reader_id, Delivery.channel)).all()
    assert [tuple(r) for r in rows] == [
        (plain, "email"), (plain, "wecom"), (over, "email"), (bounced, "wecom")]


def test_publication_is_when_an_issue_first_went_out_or_its_schedule_if_earlier():
    from dispatch.plan.fanout import published_at

    assert published_at(T0, None, T0 - timedelta(days=2)) == T0 - timedelta(days=2)  # sent early
    assert published_at(T0, T0 + timedelta(hours=1), T0 + timedelta(days=9)) == T0  # a late tick
    assert published_at(T0, T0 - timedelta(days=1), T0 + timedelta(days=9)) == T0 - timedelta(days=1)
    assert published_at(None, None, T0) == T0


def test_sending_again_later_reaches_no_one_who_was_paused_when_it_went_out(sessions):
    with sessions.begin() as s:
        issue_id = add_issue(s, publish_at=T0)
        s.get(Issue, issue_id).fanned_out_at = T0
        paused = add_reader(s, "paused", ("email",))
        s.get(Reader, paused).paused_until = T0 + timedelta(days=7)
    # A week and a day later their pause is over; the issue came out during it.
    assert fan_out(sessions, issue_id, now=T0 + timedelta(days=8)) == {"email": 0, "wecom": 0}
