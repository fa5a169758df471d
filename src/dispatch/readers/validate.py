"""Raw rows → reader records, or errors that name the file, row and column.

Pure: no files, no database. Everything is checked before anything is written, and every
problem is reported, not just the first.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

from dispatch import cleantext
from dispatch import industries as ind
from dispatch.readers import (
    ALIASES,
    ALL_CHANNEL_WORDS,
    CHANNEL_ORDER,
    CHANNEL_WORDS,
    COLUMNS,
    MAX_LENGTH,
    STATE_WORDS,
    STATUS_WORDS,
    ListProblem,
    RawTable,
    ReaderRecord,
)

WECOM_USERID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
# Between words of 接收方式: the industry separators, plus 和/及/与 and '+'.
_CHANNEL_SEPARATORS = re.compile(r"[、，,;；|/／+＋\s]+|和|及|与")
_TEXT_FIELDS = ("name", "organization", "position", "group")
# Joins a row's cells for one look at all of them: a visible character the character
# rule leaves alone, so the row comes out unchanged exactly when every cell would.
_CELL_JOINER = "|"


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
    plain = _PLAIN_ADDRESS.fullmatch(text)
    if plain is not None and len(text) <= _EMAIL_MAX_LENGTH:
        local, domain = plain.groups()
        normalized_domain = _plain_domain(domain)
        if normalized_domain is not None and local.lower() not in _CASE_INSENSITIVE_NAMES:
            return f"{local}@{normalized_domain}"
    try:
        return _validate_email(text)
    except EmailNotValidError as exc:
        reason = email_reason(exc)
        raise ValueError(
            f"邮箱“{text}”格式不正确" + (f"（{reason}）" if reason else "")
        ) from None


def _validate_email(text: str) -> str:
    # No SMTPUTF8: a non-ASCII local part can't be delivered through most relays, and the
    # message splicer (render/message.py) refuses it.
    return validate_email(text, check_deliverability=False, allow_smtputf8=False).normalized


# The shape nearly every address in a list has: an RFC 5322 dot-atom before the @ and an
# ASCII host name after it. For it the library's answer is the local part as given and
# the domain's own answer, which depends on the domain alone: the domain is checked once
# per list (validation per row was most of an import's time), and anything else, or any
# domain the library changes or refuses, takes the library's full path.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_PLAIN_ADDRESS = re.compile(rf"({_ATEXT}+(?:\.{_ATEXT}+)*)@([A-Za-z0-9.-]+)")
_EMAIL_MAX_LENGTH = 254
_CASE_INSENSITIVE_NAMES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


@functools.lru_cache(maxsize=4096)
def _plain_domain(domain: str) -> str | None:
    """The domain as the library normalizes it, if it takes it as a plain ASCII host name."""
    try:
        normalized = _validate_email(f"a@{domain}").partition("@")[2]
    except EmailNotValidError:
        return None
    return normalized if normalized == domain.lower() else None


# email_validator's reasons (its English messages, as of 2.x) → what staff read. Matched
# in order on the message; the characters a message names are shown as staff typed them.
_EMAIL_REASONS: tuple[tuple[str, str], ...] = (
    ("After Unicode normalization: ", ""),  # prefix of another reason: see email_reason
    ("small commercial at", "“﹫”不是半角的“@”，请改为半角“@”"),
    ("full-width", "“＠”是全角字符，请改为半角“@”"),
    ("must have an @-sign", "缺少“@”"),
    ("something before the @-sign", "“@”前面缺少用户名"),
    ("something after the @-sign", "“@”后面缺少域名"),
    ("too long before the @-sign", "“@”前面的部分过长"),
    ("too long after the @-sign", "“@”后面的域名过长，最多 253 个字符"),
    ("periods cannot be separated by so many", "域名中两个“.”之间的部分过长，最多 63 个字符"),
    ("too long", "地址过长，最多 254 个字符"),
    ("Internationalized characters before the @-sign", "“@”前面不能有中文等非英文字符{chars}"),
    ("invalid characters in quotes before the @-sign", "“@”前面含有不允许的字符{chars}"),
    ("invalid characters before the @-sign", "“@”前面含有不允许的字符{chars}"),
    ("unsafe characters", "含有不可见或不安全的字符{chars}"),
    ("display name", "只填地址本身，不要带姓名或尖括号"),
    ("angle bracket", "只填地址本身，不要带姓名或尖括号"),
    ("anything after the email address", "地址后面有多余的内容"),
    ("Extra character(s) found after close quote", "引号后面有多余的字符"),
    ("Quoting the part before the @-sign", "“@”前面不能使用引号"),
    ("in brackets", "“@”后面不能是方括号中的 IP 地址"),
    ("bracketed IP address", "“@”后面不能是方括号中的 IP 地址"),
    ("cannot start with a period", "不能以“.”开头"),
    ("period immediately before the @-sign", "“@”前面不能紧挨着“.”"),
    ("two periods in a row", "不能有两个连续的“.”"),
    ("period immediately after the @-sign", "“@”后面不能紧挨着“.”"),
    ("cannot end with a period", "不能以“.”结尾"),
    ("hyphen immediately after the @-sign", "“@”后面不能紧挨着“-”"),
    ("cannot end with a hyphen", "域名不能以“-”结尾"),
    ("period and a hyphen next to each other", "域名中“.”和“-”不能相邻"),
    ("two letters followed by two dashes", "域名中某一段的第 3、4 个字符不能是“--”"),
    ("It should have a period", "“@”后面的域名缺少“.”，不完整"),
    ("not within a valid top-level domain", "域名的最后一段不是有效的顶级域名"),
    ("special-use or reserved name", "“@”后面是保留的域名，不能用于收发邮件"),
    ("contains invalid characters after Unicode normalization", "“@”后面的域名含有不允许的字符{chars}"),
    ("part after the @-sign contains invalid characters", "“@”后面的域名含有不允许的字符{chars}"),
    ("after the @-sign", "“@”后面的域名无效"),
    ("not valid ASCII", "含有非英文字符"),
    ("invalid character", "含有无效的字符"),
)
_CHAR_LIST = re.compile(r": (.+)\.\Z")


def email_reason(exc: EmailNotValidError) -> str | None:
    """Why email_validator refused an address, in Chinese; None for a reason it has not
    been taught (the caller then says only that the format is wrong)."""
    message = str(exc)
    while message.startswith(_EMAIL_REASONS[0][0]):
        message = message[len(_EMAIL_REASONS[0][0]):]
    if message.count("@") > 1 and "'@'" in message:
        return "只能有一个“@”"
    for words, reason in _EMAIL_REASONS[1:]:
        if words in message:
            if "{chars}" not in reason:
                return reason
            chars = _named_chars(message)
            return reason.format(chars=chars) if chars else reason.replace("{chars}", "")
    return None


def _named_chars(message: str) -> str:
    """The characters an email_validator message lists ('张', SPACE, U+200B), as staff see them."""
    found = _CHAR_LIST.search(message)
    if found is None:
        return ""
    shown = []
    for item in found.group(1).split(", "):
        ch = _char_of(item)
        if ch is not None:
            shown.append(_show_char(ch))
    return "：" + "、".join(shown) if shown else ""


def _char_of(item: str) -> str | None:
    with contextlib.suppress(ValueError, SyntaxError, KeyError):
        if item == '"\\"':
            return "\\"
        if item[:1] in "'\"":
            value = ast.literal_eval(item)
            return value if isinstance(value, str) and len(value) == 1 else None
        if item.startswith("U+"):
            return chr(int(item[2:], 16))
        return unicodedata.lookup(item)
    return None


def _show_char(ch: str) -> str:
    if ch == " ":
        return "空格"
    if ch == "\u3000":
        return "全角空格"
    if ch.isprintable() and not ch.isspace() and unicodedata.category(ch)[0] != "M":
        return f"“{ch}”"
    return f"U+{ord(ch):04X}"


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


@functools.lru_cache(maxsize=4096)
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


@functools.lru_cache(maxsize=4096)
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


@functools.lru_cache(maxsize=4096)
def parse_status(text: str) -> str | None:
    w = text.strip().casefold()
    if not w:
        return None
    for status, names in STATUS_WORDS.items():
        if w in names:
            return status
    raise ValueError(f"未知状态“{text.strip()}”（可填：正常、停用、退订；留空则不变）")


@functools.lru_cache(maxsize=64)
def parse_state(text: str) -> str:
    """A state staff filter readers by (STATE_WORDS: a status, 暂停 or 退信停发)."""
    w = text.strip().casefold()
    for state, names in STATE_WORDS.items():
        if w in names:
            return state
    words = "、".join(names[0] for names in STATE_WORDS.values())
    raise ValueError(f"未知状态“{text.strip()}”（可填：{words}）")


# --- one reader --------------------------------------------------------------------------


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
    # Runs once per row of a list of 100,000: checks are inline, and the helpers it calls
    # for the cells lists repeat (industries, channels, status, domains) are cached.
    labels = labels or COLUMNS
    errors: list[ListProblem] = []
    failed: set[str] = set()
    out: dict[str, Any] = {}

    def err(f: str | None, message: str) -> None:
        if f:
            failed.add(f)
        column = (labels.get(f) or COLUMNS.get(f)) if f else None
        errors.append(ListProblem(file, row, column, message))

    # What a reader's fields feed (mail headers, greetings, the terminal) takes one line
    # of visible text: a line break in a cell usually joins two values.
    cells = {f: raw.strip() for f, raw in values.items() if raw is not None}
    # The row as one text first: nearly every row is clean as it is, and then no cell
    # needs a look of its own.
    joined = _CELL_JOINER.join(cells.values())
    try:
        clean_row = cleantext.clean(joined, breaks="refuse") == joined
    except cleantext.BadText:
        clean_row = False
    if not clean_row:
        for f, cell in list(cells.items()):
            try:
                cells[f] = cleantext.clean(cell, breaks="refuse")
            except cleantext.BadText as exc:
                del cells[f]
                err(f, exc.message)

    for f in _TEXT_FIELDS:
        text = cells.get(f)
        if text is None:
            continue
        if len(text) > MAX_LENGTH[f]:
            err(f, f"{COLUMNS[f]}过长（{len(text)} 个字，最多 {MAX_LENGTH[f]} 个）")
        elif not text and f == "name":
            err(f, "姓名为空")
        else:
            out[f] = text

    for f, check in _ADDRESS_CHECKS:
        text = cells.get(f)
        if text is None:
            continue
        try:
            out[f] = check(text) if text else ""
        except ValueError as exc:
            err(f, str(exc))
    for f, parse in _WORD_PARSERS:
        text = cells.get(f)
        if text is None:
            continue
        try:
            if f == "industries":
                out["follows_all"], out["industries"] = parse_industries(text)
            else:
                out[f] = parse(text)
        except ValueError as exc:
            err(f, str(exc))

    if need_identity:
        for f in ("name", "industries"):
            if values.get(f) is None:
                err(f, f"缺少{COLUMNS[f]}")
        # An address that failed its own check has been reported already.
        if not out.get("email") and not out.get("wecom_userid") and not (
            "email" in failed or "wecom_userid" in failed
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


_ADDRESS_CHECKS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("email", normalize_email), ("wecom_userid", check_wecom_userid),
)
_WORD_PARSERS: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("industries", parse_industries), ("channels", parse_channels), ("status", parse_status),
)


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
    found: dict[str, str] = {}
    for f, check in _ADDRESS_CHECKS:
        with contextlib.suppress(ValueError):  # BadText is a ValueError too
            text = cleantext.clean((values.get(f) or "").strip(), breaks="refuse")
            if text:
                found[f] = check(text)
    return ReaderRecord(file=file, row=row, email=found.get("email"),
                        wecom_userid=found.get("wecom_userid"))


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

