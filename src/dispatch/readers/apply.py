"""Reader records → the database: match existing readers, diff, write all or nothing.

Identity: a record is the reader with its email, else the reader with its WeChat Work
user id (both compared case-insensitively), else a new reader. A reader who unsubscribed
stays unsubscribed whatever a list says; staff are told.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from dispatch.clock import utcnow
from dispatch.db.models import Reader, ReaderChange, ReaderChannel, ReaderIndustry
from dispatch.db.session import is_postgres, rowcount, transaction
from dispatch.errors import Refused
from dispatch.readers import (
    CHANNEL_ORDER,
    CHANNEL_WORDS,
    COLUMNS,
    Change,
    ImportReport,
    ListProblem,
    ReaderRecord,
    reader_states,
)

log = logging.getLogger(__name__)

ADDRESS_OF = {"email": "email", "wecom": "wecom_userid"}
# The tables, for Core statements (bulk reads and writes without ORM objects).
_READERS = cast(Table, Reader.__table__)
_INDUSTRIES = cast(Table, ReaderIndustry.__table__)
_CHANNELS = cast(Table, ReaderChannel.__table__)
_CHANGES = cast(Table, ReaderChange.__table__)


class ReaderState(NamedTuple):
    """Everything a list says about a reader, as compared and stored.

    A named tuple: an import compares 100,000 of them, and tuples are built and compared
    at C speed.
    """

    name: str
    organization: str
    position: str
    group: str
    email: str | None
    wecom_userid: str | None
    follows_all: bool
    industries: tuple[str, ...]
    channels: tuple[str, ...]
    status: str

    def changed_fields(self, other: ReaderState) -> tuple[str, ...]:
        if self == other:
            return ()
        return tuple(f for f, a, b in zip(self._fields, self, other, strict=True) if a != b)


def state_of(reader: Reader) -> ReaderState:
    return ReaderState(
        name=reader.name,
        organization=reader.organization or "",
        position=reader.position or "",
        group=reader.group or "",
        email=reader.email or None,
        wecom_userid=reader.wecom_userid or None,
        follows_all=bool(reader.follows_all),
        industries=() if reader.follows_all else sorted_codes(reader.industries),
        channels=channel_order(reader.channels),
        status=reader.status,
    )


def sorted_codes(codes: Iterable[str]) -> tuple[str, ...]:
    """Industry codes in the canonical order of the 6 + 3 + 3, each once."""
    return _canonical_codes(tuple(codes))


@functools.lru_cache(maxsize=8192)
def _canonical_codes(codes: tuple[str, ...]) -> tuple[str, ...]:
    # Cached: a list of 100,000 readers has a few hundred combinations, and the readers
    # that share one share its tuple.
    from dispatch.industries import TAG_CODES

    return tuple(c for c in TAG_CODES if c in codes)


@functools.lru_cache(maxsize=64)
def _channel_order(channels: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c for c in CHANNEL_ORDER if c in channels)


def channel_order(channels: Iterable[str]) -> tuple[str, ...]:
    """Channel codes in the lists' order, each once."""
    return _channel_order(tuple(channels))


def _by_addresses(email: str | None, wecom: str | None) -> tuple[str, ...]:
    if email:
        return ("email", "wecom") if wecom else ("email",)
    return ("wecom",) if wecom else ()


