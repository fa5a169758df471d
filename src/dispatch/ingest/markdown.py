"""Markdown issues: optional YAML front matter, ``#`` sections, ``##`` articles, ``###``
subheadings, paragraphs. Not a full CommonMark parser: just what editors write.

    ---
    number: 2024年第3期        # or 期号; a bare number 3 becomes 第3期
    title: 许昌竞争情报快递     # or 标题
    date: 2024-05-10           # or 日期; 2024年5月10日 works too
    ---
    # 编者的话
    Text right under a section, before any ##, is a note titled as the section.
    # 行业动态
    ## An article
    A paragraph can be wrapped
    over several lines; a blank line ends it.
    ### A subheading
    来源：新华社
"""

from __future__ import annotations

import html
import re
from datetime import date, datetime
from typing import Any

import yaml
from yaml.reader import ReaderError

from dispatch.cleantext import describe
from dispatch.limits import FRONT_MATTER_LINES

from .document import IngestError, ParsedIssue
from .plaintext import (
    Event,
    InvalidDate,
    Labels,
    build_issue,
    check_text,
    clean_line,
    find_date,
    heading_kind,
    source_of,
    stored_text,
)

MARKDOWN_LABELS = Labels(section="以 # 开头的栏目标题", marker="#", article="文章标题（##）")

_FRONT_MATTER_KEYS = {
    "number": "number",
    "期号": "number",
    "title": "title",
    "标题": "title",
    "date": "date",
    "日期": "date",
}

_HEADING = re.compile(r"(#{1,6})(?!#)\s*")
_FENCE = re.compile(r"(```|~~~)")
_RULE = re.compile(r"([-*_=])(?:\s*\1){2,}")
_REF_DEFINITION = re.compile(r"\[[^\]]+\]:\s*\S+.*")
_TABLE_SEPARATOR = re.compile(r"\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?")
_BULLET = re.compile(r"[-*+]\s+(.*)")
_ORDERED = re.compile(r"\d{1,3}[.)、]\s+.*")
_QUOTE = re.compile(r"(?:>\s?)+(.*)")

