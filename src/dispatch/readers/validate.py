"""Raw rows → reader records, or errors that name the file, row and column.

Pure: no files, no database. Everything is checked before anything is written, and every
problem is reported, not just the first.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from email_validator import EmailNotValidError, validate_email

from dispatch import cleantext
from dispatch import industries as ind
from dispatch.readers import (
    ALIASES,
    ALL_CHANNEL_WORDS,
    CHANNEL_ORDER,
    CHANNEL_WORDS,
    COLUMNS,
    MAX_LENGTH,
    STATUS_WORDS,
    ListProblem,
    RawTable,
    ReaderRecord,
)

WECOM_USERID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
# Between words of 接收方式: the industry separators, plus 和/及/与 and '+'.
_CHANNEL_SEPARATORS = re.compile(r"[、，,;；|/／+＋\s]+|和|及|与")
_TEXT_FIELDS: tuple[Literal["name", "organization", "position", "group"], ...] = (
    "name", "organization", "position", "group",
)


class _Fields(TypedDict, total=False):
    """A ReaderRecord's fields that build_record found valid (keyword arguments)."""

    name: str
    organization: str
    position: str
    group: str
    email: str
    wecom_userid: str
    follows_all: bool
    industries: tuple[str, ...]
    channels: tuple[str, ...]
    status: str | None


@dataclass
class Validated:
    records: list[ReaderRecord] = field(default_factory=list)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # file → field → header
    # The addresses of every row, valid or not, for the duplicate check.
    addresses: list[ReaderRecord] = field(default_factory=list)
    errors: list[ListProblem] = field(default_factory=list)
    ignored_columns: list[dict[str, str]] = field(default_factory=list)
    rows: int = 0


# --- headers -----------------------------------------------------------------------------


def _key(header: str) -> str:
    return re.sub(r"\s+", "", header.replace("\ufeff", "")).casefold()


_ALIAS_INDEX: dict[str, str] = {_key(a): f for f, names in ALIASES.items() for a in names}


def field_of(header: str) -> str | None:
    """The field a header names ('  E-mail ' → 'email'), or None."""
    return _ALIAS_INDEX.get(_key(header))


def map_header(table: RawTable) -> tuple[dict[str, int], dict[str, str], Validated]:
    """Column index and label of each known field; errors for missing/duplicate columns."""
    out = Validated()
    index: dict[str, int] = {}
    labels: dict[str, str] = {}
    for i, raw in enumerate(table.header):
        label = raw.strip().replace("\ufeff", "")
        if not label:
            continue
        f = field_of(label)
        if f is None:
            out.ignored_columns.append({"file": table.file, "column": label})
            continue
        if f in index:
            out.errors.append(ListProblem(
                table.file, table.header_row, label,
                f"列“{label}”与列“{labels[f]}”重复（都表示{COLUMNS[f]}）",
            ))
            continue
        index[f] = i
        labels[f] = label
    for f in ("name", "industries"):
        if f not in index:
            out.errors.append(ListProblem(
                table.file, table.header_row, COLUMNS[f], f"缺少必填列“{COLUMNS[f]}”" + _header_hint(table)
            ))
    if "email" not in index and "wecom_userid" not in index:
        out.errors.append(ListProblem(
            table.file, table.header_row, COLUMNS["email"],
            "缺少地址列：至少要有“邮箱”或“企业微信账号”中的一列" + _header_hint(table),
        ))
    return index, labels, out


def _header_hint(table: RawTable) -> str:
    seen = "、".join(h.strip() for h in table.header if h.strip())
    return f"（第 {table.header_row} 行应为表头，现为：{seen[:120] or '空'}）"


# --- cells -------------------------------------------------------------------------------


def normalize_email(text: str) -> str:
    """The normalized address (domain lower-cased); raises ValueError with a Chinese reason."""
    if "＠" in text:
        raise ValueError(f"邮箱“{text}”中的“＠”是全角字符，请改为半角“@”")
    try:
        # No SMTPUTF8: a non-ASCII local part can't be delivered through most relays,
        # and the message splicer (render/message.py) refuses it.
        return validate_email(text, check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"邮箱“{text}”格式不正确（{exc}）") from None


def check_wecom_userid(text: str) -> str:
    if WECOM_USERID.fullmatch(text):
        return text
    if re.fullmatch(r"\d(\.\d+)?[eE]\+?\d+", text):
        raise ValueError(
            f"企业微信账号“{text}”像是被 Excel 显示成了科学计数法；"
            "请把该列设置为“文本”格式后重新填写完整账号"
        )
    if len(text) > 64:
        raise ValueError(f"企业微信账号过长（{len(text)} 个字符，最多 64 个）")
    raise ValueError(
        f"企业微信账号“{text}”格式不正确（只能包含字母、数字和 _ - . @，1 至 64 个字符）"
    )