def merge(current: ReaderState | None, rec: ReaderRecord) -> ReaderState:
    """What the reader becomes: the record's given fields over the current state.

    Channels given empty (or a new reader's, not given): every channel the reader has an
    address for. Not given: the current ones that still have an address (if none does,
    every channel with an address). Status: an unsubscribed reader stays unsubscribed.
    """
    # Written out field by field: it runs once per row of a list of 100,000.
    cur = current
    name = rec.name if rec.name is not None else (cur.name if cur else "")
    organization = (rec.organization if rec.organization is not None
                    else (cur.organization if cur else ""))
    position = rec.position if rec.position is not None else (cur.position if cur else "")
    group = rec.group if rec.group is not None else (cur.group if cur else "")
    email = (rec.email if rec.email is not None else (cur.email if cur else None)) or None
    wecom = (rec.wecom_userid if rec.wecom_userid is not None
             else (cur.wecom_userid if cur else None)) or None
    follows_all = bool(rec.follows_all if rec.follows_all is not None
                       else (cur.follows_all if cur else False))
    if follows_all:
        industries: tuple[str, ...] = ()
    elif rec.industries is not None:
        industries = sorted_codes(rec.industries)
    else:
        industries = cur.industries if cur else ()
    available = _by_addresses(email, wecom)
    if rec.channels:
        channels = channel_order(rec.channels)
    elif rec.channels is None and cur is not None:
        channels = channel_order(c for c in cur.channels if c in available) or available
    else:
        channels = available
    if cur is None:
        status = rec.status or "active"
    elif cur.status == "unsubscribed" or rec.status is None:
        status = cur.status
    else:
        status = rec.status
    return ReaderState(name, organization, position, group, email, wecom, follows_all,
                       industries, channels, status)


def check_state(state: ReaderState, rec: ReaderRecord) -> list[ListProblem]:
    """Problems only visible once the record meets the stored reader."""
    errors = []
    if not state.email and not state.wecom_userid:
        errors.append(rec.error(COLUMNS["email"], "该读者将没有邮箱，也没有企业微信账号：无法发送"))
    for channel in state.channels:
        if not getattr(state, ADDRESS_OF[channel]):
            errors.append(rec.error(
                COLUMNS["channels"],
                f"接收方式包含“{CHANNEL_WORDS[channel][0]}”，但该读者没有{COLUMNS[ADDRESS_OF[channel]]}",
            ))
    if not state.follows_all and not state.industries:
        errors.append(rec.error(COLUMNS["industries"], "关注产业为空"))
    return errors


# --- the change log (reader_changes) -----------------------------------------------------


def logged_values(state: ReaderState) -> dict[str, str]:
    """The fields of a reader whose every change is kept, as the log writes their values:
    who they are and where they are reached, what they receive (industries, channels) and
    whether (status). Staff see where any of it came from."""
    return {
        "name": state.name,
        "organization": state.organization,
        "position": state.position,
        "group": state.group,
        "email": state.email or "",
        "wecom_userid": state.wecom_userid or "",
        "industries": "all" if state.follows_all else ",".join(state.industries),
        "channels": ",".join(state.channels),
        "status": state.status,
    }


def logged_changes(old: ReaderState, new: ReaderState) -> list[tuple[str, str, str]]:
    """(field, old value, new value) for each logged field that differs."""
    before, after = logged_values(old), logged_values(new)
    return [(f, before[f], after[f]) for f in before if before[f] != after[f]]


def log_change(session: Session, reader_id: int, field: str, old: str | None,
               new: str | None, *, source: str, by: int | None = None) -> None:
    """`by`: the staff member who made it in the staff web (None elsewhere)."""
    session.add(ReaderChange(reader_id=reader_id, source=source, field=field, old=old, new=new,
                             staff_id=by))


def write_state(reader: Reader, state: ReaderState) -> None:
    for name in ("name", "organization", "position", "group", "email", "wecom_userid",
                 "follows_all", "status"):
        if getattr(reader, name) != getattr(state, name):
            setattr(reader, name, getattr(state, name))
    # Change the rows that differ only: a row deleted and re-added in one flush is a trap.
    wanted = set(state.industries)
    for industry in [r for r in reader.industry_rows if r.industry not in wanted]:
        reader.industry_rows.remove(industry)
    have = set(reader.industries)
    reader.industry_rows.extend(ReaderIndustry(industry=c) for c in state.industries if c not in have)
    wanted = set(state.channels)
    for channel in [r for r in reader.channel_rows if r.channel not in wanted]:
        reader.channel_rows.remove(channel)
    have = set(reader.channels)
    reader.channel_rows.extend(ReaderChannel(channel=c) for c in state.channels if c not in have)