_ESCAPABLE = "\\`*_{}[]()#+-.!>~|"
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>~|])")
# Every pattern runs in time linear in the line: a span's text can't contain its own
# delimiter (or an opening bracket), so a span that never closes is given up at the next
# delimiter instead of at the end of the line, for each of a million openings.
_INLINE: list[tuple[re.Pattern[str], str] | None] = [
    (re.compile(r"!\[[^\[\]]*\]\([^()\[\]]*\)"), ""),  # images are dropped
    (re.compile(r"!\[[^\[\]]*\]\[[^\[\]]*\]"), ""),
    (re.compile(r"\[([^\[\]]*)\]\([^()\[\]]*\)"), r"\1"),  # [text](url) → text
    (re.compile(r"\[([^\[\]]+)\]\[[^\[\]]*\]"), r"\1"),  # [text][ref] → text
    (re.compile(r"<((?:https?|mailto):[^<>\s]+)>"), r"\1"),  # <https://…> → the URL
    (re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>"), ""),  # HTML tags
    None,  # `code`: strip_code_spans
    (re.compile(r"(\*\*|__)(?=\S)((?:(?!\1).)+?)(?<=\S)\1"), r"\2"),  # **bold** __bold__
    (re.compile(r"~~(?=\S)((?:(?!~~).)+?)(?<=\S)~~"), r"\1"),  # ~~struck~~
    (re.compile(r"(?<!\*)\*(?=[^\s*])([^*]+?)(?<=[^\s*])\*(?!\*)"), r"\1"),  # *em*
    (re.compile(r"(?<![A-Za-z0-9_])_(?=[^\s_])([^_]+?)(?<=[^\s_])_(?![A-Za-z0-9_])"), r"\1"),
]


def strip_inline(text: str) -> str:
    """Plain text of a line of Markdown: markup, links' URLs, images and HTML tags gone."""
    # Escaped characters are parked in the private-use area so no rule touches them.
    text = _ESCAPE.sub(lambda m: chr(0xE000 + _ESCAPABLE.index(m[1])), text)
    text = drop_comments(text)[0]
    for rule in _INLINE:
        text = strip_code_spans(text) if rule is None else rule[0].sub(rule[1], text)
    text = re.sub("[\ue000-\ue0ff]", lambda m: _ESCAPABLE[ord(m[0]) - 0xE000], text)
    return clean_line(html.unescape(text))


_BACKTICKS = re.compile(r"`+")


def strip_code_spans(text: str) -> str:
    """`code` → code: a span opens with a run of backticks and closes at the next run of
    the same length; an opening with no such run is literal. Each run's next run of the
    same length is found in one pass from the right, so this is linear where a regex
    with a backreference is cubic on a line of backticks."""
    runs = [(m.start(), m.end()) for m in _BACKTICKS.finditer(text)]
    following: list[int | None] = [None] * len(runs)
    last: dict[int, int] = {}
    for i in range(len(runs) - 1, -1, -1):
        size = runs[i][1] - runs[i][0]
        following[i], last[size] = last.get(size), i
    out: list[str] = []
    at = i = 0
    while i < len(runs):
        close = following[i]
        if close is None:
            i += 1
            continue
        out += [text[at:runs[i][0]], text[runs[i][1]:runs[close][0]]]
        at, i = runs[close][1], close + 1
    out.append(text[at:])
    return "".join(out)


def drop_comments(line: str) -> tuple[str, bool]:
    """The line without its HTML comments; True if one opens and doesn't close there (it
    is cut off at the ``<!--``). Found with str.find: a regex retried at each of many
    unclosed ``<!--`` would scan the rest of the line for each."""
    out: list[str] = []
    at = 0
    while (start := line.find("<!--", at)) >= 0:
        out.append(line[at:start])
        end = line.find("-->", start + 4)
        if end < 0:
            return "".join(out), True
        at = end + 3
    out.append(line[at:])
    return "".join(out), False


def _heading(line: str) -> tuple[int, str] | None:
    """(level, text) of an ATX heading line (closing #s dropped), or None."""
    m = _HEADING.match(line)
    if m is None:
        return None
    text = line[m.end():]
    closed = text.rstrip("#")
    if closed != text and closed and closed[-1].isspace():
        text = closed
    return len(m[1]), text.strip()


def join_wrapped(lines: list[str]) -> str:
    """Join soft-wrapped lines: no space between Chinese characters, one between words."""
    text = ""
    for line in lines:
        line = line.removesuffix("\\").strip()
        if text and line and text[-1].isascii() and line[0].isascii():
            text += " "
        text += line
    return text


def _front_matter(raw: list[str], file: str) -> tuple[dict[str, Any], dict[str, int], int]:
    """(values by our key, line number by our key, index of the first body line)."""
    if raw[0].rstrip() != "---":
        return {}, {}, 0
    end = next((i for i in range(1, len(raw)) if raw[i].rstrip() in ("---", "...")), None)
    if end is None:
        raise IngestError(file, 1, "front matter（开头的 --- 块）没有结束：缺少结尾的 --- 行")
    if end - 1 > FRONT_MATTER_LINES:
        raise IngestError(
            file, 1, f"front matter（开头的 --- 块）过长：{end - 1} 行，最多 {FRONT_MATTER_LINES} 行"
        )
    source = "\n".join(raw[1:end])
    try:
        data = yaml.safe_load(source)
    except ReaderError as e:
        # A raw control character: YAML refuses it before parsing.
        line = 2 + source[: e.position].count("\n")
        raise IngestError(file, line, describe(chr(e.character))) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = 2 + mark.line if mark is not None else 1
        problem = getattr(e, "problem", None) or ""
        raise IngestError(
            file, line, f"front matter 不是有效的 YAML（{problem}）".replace("（）", "")
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise IngestError(file, 2, "front matter 应该是“键: 值”的形式，例如 date: 2024-05-10")
    values: dict[str, Any] = {}
    where: dict[str, int] = {}
    for key, value in data.items():
        ours = _FRONT_MATTER_KEYS.get(str(key).strip().lower())
        if ours is None or ours in values:
            continue
        values[ours] = value
        pattern = re.compile(rf"\s*['\"]?{re.escape(str(key))}['\"]?\s*:")
        where[ours] = next((i + 1 for i in range(1, end) if pattern.match(raw[i])), 1)
    return values, where, end + 1


def _front_matter_issue_fields(
    values: dict[str, Any], where: dict[str, int], file: str
) -> tuple[str | None, str | None, date | None]:
    title = number = None
    published_on: date | None = None
    for key, what in (("title", "title（标题）"), ("number", "number（期号）"), ("date", "date（日期）")):
        # str() of a nested value built from YAML aliases can be exponentially long.
        if isinstance(values.get(key), dict | list):
            raise IngestError(file, where[key], f"front matter 中的 {what}应该是一行文字")
    if values.get("title") is not None:
        title = stored_text(str(values["title"]), file, where["title"]).strip() or None
    if values.get("number") is not None:
        number = stored_text(str(values["number"]), file, where["number"]).strip() or None
        if number and number.isdigit():
            number = f"第{number}期"
    value = values.get("date")
    if isinstance(value, datetime):
        published_on = value.date()
    elif isinstance(value, date):
        published_on = value
    elif value is not None:
        text = stored_text(str(value), file, where["date"]).strip()
        try:
            published_on = find_date(text)
        except InvalidDate:
            published_on = None
        if published_on is None:
            raise IngestError(
                file,
                where["date"],
                f"front matter 中的日期“{text}”无法识别（应为 2024-05-10 或 2024年5月10日）",
            )
    return title, number, published_on


def markdown_events(lines: list[tuple[int, str]]) -> list[Event]:
    """Events of the Markdown body; ``lines`` are (line number, raw line) pairs."""
    events: list[Event] = []
    para: list[str] = []
    para_line = 0
    fence: str | None = None
    in_comment = False

    def flush() -> None:
        nonlocal para
        if para:
            text = strip_inline(join_wrapped(para))
            if text:
                events.append(Event("paragraph", text, para_line))
        para = []

    def start(text: str, no: int) -> None:
        nonlocal para_line
        if not para:
            para_line = no
        para.append(text)

    for no, raw in lines:
        line = raw
        if in_comment:
            if "-->" not in line:
                continue
            in_comment = False
            line = line.split("-->", 1)[1]
        if fence is not None:
            if clean_line(line).startswith(fence):
                fence = None
            elif clean_line(line):
                events.append(Event("paragraph", clean_line(line), no))
            continue
        line, in_comment = drop_comments(line)
        s = clean_line(line)
        if not s:
            flush()
            continue
        m = _FENCE.match(s)
        if m:
            flush()
            fence = m[1]
            continue
        if s.startswith("#"):
            heading = _heading(s)
            if heading:
                flush()
                level, text = heading
                events.append(Event(heading_kind(level), strip_inline(text), no))
                continue
        if _RULE.fullmatch(s) or _REF_DEFINITION.fullmatch(s):
            flush()
            continue
        quote = _QUOTE.fullmatch(s)
        if quote:
            s = clean_line(quote[1])
            if not s:
                flush()
                continue
        if s.startswith("|") and s.endswith("|") and len(s) > 1:
            flush()
            if not _TABLE_SEPARATOR.fullmatch(s):
                cells = [strip_inline(c) for c in s[1:-1].split("|")]
                start(" | ".join(c for c in cells if c), no)
                flush()
            continue
        bullet = _BULLET.fullmatch(s)
        if bullet or _ORDERED.fullmatch(s):
            flush()
            start(bullet[1] if bullet else s, no)
            continue
        if source_of(strip_inline(s)) is not None:
            flush()  # a 来源 line is always a paragraph of its own
            start(s, no)
            flush()
            continue
        start(s, no)
    flush()
    return events


def parse_markdown(text: str, file: str) -> ParsedIssue:
    """Parse a Markdown issue (see the module docstring and docs/ingest-rules.md)."""
    text = check_text(text, file)
    raw = re.split(r"\r\n|\r|\n", text)
    values, where, body = _front_matter(raw, file)
    fm_title, fm_number, fm_date = _front_matter_issue_fields(values, where, file)
    events = markdown_events([(no, line) for no, line in enumerate(raw, 1)][body:])
    issue = build_issue(events, file=file, source_format="markdown", labels=MARKDOWN_LABELS)
    issue.title = fm_title or issue.title
    issue.number = fm_number or issue.number
    issue.published_on = fm_date or issue.published_on
    return issue