def parse_industries(text: str) -> tuple[bool, tuple[str, ...]]:
    """'生物医药、nev' / '全部' → (follows_all, codes); raises ValueError listing every bad word."""
    if not text.strip():
        raise ValueError("关注产业为空（请填写产业名称，多个用“、”分隔，或填“全部”）")
    try:
        follows_all, codes = ind.parse_list(text)
        return follows_all, tuple(codes)
    except ind.UnknownIndustry:
        pass
    problems = []
    for word in (w for w in ind.SEPARATORS.split(text.strip()) if w):
        if word == ind.GENERAL_NAME or word.lower() == ind.GENERAL:
            problems.append(
                f"“{word}”不必关注：综合类文章本就发给所有读者；请填写具体产业或“全部”"
            )
            continue
        try:
            ind.code_of(word)
        except ind.UnknownIndustry as exc:
            problems.append(str(exc))
    raise ValueError("；".join(problems))


def parse_channels(text: str) -> tuple[str, ...]:
    """'邮件、企业微信' / '全部' / 'email' → channel codes; '' → () (by addresses)."""
    words = [w for w in _CHANNEL_SEPARATORS.split(text.strip()) if w]
    if not words:
        return ()
    chosen: set[str] = set()
    for word in words:
        w = word.casefold()
        if w in ALL_CHANNEL_WORDS:
            chosen.update(CHANNEL_ORDER)
            continue
        for channel, names in CHANNEL_WORDS.items():
            if w in names:
                chosen.add(channel)
                break
        else:
            raise ValueError(f"未知接收方式“{word}”（可填：邮件、企业微信，或“全部”；留空则按已填地址）")
    return tuple(c for c in CHANNEL_ORDER if c in chosen)


def parse_status(text: str) -> str | None:
    w = text.strip().casefold()
    if not w:
        return None
    for status, names in STATUS_WORDS.items():
        if w in names:
            return status
    raise ValueError(f"未知状态“{text.strip()}”（可填：正常、停用、退订；留空则不变）")


# --- one reader --------------------------------------------------------------------------

_ADDRESS_CHECKS: tuple[tuple[Literal["email", "wecom_userid"], Callable[[str], str]], ...] = (
    ("email", normalize_email),
    ("wecom_userid", check_wecom_userid),
)


def build_record(
    values: Mapping[str, str | None],
    *,
    file: str,
    row: int | None,
    labels: Mapping[str, str] | None = None,
    need_identity: bool = True,
) -> tuple[ReaderRecord | None, list[ListProblem]]:
    """One reader from its cell texts (field → text; None or absent = column not given).

    ``need_identity``: an address is required (imports and `add`; `set` names the reader
    by key instead), and so are a name and industries.
    """
    labels = labels or COLUMNS
    errors: list[ListProblem] = []
    failed: set[str] = set()
    out: _Fields = {}

    def err(f: str | None, message: str) -> None:
        if f:
            failed.add(f)
        column = (labels.get(f) or COLUMNS.get(f)) if f else None
        errors.append(ListProblem(file, row, column, message))

    cells: dict[str, str] = {}
    for f, raw in values.items():
        if raw is None:
            continue
        try:
            # What a reader's fields feed (mail headers, greetings, the terminal) takes one
            # line of visible text: a line break in a cell usually joins two values.
            cells[f] = cleantext.clean(raw.strip(), breaks="refuse")
        except cleantext.BadText as exc:
            err(f, exc.message)

    for f in _TEXT_FIELDS:
        if f not in cells:
            continue
        text = cells[f]
        if len(text) > MAX_LENGTH[f]:
            err(f, f"{COLUMNS[f]}过长（{len(text)} 个字，最多 {MAX_LENGTH[f]} 个）")
        elif f == "name" and not text:
            err(f, "姓名为空")
        else:
            out[f] = text

    for f, check in _ADDRESS_CHECKS:
        if f not in cells:
            continue
        try:
            out[f] = check(cells[f]) if cells[f] else ""
        except ValueError as exc:
            err(f, str(exc))
    if "industries" in cells:
        try:
            out["follows_all"], out["industries"] = parse_industries(cells["industries"])
        except ValueError as exc:
            err("industries", str(exc))
    if "channels" in cells:
        try:
            out["channels"] = parse_channels(cells["channels"])
        except ValueError as exc:
            err("channels", str(exc))
    if "status" in cells:
        try:
            out["status"] = parse_status(cells["status"])
        except ValueError as exc:
            err("status", str(exc))

    if need_identity:
        for f in ("name", "industries"):
            if values.get(f) is None:
                err(f, f"缺少{COLUMNS[f]}")
        # An address that failed its own check has been reported already.
        if not failed & {"email", "wecom_userid"} and not (
            out.get("email") or out.get("wecom_userid")
        ):
            err(
                "email" if "email" in values else "wecom_userid",
                "没有邮箱，也没有企业微信账号：无法发送（至少填写一项）",
            )

    for code in out.get("channels") or ():
        address = "email" if code == "email" else "wecom_userid"
        if out.get(address) == "":
            err("channels", f"接收方式包含“{CHANNEL_WORDS[code][0]}”，但{COLUMNS[address]}为空")

    if errors:
        return None, errors
    return ReaderRecord(file=file, row=row, **out), []