def new_reader(state: ReaderState) -> Reader:
    reader = Reader(industry_rows=[], channel_rows=[])
    write_state(reader, state)
    return reader


# --- the stored readers ------------------------------------------------------------------


def load_readers(session: Session) -> list[Reader]:
    stmt = (
        select(Reader)
        .options(selectinload(Reader.industry_rows), selectinload(Reader.channel_rows))
        .order_by(Reader.id)
    )
    return list(session.scalars(stmt))


@dataclass(frozen=True, slots=True)
class Listed:
    """A stored reader as the commands show it, read without ORM objects."""

    id: int
    state: ReaderState
    created_at: datetime
    updated_at: datetime
    # Not in the lists: set by the reader (pause) and the bounce rule (suspension).
    paused_until: datetime | None = None
    email_suspended_at: datetime | None = None
    email_bounces: int = 0

    def states(self, now: datetime) -> tuple[str, ...]:
        """The states the reader is in at ``now`` (dispatch.readers.STATE_WORDS)."""
        return reader_states(self.state.status, is_paused(self.paused_until, now),
                             self.email_suspended_at is not None)


def is_paused(paused_until: datetime | None, now: datetime) -> bool:
    """Whether a reader who paused until ``paused_until`` is still paused at ``now``."""
    return paused_until is not None and paused_until > now


def _joined_codes(session: Session, table: Table, column: str,
                  ids: Sequence[int] | None = None) -> Any:
    """reader_id → its rows' values joined with commas, as a subquery (one row per reader
    instead of one per industry: a third of the rows to fetch); of the readers ``ids``
    only, if given (a page of a long list: the databases would join every reader's)."""
    values = table.c[column]
    joined = (func.string_agg(values, ",") if is_postgres(session)
              else func.group_concat(values, ","))
    stmt = select(table.c.reader_id, joined.label("codes"))
    if ids is not None:
        stmt = stmt.where(table.c.reader_id.in_(ids))
    return stmt.group_by(table.c.reader_id).subquery()


def _select_readers(session: Session, *extra: Any, ids: Sequence[int] | None = None) -> Any:
    """One query for the readers (those with ``ids``, if given) with their industries and
    channels."""
    readers = _READERS
    industries = _joined_codes(session, _INDUSTRIES, "industry", ids)
    channels = _joined_codes(session, _CHANNELS, "channel", ids)
    return (
        select(readers.c.id, readers.c.name, readers.c.organization, readers.c.position,
               readers.c.group_name, readers.c.email, readers.c.wecom_userid,
               readers.c.follows_all, readers.c.status, industries.c.codes, channels.c.codes,
               *extra)
        .outerjoin(industries, industries.c.reader_id == readers.c.id)
        .outerjoin(channels, channels.c.reader_id == readers.c.id)
    )


