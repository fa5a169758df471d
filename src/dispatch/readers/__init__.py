"""The reader lists: what staff keep in Excel, checked, and written to the database.

- ``table``    reads a CSV or XLSX file into raw rows (decoding only);
- ``validate`` turns raw rows into reader records or errors (pure: no IO, no database);
- ``apply``    diffs records against the readers in the database and writes all or nothing;
- ``export``   writes the readers back out in the same format.

This module holds the vocabulary they share: the columns, the words staff use for
channels and statuses, and the dataclasses passed between the steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

# Canonical field → the column name staff see (and the export writes).
COLUMNS: dict[str, str] = {
    "name": "姓名",
    "organization": "单位",
    "position": "职务",
    "group": "分组",
    "email": "邮箱",
    "wecom_userid": "企业微信账号",
    "industries": "关注产业",
    "channels": "接收方式",
    "status": "状态",
}

# Header spellings accepted on import (compared after strip + casefold, inner spaces dropped).
ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("姓名", "name"),
    "organization": ("单位", "工作单位", "单位名称", "organization", "org", "company"),
    "position": ("职务", "职位", "title", "position"),
    "group": ("分组", "group"),
    "email": ("邮箱", "电子邮箱", "邮箱地址", "email", "e-mail", "mail"),
    "wecom_userid": ("企业微信账号", "企业微信", "企业微信id", "wecom", "wecom_userid", "wecom_id"),
    "industries": ("关注产业", "industries", "industry"),
    "channels": ("接收方式", "channels", "channel"),
    "status": ("状态", "status"),
}

# What each DB value is called in the lists, first word = the one the export writes.
CHANNEL_WORDS: dict[str, tuple[str, ...]] = {
    "email": ("邮件", "邮箱", "电子邮件", "email", "e-mail", "mail"),
    "wecom": ("企业微信", "企微", "微信", "wecom", "wechat"),
}
ALL_CHANNEL_WORDS: tuple[str, ...] = ("全部", "都要", "both", "all")
STATUS_WORDS: dict[str, tuple[str, ...]] = {
    "active": ("正常", "启用", "active"),
    "inactive": ("停用", "暂停", "inactive"),
    "unsubscribed": ("退订", "unsubscribed"),
}
# What staff read in `recipients list` and filter by (--status): the stored status, or
# for an active reader what keeps them from getting mail: their own pause (the preferences
# page) or their email suspended after repeated hard bounces. In a list's 状态 column
# 暂停 still means 停用 (STATUS_WORDS): lists cannot say until when.
STATE_WORDS: dict[str, tuple[str, ...]] = {
    "active": ("正常", "启用", "active"),
    "inactive": ("停用", "inactive"),
    "unsubscribed": ("退订", "unsubscribed"),
    "paused": ("暂停", "paused"),
    "email_suspended": ("退信停发", "退信", "suspended"),
}
CHANNEL_ORDER: tuple[str, ...] = ("email", "wecom")
# Longest values the database columns take.
MAX_LENGTH: dict[str, int] = {
    "name": 100,
    "organization": 200,
    "position": 100,
    "group": 100,
    "email": 254,
    "wecom_userid": 64,
}


# A cell starting with one of these is a formula to Excel, LibreOffice and WPS (OWASP "CSV
# injection"). Exports put NEUTRALISER before such a value, and before a value that itself
# starts with NEUTRALISER; imports take one off again, so a list round-trips unchanged.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NEUTRALISER = "'"


def neutralise(value: str) -> str:
    """The cell text an export writes: never read as a formula."""
    if value.startswith((*FORMULA_START, NEUTRALISER)):
        return NEUTRALISER + value
    return value


def unneutralise(cell: str) -> str:
    """The value behind a cell an export wrote (other cells are left as they are)."""
    if cell.startswith(NEUTRALISER) and cell[1:].startswith((*FORMULA_START, NEUTRALISER)):
        return cell[1:]
    return cell


def channel_words(channels: list[str] | tuple[str, ...]) -> str:
    """'邮件、企业微信' for ('email', 'wecom'), as the lists write it."""
    return "、".join(CHANNEL_WORDS[c][0] for c in CHANNEL_ORDER if c in channels)


def status_word(status: str) -> str:
    return STATUS_WORDS[status][0]


def reader_states(status: str, paused: bool, email_suspended: bool) -> tuple[str, ...]:
    """The states a reader is in, as STATE_WORDS names them: the status, except that an
    active reader who paused or whose email is suspended is in those states instead."""
    if status != "active":
        return (status,)
    held = (("paused",) if paused else ()) + (("email_suspended",) if email_suspended else ())
    return held or ("active",)


def state_words(states: tuple[str, ...]) -> str:
    """'暂停、退信停发' for ('paused', 'email_suspended')."""
    return "、".join(STATE_WORDS[s][0] for s in states)


@dataclass(frozen=True)
class RawTable:
    """A sheet as read: header cells and data rows, each with its spreadsheet row number."""

    file: str
    header_row: int
    header: list[str]
    rows: list[tuple[int, list[str]]]


@dataclass(frozen=True)
class ListProblem:
    """One problem in a list; row is the spreadsheet's (header = 1), column as staff name it."""

    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f":{self.row}"
        if self.column:
            where += f" 列“{self.column}”"
        return f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "row": self.row, "column": self.column, "message": self.message}


class ReaderRecord(NamedTuple):
    """One reader as a list (or the command line) gives it.

    A named tuple: a list makes 100,000 of them, and a tuple is the cheapest immutable
    record Python has. None means "not given: leave as it is" (a column the file does not have, an option
    not passed); "" means "given empty". ``channels`` () (given empty) means "every channel
    the reader has an address for"; None keeps the reader's channels that still have an
    address. ``status`` None leaves the status alone (new readers: active).
    """

    name: str | None = None
    organization: str | None = None
    position: str | None = None
    group: str | None = None
    email: str | None = None
    wecom_userid: str | None = None
    follows_all: bool | None = None
    industries: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None
    status: str | None = None
    file: str = ""
    row: int | None = None

    def error(self, column: str | None, message: str) -> ListProblem:
        return ListProblem(self.file, self.row, column, message)


@dataclass(frozen=True, slots=True)
class Change:
    """A row that adds a reader or changes one (``id`` None for a reader not yet added)."""

    file: str
    row: int | None
    action: str  # added | updated
    id: int | None
    fields: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "row": self.row, "action": self.action, "id": self.id,
                "fields": list(self.fields)}


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[ListProblem] = field(default_factory=list)
    # Rows naming a reader who unsubscribed: kept unsubscribed, listed for staff.
    kept_unsubscribed: list[dict[str, Any]] = field(default_factory=list)
    # Columns the files have that the format does not know (ignored).
    ignored_columns: list[dict[str, str]] = field(default_factory=list)
    # What would change / changed.
    changes: list[Change] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    rows: int = 0
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": [e.to_json() for e in self.errors],
            "kept_unsubscribed": self.kept_unsubscribed,
            "ignored_columns": self.ignored_columns,
            "changes": [c.to_json() for c in self.changes],
            "files": self.files,
            "rows": self.rows,
            "dry_run": self.dry_run,
        }