# --- tables ------------------------------------------------------------------------------


def find_header(table: RawTable, look_ahead: int = 5) -> RawTable:
    """Skip title lines above the header ("许昌竞争情报快递读者名单" in a merged cell).

    The header is the first of the first few rows with a 姓名 column; if none has one, the
    first row stays the header and ``map_header`` says what is missing.
    """
    candidates = [(table.header_row, table.header), *table.rows[:look_ahead]]
    for i, (number, cells) in enumerate(candidates):
        fields = [field_of(c) for c in cells if c.strip()]
        if "name" in fields:
            if i == 0:
                return table
            width = len(cells)
            while width and not cells[width - 1].strip():
                width -= 1
            return RawTable(table.file, number, cells[:width], table.rows[i:])
    return table


def validate_table(table: RawTable) -> Validated:
    table = find_header(table)
    index, labels, out = map_header(table)
    out.labels[table.file] = {**COLUMNS, **labels}
    if out.errors:
        return out
    width = len(table.header)
    for number, cells in table.rows:
        out.rows += 1
        extra = [c for c in cells[width:] if c.strip()]
        if extra:
            out.errors.append(ListProblem(
                table.file, number, None,
                f"此行比表头多出 {len(extra)} 个单元格（“{extra[0].strip()[:30]}”）；"
                "单元格内容含逗号时须用英文双引号括起来",
            ))
            continue
        values = {f: cells[i] for f, i in index.items()}
        record, errors = build_record(values, file=table.file, row=number, labels=labels)
        out.errors.extend(errors)
        if record is not None:
            out.records.append(record)
            out.addresses.append(record)
        else:
            out.addresses.append(_addresses_only(values, table.file, number))
    return out


def _addresses_only(values: Mapping[str, str], file: str, row: int) -> ReaderRecord:
    """The valid addresses of a row that has errors elsewhere."""
    found: _Fields = {}
    for f, check in _ADDRESS_CHECKS:
        with contextlib.suppress(ValueError):  # BadText is a ValueError too
            text = cleantext.clean((values.get(f) or "").strip(), breaks="refuse")
            if text:
                found[f] = check(text)
    return ReaderRecord(file=file, row=row, **found)


def _other_row(this: ReaderRecord, other: ReaderRecord) -> str:
    if other.file == this.file:
        return f"第 {other.row} 行"
    return f"{other.file} 第 {other.row} 行"


def find_duplicates(
    records: Iterable[ReaderRecord], labels: Mapping[str, Mapping[str, str]] | None = None
) -> list[ListProblem]:
    """The same email or WeChat Work id twice, within a file or across files."""
    errors: list[ListProblem] = []
    seen: dict[str, dict[str, ReaderRecord]] = {"email": {}, "wecom_userid": {}}
    for rec in records:
        for f in ("email", "wecom_userid"):
            value = getattr(rec, f)
            if not value:
                continue
            key = value.casefold()
            first = seen[f].get(key)
            if first is None:
                seen[f][key] = rec
                continue
            label = (labels or {}).get(rec.file, COLUMNS).get(f, COLUMNS[f])
            errors.append(rec.error(
                label, f"{COLUMNS[f]}“{value}”重复：与 {_other_row(rec, first)} 相同"
            ))
    return errors


def validate_tables(tables: Iterable[RawTable]) -> Validated:
    """All the lists of one import together: per row, then duplicates across all rows."""
    out = Validated()
    for table in tables:
        one = validate_table(table)
        out.labels.update(one.labels)
        out.records.extend(one.records)
        out.addresses.extend(one.addresses)
        out.errors.extend(one.errors)
        out.ignored_columns.extend(one.ignored_columns)
        out.rows += one.rows
    out.errors.extend(find_duplicates(out.addresses, out.labels))
    return out