class _StateReader:
    """Turns the rows of ``_select_readers`` into states. Texts many readers share (an
    organisation, a group, a status) are kept once, not once per reader."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}

    def __call__(self, row: Sequence[Any]) -> ReaderState:
        share = self._texts.setdefault
        organization, position, group, status = row[2] or "", row[3] or "", row[4] or "", row[8]
        follows_all = bool(row[7])
        return ReaderState(
            row[1], share(organization, organization), share(position, position),
            share(group, group), row[5] or None, row[6] or None, follows_all,
            () if follows_all or not row[9] else _joined_industries(row[9]),
            _joined_channels(row[10]) if row[10] else (), share(status, status),
        )


@functools.lru_cache(maxsize=8192)
def _joined_industries(joined: str) -> tuple[str, ...]:
    return _canonical_codes(tuple(joined.split(",")))


@functools.lru_cache(maxsize=64)
def _joined_channels(joined: str) -> tuple[str, ...]:
    return _channel_order(tuple(joined.split(",")))


def list_readers(session: Session, where: Any = None, *,
                 ids: Sequence[int] | None = None) -> list[Listed]:
    """The readers (those matching ``where``, of ``ids`` if given), by id, in one query
    whatever their number."""
    readers = _READERS
    stmt = _select_readers(
        session, readers.c.created_at, readers.c.updated_at, readers.c.paused_until,
        readers.c.email_suspended_at, readers.c.email_bounces, ids=ids,
    ).order_by(readers.c.id)
    if where is not None:
        stmt = stmt.where(where)
    if ids is not None:
        stmt = stmt.where(readers.c.id.in_(ids))
    state = _StateReader()
    return [Listed(row[0], state(row), *row[11:16]) for row in session.execute(stmt)]


@dataclass
class _Stored:
    """The stored readers an import compares against: plain states, not ORM objects."""

    states: dict[int, ReaderState]
    by_email: dict[str, int]
    by_wecom: dict[str, int]
    # Industry rows of readers who follow all (the state says () for them): normally none.
    extra_industries: dict[int, tuple[str, ...]]

    @classmethod
    def load(cls, session: Session) -> _Stored:
        stored = cls({}, {}, {}, {})
        state = _StateReader()
        for row in session.execute(_select_readers(session)):
            reader_id, email, wecom = row[0], row[5], row[6]
            stored.states[reader_id] = state(row)
            if email:
                stored.by_email[email.casefold()] = reader_id
            if wecom:
                stored.by_wecom[wecom.casefold()] = reader_id
            if row[7] and row[9]:
                stored.extra_industries[reader_id] = tuple(row[9].split(","))
        return stored

    def industry_rows(self, reader_id: int) -> tuple[str, ...]:
        return self.extra_industries.get(reader_id) or self.states[reader_id].industries

    def who(self, reader_id: int) -> str:
        return f"已有读者“{self.states[reader_id].name}”（编号 {reader_id}）"


def _who(reader: Reader) -> str:
    return f"已有读者“{reader.name}”（编号 {reader.id}）"


# --- imports -----------------------------------------------------------------------------

# Rows per INSERT/UPDATE batch: bounds the parameters held at once, well under the
# databases' limits on one statement.
_CHUNK = 2_000


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


_SCALAR_KEYS = ("name", "organization", "position", "group_name", "email", "wecom_userid",
                "follows_all", "status")


def _scalar_values(state: ReaderState) -> dict[str, Any]:
    return dict(zip(_SCALAR_KEYS, (*state[:6], state.follows_all, state.status), strict=True))


def import_records(session: Session, records: Iterable[ReaderRecord], *, dry_run: bool = False,
                   report: ImportReport | None = None, by: int | None = None) -> ImportReport:
    """Match, diff and (unless dry_run, and only if nothing is wrong) write.

    The caller owns the transaction; on errors nothing is written. The stored readers are
    read in three queries and written in batches (executemany), never row by row. ``by``:
    the staff member importing in the staff web, kept with each logged change.
    """
    report = report or ImportReport(dry_run=dry_run)
    stored = _Stored.load(session)
    matched: dict[int, ReaderRecord] = {}
    added: list[ReaderState] = []
    updated: list[tuple[int, ReaderState]] = []
    for rec in records:
        by_email = stored.by_email.get(rec.email.casefold()) if rec.email else None
        by_wecom = stored.by_wecom.get(rec.wecom_userid.casefold()) if rec.wecom_userid else None
        if by_email is not None and by_wecom is not None and by_email != by_wecom:
            report.errors.append(rec.error(
                COLUMNS["wecom_userid"],
                f"邮箱“{rec.email}”属于{stored.who(by_email)}，企业微信账号“{rec.wecom_userid}”"
                f"却属于另一位{stored.who(by_wecom)}；请核对是哪一位",
            ))
            continue
        reader_id = by_email if by_email is not None else by_wecom
        current = None
        if reader_id is not None:
            first = matched.get(reader_id)
            if first is not None:
                where = f"第 {first.row} 行" if first.file == rec.file else f"{first.file} 第 {first.row} 行"
                report.errors.append(rec.error(
                    None, f"此行与{where}对应同一位{stored.who(reader_id)}（一行按邮箱、一行按企业微信账号）"
                ))
                continue
            matched[reader_id] = rec
            current = stored.states[reader_id]
        state = merge(current, rec)
        errors = check_state(state, rec)
        if errors:
            report.errors.extend(errors)
            continue
        if report.errors:
            continue  # nothing will be written: only look for more errors
        if current is None:
            report.added += 1
            report.changes.append(Change(rec.file, rec.row, "added", None))
            added.append(state)
            continue
        assert reader_id is not None
        if current.status == "unsubscribed" and rec.status != "unsubscribed":
            report.kept_unsubscribed.append(
                {"file": rec.file, "row": rec.row, "id": reader_id, "name": state.name}
            )
        changed = state.changed_fields(current)
        if not changed:
            report.unchanged += 1
            continue
        report.updated += 1
        report.changes.append(Change(rec.file, rec.row, "updated", reader_id, changed))
        log.debug("reader %s: %s changed", reader_id, ", ".join(changed))
        updated.append((reader_id, state))
    if report.errors:
        report.added = report.updated = report.unchanged = 0
        report.changes = []
        report.kept_unsubscribed = []
        return report
    if not dry_run:
        try:
            _insert(session, added)
            _update(session, stored, updated, by)
        except IntegrityError as exc:
            raise Refused(
                "导入期间读者名单被改动了（可能同时有另一次导入或修改）；"
                "未写入任何内容，请重新导入"
            ) from exc
    return report


def _insert(session: Session, states: Sequence[ReaderState]) -> None:
    """Add readers, with their industry and channel rows, in bulk."""
    if not states:
        return
    now = utcnow()
    readers = _READERS
    before = session.scalar(select(func.max(readers.c.id))) or 0
    _bulk_insert(session, readers, ("name", "organization", "position", "group_name", "email",
                                    "wecom_userid", "follows_all", "status", "created_at",
                                    "updated_at"),
                 [(*s[:4], s.email, s.wecom_userid, s.follows_all, s.status, now, now)
                  for s in states])
    # Each new row's id, by its reader's address (every new reader has one, and each is
    # unique): ids only grow, so the new rows are past the largest id before. (RETURNING
    # in parameter order would go row by row on SQLite, and COPY returns nothing.)
    by_email: dict[str, int] = {}
    by_wecom: dict[str, int] = {}
    for reader_id, email, wecom in session.execute(
        select(readers.c.id, readers.c.email, readers.c.wecom_userid).where(readers.c.id > before)
    ):
        if email:
            by_email[email] = reader_id
        if wecom:
            by_wecom[wecom] = reader_id
    ids = [by_email[s.email] if s.email else by_wecom[s.wecom_userid or ""] for s in states]
    _insert_codes(session, [(i, c) for i, s in zip(ids, states, strict=True) for c in s.industries],
                  [(i, c) for i, s in zip(ids, states, strict=True) for c in s.channels])


def _insert_codes(session: Session, industries: list[tuple[int, str]],
                  channels: list[tuple[int, str]]) -> None:
    _bulk_insert(session, _INDUSTRIES, ("reader_id", "industry"), industries)
    _bulk_insert(session, _CHANNELS, ("reader_id", "channel"), channels)


def _bulk_insert(session: Session, table: Table, columns: tuple[str, ...],
                 rows: Sequence[tuple[Any, ...]]) -> None:
    """INSERT many rows: COPY on PostgreSQL (psycopg's executemany goes row by row, and a
    multi-row INSERT is parsed in Python by psycopg: both take seconds for 100,000 rows),
    executemany in batches on SQLite (the driver's loop runs in C)."""
    if not rows:
        return
    if is_postgres(session):
        connection = session.connection().connection.driver_connection
        assert connection is not None
        names = ", ".join(f'"{c}"' for c in columns)
        sql = f'COPY "{table.name}" ({names}) FROM STDIN'
        try:
            with connection.cursor() as cursor, cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
        except session.get_bind().dialect.loaded_dbapi.IntegrityError as exc:
            # The driver's own error (COPY bypasses SQLAlchemy), as SQLAlchemy raises it on
            # SQLite: a reader added meanwhile is import_records' refusal on both databases.
            raise IntegrityError(sql, None, exc) from exc
        return
    connection = session.connection()
    dialect = connection.dialect
    # The driver's executemany with the rows as they are: SQLAlchemy's own executemany
    # spends longer on each row's parameters than SQLite spends storing the row. Values
    # are still converted as SQLAlchemy would (times to its text format).
    convert = [(i, p) for i, c in enumerate(columns)
               if (p := table.c[c].type.dialect_impl(dialect).bind_processor(dialect))]
    quote = dialect.identifier_preparer.quote
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
           f"VALUES ({', '.join('?' * len(columns))})")
    for chunk in _chunks(rows, 10 * _CHUNK):
        if convert:
            chunk = [_converted(row, convert) for row in chunk]
        connection.exec_driver_sql(sql, list(chunk))


