"""Planning: fill the outbox with one delivery per (issue, active reader, reader's channel).

(The other side of the outbox, workers claiming and acknowledging rows, is
dispatch.deliver.leases.)

Rows go in with `INSERT … ON CONFLICT (issue_id, reader_id, channel) DO NOTHING`, so planning
twice plans nothing new and two processes planning the same issue at once can't double a
row. Each row gets its own fresh token (dispatch.track.tokens), made in Python. Readers are
read in keyset-paginated chunks, so 100,000 readers never sit in memory at once.

`fan_out` commits each chunk on its own (workers start on the first rows while the rest
is planned) and marks the issue planned at the end.

Every channel a reader chose is planned, configured here or not: a row for a channel no
worker serves waits in 'queued' (never failed, never lost) until one does.

Who is planned (`receiving`, `PLANNED_CHANNEL`): active readers, except those who paused
(the preferences page) past the issue's publication time, by each channel they chose,
except email while the bounce rule has it suspended. The publication time is when the
issue first went out, or its scheduled time if that was earlier (`published_at`): planning
it again later (a crash resumed, `dispatch send` again) reaches the same readers.

`audience`, `audience_count` and `audience_by_channel` say who planning would reach, by
the same conditions, for `dispatch send --dry-run` and the staff web's 谁会收到什么
(dispatch.plan.dry_run); `planned_token` reads back the token a reader's delivery got,
for previews.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, Table, and_, exists, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload, sessionmaker

from dispatch.clock import utcnow
from dispatch.db.models import CHANNELS, Delivery, Issue, Reader, ReaderChannel
from dispatch.db.session import is_postgres, transaction
from dispatch.errors import Refused
from dispatch.lifecycle import mark_planned, not_found
from dispatch.statewords import ISSUE_WORDS
from dispatch.track.tokens import new_token

log = logging.getLogger(__name__)

CHUNK = 1000
ANALYZE_AFTER = 1000  # new rows
# Readers not stopped by staff (停用) and not unsubscribed.
ACTIVE = Reader.status == "active"
# The channels of a receiving reader that are planned: email only while not suspended.
PLANNED_CHANNEL = or_(ReaderChannel.channel != "email", Reader.email_suspended_at.is_(None))


def receiving(published: datetime) -> ColumnElement[bool]:
    """Readers an issue published at ``published`` goes to: active, and not paused past it."""
    return and_(ACTIVE, or_(Reader.paused_until.is_(None), Reader.paused_until <= published))


def published_at(publish_at: datetime | None, fanned_out_at: datetime | None,
                 now: datetime) -> datetime:
    """An issue's publication time: when it first went out (``now`` if it has not yet),
    or its scheduled time if that was earlier (a late tick, a scheduler that was down)."""
    went_out = fanned_out_at or now
    return min(publish_at, went_out) if publish_at is not None else went_out


def publication_time(session: Session, issue_id: int, now: datetime | None = None) -> datetime:
    """`published_at` of a stored issue (as if it went out ``now`` if it has not yet)."""
    row = session.execute(
        select(Issue.publish_at, Issue.fanned_out_at).where(Issue.id == issue_id)
    ).one_or_none()
    if row is None:
        raise not_found(issue_id)
    return published_at(row.publish_at, row.fanned_out_at, now or utcnow())


def fan_out(
    sessions: sessionmaker[Session],
    issue_id: int,
    *,
    now: datetime | None = None,
    chunk: int = CHUNK,
) -> dict[str, int]:
    """Plan the outbox of a claimed issue one chunk of readers per transaction, so the
    workers start on the first rows while the rest is planned; mark it planned at the
    end. Safe to run again after a crash, or twice at once: it adds only what is
    missing. Returns how many new rows per channel (every channel present, 0 when
    nothing new)."""
    now = now or utcnow()
    planned: Counter[str] = Counter({c: 0 for c in CHANNELS})
    after: int | None = 0
    while after is not None:
        first = after == 0
        with transaction(sessions) as session:
            counts, after = _plan_chunk(session, issue_id, now, after, chunk)
            if first and after is not None:
                _analyze(session)  # more to come, and workers may claim from now on
        planned.update(counts)
    with transaction(sessions) as session:
        mark_planned(session, issue_id)
        result = dict(planned)
        if sum(result.values()) >= ANALYZE_AFTER:
            _analyze(session)
    log.info("planned issue %s: %s new deliveries %s", issue_id, sum(result.values()), result)
    return result


def _plan_chunk(
    session: Session, issue_id: int, now: datetime, after: int, chunk: int
) -> tuple[Counter[str], int | None]:
    """Plan the readers after id `after`, up to `chunk` of them: the new rows per
    channel, and where the next chunk starts (None when this was the last)."""
    issue = session.execute(
        select(Issue.status, Issue.publish_at, Issue.fanned_out_at).where(Issue.id == issue_id)
    ).one_or_none()
    if issue is None:
        raise not_found(issue_id)
    status = issue.status
    if status != "sending":
        # Only a claimed issue is planned: claim_due or claim_for_send move it to sending.
        raise Refused(
            f"期刊 {issue_id} {ISSUE_WORDS[status]}，不在发送中：到发布时间自动排入发件箱，"
            f"或用 dispatch send {issue_id}"
        )
    insert = postgresql.insert if is_postgres(session) else sqlite.insert
    # One statement, compiled once and cached; each chunk runs as an executemany that
    # SQLAlchemy sends as multi-row INSERTs ("insertmanyvalues"), RETURNING included.
    # What all rows share is bound once here: per-row binds dominate the cost.
    # Delivery is declared with __tablename__, so its __table__ is a Table (typed as a
    # FromClause, since a class may also be mapped to a join or a subquery).
    table = cast(Table, Delivery.__table__)
    stmt = (
        insert(table)
        .values(issue_id=issue_id, state="queued", attempts=0, available_at=now, created_at=now)
        .on_conflict_do_nothing(index_elements=["issue_id", "reader_id", "channel"])
        .returning(table.c.channel)
    )
    counts: Counter[str] = Counter()
    published = published_at(issue.publish_at, issue.fanned_out_at, now)
    ids, targets = _targets(session, issue_id, published, after, chunk)
    if targets:
        rows = [
            {"reader_id": reader_id, "channel": channel, "token": new_token()}
            for reader_id, channel in targets
        ]
        counts.update(session.scalars(stmt, rows).all())
    return counts, (ids[-1] if len(ids) == chunk else None)


def _analyze(session: Session) -> None:
    """The outbox just grew by thousands of rows that autovacuum hasn't seen: without
    fresh statistics PostgreSQL plans each claim as a sort of the whole outbox (65 ms a
    claim at 100,000 rows, against 7 ms walking ix_deliveries_ready)."""
    if is_postgres(session):
        session.execute(text("ANALYZE deliveries"))


def _targets(
    session: Session, issue_id: int, published: datetime, after: int, chunk: int
) -> tuple[list[int], list[tuple[int, str]]]:
    """The next `chunk` receiving readers after id `after` (their ids), and the (reader
    id, channel) pairs among them to plan and not yet planned: two small indexed
    queries, no cursor held open across the inserts."""
    getting = receiving(published)
    ids = session.scalars(
        select(Reader.id)
        .where(getting, Reader.id > after)
        .order_by(Reader.id)
        .limit(chunk)
    ).all()
    if not ids:
        return [], []
    planned = exists().where(
        Delivery.issue_id == issue_id,
        Delivery.reader_id == ReaderChannel.reader_id,
        Delivery.channel == ReaderChannel.channel,
    )
    batch = session.execute(
        select(ReaderChannel.reader_id, ReaderChannel.channel)
        .join(Reader, Reader.id == ReaderChannel.reader_id)
        .where(
            ReaderChannel.reader_id.between(ids[0], ids[-1]),
            Reader.id.between(ids[0], ids[-1]),
            getting,
            PLANNED_CHANNEL,
            # Skip what is planned already (on the unique index): planning again
            # makes no tokens for nothing. ON CONFLICT still settles races.
            ~planned,
        )
        .order_by(ReaderChannel.reader_id, ReaderChannel.channel)
    ).all()
    return list(ids), [(r.reader_id, r.channel) for r in batch]


def _audience_where(published: datetime | None) -> ColumnElement[bool]:
    """Readers planning would reach: receiving, with a channel it would plan."""
    return and_(receiving(published or utcnow()),
                exists().where(ReaderChannel.reader_id == Reader.id, PLANNED_CHANNEL))


def audience(session: Session, published: datetime | None = None, *, offset: int = 0,
             limit: int | None = None) -> list[tuple[Reader, list[str]]]:
    """Whom planning an issue published at ``published`` (default: now) would reach, by
    id, each with the channels it would plan for them; readers with their industries
    loaded (the channels come from one query for the page, below). ``offset`` and
    ``limit`` page them (a page of the staff web's)."""
    getting = receiving(published or utcnow())
    query = (
        select(Reader)
        .where(_audience_where(published))
        .order_by(Reader.id)
        .options(selectinload(Reader.industry_rows))
        .offset(offset)
        .limit(limit)
    )
    readers = list(session.scalars(query))
    if not readers:
        return []
    # The page is a run of ids among those reached: the channels of the readers reached
    # within its first and last id are the page's (no list of ids bound, however long).
    channels: dict[int, list[str]] = {}
    for reader_id, channel in session.execute(
        select(ReaderChannel.reader_id, ReaderChannel.channel)
        .join(Reader, Reader.id == ReaderChannel.reader_id)
        .where(getting, PLANNED_CHANNEL,
               ReaderChannel.reader_id.between(readers[0].id, readers[-1].id))
        .order_by(ReaderChannel.reader_id, ReaderChannel.channel)
    ):
        channels.setdefault(reader_id, []).append(channel)
    return [(r, channels[r.id]) for r in readers if r.id in channels]


def audience_count(session: Session, published: datetime | None = None) -> int:
    """How many readers planning an issue published at ``published`` would reach."""
    return session.scalar(
        select(func.count(Reader.id)).where(_audience_where(published))) or 0


def audience_by_channel(session: Session, published: datetime | None = None) -> dict[str, int]:
    """How many deliveries planning a new issue published at ``published`` (default: now)
    would make, per channel."""
    rows = session.execute(
        select(ReaderChannel.channel, func.count())
        .join(Reader, Reader.id == ReaderChannel.reader_id)
        .where(receiving(published or utcnow()), PLANNED_CHANNEL)
        .group_by(ReaderChannel.channel)
    ).all()
    return {channel: n for channel, n in rows}


def planned_token(session: Session, issue_id: int, reader_id: int, channel: str) -> str | None:
    """The token of a reader's delivery of an issue by a channel; None if not planned."""
    return session.scalar(
        select(Delivery.token).where(
            Delivery.issue_id == issue_id,
            Delivery.reader_id == reader_id,
            Delivery.channel == channel,
        )
    )


def whole_issue_reader(session: Session) -> Reader | None:
    """The first reader following 全部, an active one if there is any: whom a test copy
    is rendered as when staff name no one."""
    return session.scalars(
        select(Reader)
        .where(Reader.follows_all.is_(True))
        .order_by(ACTIVE.desc(), Reader.id)
        .limit(1)
    ).first()
