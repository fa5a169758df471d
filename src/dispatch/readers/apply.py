"""Reader records → the database: match existing readers, diff, write all or nothing.

Identity: a record is the reader with its email, else the reader with its WeChat Work
user id (both compared case-insensitively), else a new reader. A reader who unsubscribed
stays unsubscribed whatever a list says; staff are told.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from dispatch.db.models import Reader, ReaderChannel, ReaderIndustry
from dispatch.db.session import transaction
from dispatch.errors import Refused
from dispatch.readers import (
    CHANNEL_ORDER,
    CHANNEL_WORDS,
    COLUMNS,
    ImportReport,
    ListProblem,
    ReaderRecord,
)
from dispatch.readers.table import TableError, read_table
from dispatch.readers.validate import validate_tables

log = logging.getLogger(__name__)

ADDRESS_OF = {"email": "email", "wecom": "wecom_userid"}


@dataclass(frozen=True)
class ReaderState:
    """Everything a list says about a reader, as compared and stored."""

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

    def changed_fields(self, other: ReaderState) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


def state_of(reader: Reader) -> ReaderState:
    return ReaderState(
        name=reader.name,
        organization=reader.organization or "",
        position=reader.position or "",
        group=reader.group or "",
        email=reader.email or None,
        wecom_userid=reader.wecom_userid or None,
        follows_all=bool(reader.follows_all),
        industries=() if reader.follows_all else tuple(sorted_codes(reader.industries)),
        channels=tuple(c for c in CHANNEL_ORDER if c in reader.channels),
        status=reader.status,
    )


def sorted_codes(codes: Iterable[str]) -> list[str]:
    from dispatch.industries import TAG_CODES

    wanted = set(codes)
    return [c for c in TAG_CODES if c in wanted]


def _by_addresses(email: str | None, wecom: str | None) -> tuple[str, ...]:
    return tuple(c for c in CHANNEL_ORDER if (email if c == "email" else wecom))


def merge(current: ReaderState | None, rec: ReaderRecord) -> ReaderState:
    """What the reader becomes: the record's given fields over the current state.

    Channels given empty (or a new reader's, not given): every channel the reader has an
    address for. Not given: the current ones that still have an address (if none does,
    every channel with an address). Status: an unsubscribed reader stays unsubscribed.
    """

    def pick(name: str, default: Any) -> Any:
        value = getattr(rec, name)
        if value is not None:
            return value
        return getattr(current, name) if current is not None else default

    email = pick("email", None) or None
    wecom = pick("wecom_userid", None) or None
    follows_all = bool(pick("follows_all", False))
    industries = () if follows_all else tuple(sorted_codes(pick("industries", ())))
    available = _by_addresses(email, wecom)
    if rec.channels:
        channels = rec.channels
    elif rec.channels is None and current is not None:
        channels = tuple(c for c in current.channels if c in available) or available
    else:
        channels = available
    if current is None:
        status = rec.status or "active"
    elif current.status == "unsubscribed" or rec.status is None:
        status = current.status
    else:
        status = rec.status
    return ReaderState(
        name=pick("name", ""),
        organization=pick("organization", ""),
        position=pick("position", ""),
        group=pick("group", ""),
        email=email,
        wecom_userid=wecom,
        follows_all=follows_all,
        industries=industries,
        channels=tuple(c for c in CHANNEL_ORDER if c in channels),
        status=status,
    )


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


def write_state(reader: Reader, state: ReaderState) -> None:
    for name in ("name", "organization", "position", "group", "email", "wecom_userid",
                 "follows_all", "status"):
        if getattr(reader, name) != getattr(state, name):
            setattr(reader, name, getattr(state, name))
    # Change the rows that differ only: a row deleted and re-added in one flush is a trap.
    wanted = set(state.industries)
    for row in [r for r in reader.industry_rows if r.industry not in wanted]:
        reader.industry_rows.remove(row)
    have = set(reader.industries)
    reader.industry_rows.extend(ReaderIndustry(industry=c) for c in state.industries if c not in have)
    wanted = set(state.channels)
    for channel_row in [r for r in reader.channel_rows if r.channel not in wanted]:
        reader.channel_rows.remove(channel_row)
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


@dataclass
class _Index:
    by_email: dict[str, Reader]
    by_wecom: dict[str, Reader]

    @classmethod
    def of(cls, readers: Iterable[Reader]) -> _Index:
        index = cls({}, {})
        for r in readers:
            if r.email:
                index.by_email[r.email.casefold()] = r
            if r.wecom_userid:
                index.by_wecom[r.wecom_userid.casefold()] = r
        return index


def _who(reader: Reader) -> str:
    return f"已有读者“{reader.name}”（id {reader.id}）"


# --- imports -----------------------------------------------------------------------------


def import_records(session: Session, records: Sequence[ReaderRecord], *, dry_run: bool = False,
                   report: ImportReport | None = None) -> ImportReport:
    """Match, diff and (unless dry_run, and only if nothing is wrong) write.

    The caller owns the transaction; on errors nothing is added to the session.
    """
    report = report or ImportReport(dry_run=dry_run)
    index = _Index.of(load_readers(session))
    matched: dict[int, ReaderRecord] = {}
    plan: list[tuple[ReaderRecord, Reader | None, ReaderState]] = []
    for rec in records:
        by_email = index.by_email.get(rec.email.casefold()) if rec.email else None
        by_wecom = index.by_wecom.get(rec.wecom_userid.casefold()) if rec.wecom_userid else None
        if by_email is not None and by_wecom is not None and by_email is not by_wecom:
            report.errors.append(rec.error(
                COLUMNS["wecom_userid"],
                f"邮箱“{rec.email}”属于{_who(by_email)}，企业微信账号“{rec.wecom_userid}”"
                f"却属于另一位{_who(by_wecom)}；请核对是哪一位",
            ))
            continue
        reader = by_email or by_wecom
        if reader is not None:
            first = matched.get(reader.id)
            if first is not None:
                where = f"第 {first.row} 行" if first.file == rec.file else f"{first.file} 第 {first.row} 行"
                report.errors.append(rec.error(
                    None, f"此行与{where}对应同一位{_who(reader)}（一行按邮箱、一行按企业微信账号）"
                ))
                continue
            matched[reader.id] = rec
        current = state_of(reader) if reader is not None else None
        state = merge(current, rec)
        errors = check_state(state, rec)
        if errors:
            report.errors.extend(errors)
            continue
        if reader is not None and reader.status == "unsubscribed" and rec.status != "unsubscribed":
            report.kept_unsubscribed.append(
                {"file": rec.file, "row": rec.row, "id": reader.id, "name": state.name}
            )
        plan.append((rec, reader, state))
    if report.errors:
        return report

    changes: list[dict[str, Any]] = []
    for rec, reader, state in plan:
        if reader is None:
            report.added += 1
            changes.append({"file": rec.file, "row": rec.row, "action": "added", "id": None,
                            "fields": []})
            if not dry_run:
                session.add(new_reader(state))
            continue
        changed = state.changed_fields(state_of(reader))
        if not changed:
            report.unchanged += 1
            continue
        report.updated += 1
        changes.append({"file": rec.file, "row": rec.row, "action": "updated", "id": reader.id,
                        "fields": changed})
        log.debug("reader %s: %s changed", reader.id, ", ".join(changed))
        if not dry_run:
            write_state(reader, state)
    report.changes = changes
    if not dry_run:
        try:
            session.flush()
        except IntegrityError as exc:
            raise Refused(
                "the reader list changed while importing (another import or edit at the "
                "same time?); nothing was written, please run the import again"
            ) from exc
    return report


def import_lists(factory: sessionmaker[Session], paths: Sequence[Path], *,
                 dry_run: bool = False) -> ImportReport:
    """Read, check and apply lists: every error is reported; anything wrong, nothing written."""
    report = ImportReport(dry_run=dry_run, files=[str(p) for p in paths])
    tables = []
    for path in paths:
        try:
            tables.append(read_table(path, display=str(path)))
        except TableError as exc:
            report.errors.append(exc.error)
    checked = validate_tables(tables)
    report.rows = checked.rows
    report.ignored_columns = checked.ignored_columns
    report.errors.extend(checked.errors)
    if not report.errors:
        with transaction(factory) as session:
            import_records(session, checked.records, dry_run=dry_run, report=report)
            if report.errors or dry_run:
                session.rollback()
    order = {str(p): i for i, p in enumerate(paths)}
    report.errors.sort(key=lambda e: (order.get(e.file, len(order)), e.row or 0))
    if report.errors:
        log.info("reader import refused: %d errors, nothing written", len(report.errors))
    elif not dry_run:
        log.info("reader import: %d added, %d updated, %d unchanged",
                 report.added, report.updated, report.unchanged)
    return report


# --- one reader (the CLI's add / set) ----------------------------------------------------


def _conflicts(index: _Index, state: ReaderState, rec: ReaderRecord,
               reader: Reader | None) -> list[ListProblem]:
    errors = []
    for f, table in (("email", index.by_email), ("wecom_userid", index.by_wecom)):
        value = getattr(state, f)
        other = table.get(value.casefold()) if value else None
        if other is not None and other is not reader:
            errors.append(rec.error(COLUMNS[f], f"{COLUMNS[f]}“{value}”已属于{_who(other)}"))
    return errors


def add_reader(session: Session, rec: ReaderRecord) -> Reader:
    """A new reader from a checked record; raises RecordRefused."""
    index = _Index.of(load_readers(session))
    state = merge(None, rec)
    errors = _conflicts(index, state, rec, None) + check_state(state, rec)
    if errors:
        raise RecordRefused(errors)
    reader = new_reader(state)
    session.add(reader)
    session.flush()
    log.info("reader %s added", reader.id)
    return reader


def update_reader(session: Session, reader: Reader, rec: ReaderRecord) -> list[str]:
    """Apply the given fields of a record to a reader; the fields that changed."""
    index = _Index.of(load_readers(session))
    current = state_of(reader)
    state = merge(current, rec)
    errors = _conflicts(index, state, rec, reader) + check_state(state, rec)
    if errors:
        raise RecordRefused(errors)
    changed = state.changed_fields(current)
    if changed:
        write_state(reader, state)
        session.flush()
        log.info("reader %s updated (%s)", reader.id, ", ".join(changed))
    return changed


class RecordRefused(Refused):
    """A reader given on the command line was refused; the errors say why."""

    def __init__(self, errors: list[ListProblem]):
        self.errors = errors
        super().__init__("；".join(
            f"{e.column}: {e.message}" if e.column else e.message for e in errors
        ))


def set_status(session: Session, reader: Reader, status: str) -> bool:
    """Change a reader's status; True if it changed."""
    if reader.status == status:
        return False
    reader.status = status
    session.flush()
    log.info("reader %s status %s", reader.id, status)
    return True


def find_reader(session: Session, key: str) -> Reader:
    """The reader a KEY names: an email, a WeChat Work user id, or the numeric id.

    A prefix (``email:``, ``wecom:``, ``id:``) settles a key that could be more than one.
    """
    key = key.strip()
    kind, sep, value = key.partition(":")
    kinds: tuple[str, ...]
    if sep and kind in ("email", "wecom", "id"):
        kinds, key = (kind,), value.strip()
    else:
        kinds = ("email", "wecom", "id")
    if not key:
        raise Refused("empty reader key")
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
        raise Refused(f"no reader with email, WeChat Work user id or id '{key}'")
    if len(found) > 1:
        ids = ", ".join(str(i) for i in sorted(found))
        raise Refused(
            f"'{key}' names more than one reader (ids {ids}); "
            f"say which with id:N, email:ADDRESS or wecom:USERID"
        )
    return next(iter(found.values()))