def _converted(row: tuple[Any, ...], convert: Sequence[tuple[int, Callable[[Any], Any]]]) -> tuple[Any, ...]:
    values = list(row)
    for i, process in convert:
        values[i] = process(values[i])
    return tuple(values)


def _update(session: Session, stored: _Stored, updates: Sequence[tuple[int, ReaderState]],
            by: int | None = None) -> None:
    now = utcnow()
    readers = _READERS
    set_row = update(readers).where(readers.c.id == bindparam("reader_id")).values(
        {k: bindparam(k) for k in (*_SCALAR_KEYS, "updated_at")}
    )
    for chunk in _chunks(updates):
        session.execute(set_row, [{"reader_id": i, **_scalar_values(s), "updated_at": now}
                                  for i, s in chunk])
    # Only the industry and channel rows that differ: deleted, then added.
    gone: dict[str, list[dict[str, Any]]] = {"industry": [], "channel": []}
    new_industries: list[tuple[int, str]] = []
    new_channels: list[tuple[int, str]] = []
    for reader_id, state in updates:
        current = stored.states[reader_id]
        have = set(stored.industry_rows(reader_id))
        gone["industry"] += [{"rid": reader_id, "code": c} for c in have - set(state.industries)]
        new_industries += [(reader_id, c) for c in state.industries if c not in have]
        have = set(current.channels)
        gone["channel"] += [{"rid": reader_id, "code": c} for c in have - set(state.channels)]
        new_channels += [(reader_id, c) for c in state.channels if c not in have]
    for table, key in ((_INDUSTRIES, "industry"), (_CHANNELS, "channel")):
        stmt = delete(table).where(table.c.reader_id == bindparam("rid"),
                                   table.c[key] == bindparam("code"))
        for chunk in _chunks(gone[key], 10 * _CHUNK):
            session.execute(stmt, list(chunk))
    _insert_codes(session, new_industries, new_channels)
    _bulk_insert(session, _CHANGES, ("reader_id", "at", "source", "field", "old", "new",
                                     "staff_id"), [
        (reader_id, now, "import", f, old, new, by)
        for reader_id, state in updates
        for f, old, new in logged_changes(stored.states[reader_id], state)
    ])


def read_lists(paths: Sequence[Path], *, names: Sequence[str] | None = None,
               dry_run: bool = False) -> tuple[ImportReport, list[ReaderRecord]]:
    """Read and check lists, without the database: the report (its errors) and the
    records. ``names``: each file as errors name it (default: its path)."""
    # Here, not at the top: listing or showing readers needs neither (start-up time).
    from dispatch.readers.table import TableError, read_table
    from dispatch.readers.validate import validate_tables

    shown = list(names) if names is not None else [str(p) for p in paths]
    report = ImportReport(dry_run=dry_run, files=shown)
    tables = []
    for path, name in zip(paths, shown, strict=True):
        try:
            tables.append(read_table(path, display=name))
        except TableError as exc:
            report.errors.append(exc.error)
    checked = validate_tables(tables)
    del tables  # the records hold what is needed; the raw cells can go
    report.rows = checked.rows
    report.ignored_columns = checked.ignored_columns
    report.errors.extend(checked.errors)
    return report, checked.records


def sort_errors(report: ImportReport) -> None:
    """Errors by file (in the order given), then row."""
    order = {name: i for i, name in enumerate(report.files)}
    report.errors.sort(key=lambda e: (order.get(e.file, len(order)), e.row or 0))


def import_lists(factory: sessionmaker[Session], paths: Sequence[Path], *,
                 dry_run: bool = False, names: Sequence[str] | None = None,
                 by: int | None = None) -> ImportReport:
    """Read, check and apply lists: every error is reported; anything wrong, nothing written."""
    report, _ = apply_lists(factory, paths, dry_run=dry_run, names=names, by=by)
    log_outcome(report, by)
    return report


def apply_lists(factory: sessionmaker[Session], paths: Sequence[Path], *,
                dry_run: bool = False, names: Sequence[str] | None = None,
                by: int | None = None) -> tuple[ImportReport, list[ReaderRecord]]:
    """import_lists' work, unlogged: the report (errors sorted) and the records read (the
    staff web keeps them between its check and the confirm)."""
    report, records = read_lists(paths, names=names, dry_run=dry_run)
    if not report.errors:
        with transaction(factory) as session:
            import_records(session, records, dry_run=dry_run, report=report, by=by)
            if report.errors or dry_run:
                session.rollback()
    sort_errors(report)
    return report, records


def log_outcome(report: ImportReport, by: int | None = None) -> None:
    """An import's outcome in the log: counts only, never a reader's name or address."""
    who = f" by staff {by}" if by is not None else ""
    if report.errors:
        log.info("reader import refused%s: %d errors, nothing written", who, len(report.errors))
    elif not report.dry_run:
        log.info("reader import%s: %d added, %d updated, %d unchanged",
                 who, report.added, report.updated, report.unchanged)


# --- one reader (the CLI's add / set) ----------------------------------------------------


def _conflicts(session: Session, state: ReaderState, rec: ReaderRecord,
               reader: Reader | None) -> list[ListProblem]:
    """The state's addresses that belong to another reader (compared case-insensitively)."""
    errors = []
    for f, column in (("email", Reader.email), ("wecom_userid", Reader.wecom_userid)):
        value = getattr(state, f)
        if not value:
            continue
        stmt = select(Reader).where(func.lower(column) == value.lower())
        if reader is not None:
            stmt = stmt.where(Reader.id != reader.id)
        other = session.scalars(stmt.limit(1)).first()
        if other is not None:
            errors.append(rec.error(COLUMNS[f], f"{COLUMNS[f]}“{value}”已属于{_who(other)}"))
    return errors


def add_reader(session: Session, rec: ReaderRecord, *, by: int | None = None) -> Reader:
    """A new reader from a checked record; raises RecordRefused. The log keeps that staff
    added them (``by``: who, in the staff web); an import's new readers are not logged
    one by one."""
    state = merge(None, rec)
    errors = _conflicts(session, state, rec, None) + check_state(state, rec)
    if errors:
        raise RecordRefused(errors)
    reader = new_reader(state)
    session.add(reader)
    _flush_or_refuse(session, rec)
    log_change(session, reader.id, "created", None, None, source="staff", by=by)
    log.info("reader %s added", reader.id)
    return reader


def update_reader(session: Session, reader: Reader, rec: ReaderRecord, *,
                  source: str = "staff", by: int | None = None) -> tuple[str, ...]:
    """Apply the given fields of a record to a reader; the fields that changed. Changes
    to what the reader receives are logged (logged_changes) with ``source`` and ``by``."""
    current = state_of(reader)
    state = merge(current, rec)
    errors = _conflicts(session, state, rec, reader) + check_state(state, rec)
    if errors:
        raise RecordRefused(errors)
    changed = state.changed_fields(current)
    if changed:
        for f, old, new in logged_changes(current, state):
            log_change(session, reader.id, f, old, new, source=source, by=by)
        write_state(reader, state)
        _flush_or_refuse(session, rec)
        log.info("reader %s updated (%s, %s)", reader.id, ", ".join(changed), source)
    return changed


def _flush_or_refuse(session: Session, rec: ReaderRecord) -> None:
    """Write a reader; an address taken meanwhile (another transaction added it after our
    check, which PostgreSQL makes us wait for) is refused like one taken before."""
    try:
        session.flush()
    except IntegrityError as exc:
        raise RecordRefused([rec.error(
            COLUMNS["email"] if rec.email else COLUMNS["wecom_userid"],
            "刚被另一位读者占用（可能有人同时在添加或修改读者）；没有保存，请核对后再试")]) from exc


def _quoted(text: str) -> str:
    """``text`` as one shell word, for a command to copy."""
    import shlex

    return shlex.quote(text)


class RecordRefused(Refused):
    """A reader given on the command line was refused; the errors say why."""

    def __init__(self, errors: list[ListProblem]):
        self.errors = errors
        super().__init__("；".join(
            f"{e.column}：{e.message}" if e.column else e.message for e in errors
        ))


def set_status(session: Session, reader: Reader, status: str, *, source: str = "staff",
               by: int | None = None) -> bool:
    """Change a reader's status, kept in the change log with its source; True if it changed.

    The change is one conditional UPDATE: of two processes making the same change at once
    (two one-click unsubscribes, a page and an unsubscribe mail) only the first changes
    the row and logs it; the second finds it done."""
    old = reader.status
    if old == status:
        return False
    changed = rowcount(session.execute(
        update(Reader)
        .where(Reader.id == reader.id, Reader.status != status)
        .values(status=status, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ))
    set_committed_value(reader, "status", status)
    if not changed:
        return False
    log_change(session, reader.id, "status", old, status, source=source, by=by)
    session.flush()
    log.info("reader %s status %s (%s)", reader.id, status, source)
    return True


# Prefixes that say what a KEY is, when it could be more than one.
_KEY_KINDS = {"email": "email", "邮箱": "email", "wecom": "wecom", "企业微信": "wecom",
              "id": "id", "编号": "id"}


def find_reader(session: Session, key: str) -> Reader:
    """The reader a KEY names: an email, a WeChat Work user id, or the numeric id.

    A prefix (``邮箱:``, ``企业微信:``, ``编号:`` or ``email:``, ``wecom:``, ``id:``)
    settles a key that could be more than one.
    """
    key = key.strip()
    kind, sep, value = key.replace("：", ":").partition(":")
    kinds: tuple[str, ...] = ("email", "wecom", "id")
    if sep and kind.strip().lower() in _KEY_KINDS:
        kinds, key = (_KEY_KINDS[kind.strip().lower()],), value.strip()
    if not key:
        raise Refused("没有给出读者：请写邮箱、企业微信账号或编号")
    options = (selectinload(Reader.industry_rows), selectinload(Reader.channel_rows))
    found: dict[int, Reader] = {}
    folded = key.lower()
    if "email" in kinds:
        for r in session.scalars(select(Reader).options(*options)
                                 .where(func.lower(Reader.email) == folded)):
            found[r.id] = r
    if "wecom" in kinds:
        for r in session.scalars(select(Reader).options(*options)
                                 .where(func.lower(Reader.wecom_userid) == folded)):
            found[r.id] = r
    if "id" in kinds and key.isdigit() and int(key) < 2**31:
        by_id = session.get(Reader, int(key), options=options)
        if by_id is not None:
            found[by_id.id] = by_id
    if not found:
        raise Refused(
            f"没有邮箱、企业微信账号或编号为“{key}”的读者；"
            f"按姓名或单位查找请用 dispatch recipients find {_quoted(key)}"
        )
    if len(found) > 1:
        ids = "、".join(str(i) for i in sorted(found))
        raise Refused(
            f"“{key}”对应多位读者（编号 {ids}）；请写明是哪一种："
            f"编号:{key}、邮箱:{key} 或 企业微信:{key}"
        )
    return next(iter(found.values()))
