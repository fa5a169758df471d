"""The institute's plain-text format, and the rules all three formats share.

A text issue looks like ``samples/issue-sample.txt``::

    ●行业动态                       ← a section: ● then its title
    未来产业是培育新质生产力的重要引擎  ← first title-like line of a section: an article title
    未来产业代表着……应有之义。          ← paragraphs, one per line
    超前布局提升战略科技力量          ← title-like line right after text: a subheading
                                    ← blank line
    另一篇文章的标题                  ← title-like line after a blank line: a new article
    ……
    来源：新华社                      ← last line of an article: its source

Every parser turns its file into a flat list of ``Event``s (section, article, subheading,
paragraph); ``build_issue`` applies the shared rules (masthead before the first section,
untitled text → a note article, 来源 lines, nothing empty) and raises ``IngestError`` for
anything it can't accept. Docs for editors: ``docs/ingest-rules.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from dispatch.cleantext import INVISIBLE, BadText, clean
from dispatch.limits import ISSUE_LINES
from dispatch.textfile import looks_binary

from .decode import NOT_TEXT, is_blank
from .document import (
    ArticleKind,
    Block,
    BlockKind,
    IngestError,
    ParsedArticle,
    ParsedIssue,
    ParsedSection,
)

# A title-like line has at most this many characters (the sample's longest title has 25,
# its shortest one-sentence paragraphs 18–46 and all end with 。).
TITLE_MAX_CHARS = 40
# Masthead lines (before the first section) may be a little longer: 刊名 + 期号 + 日期 + 编印单位.
MASTHEAD_MAX_CHARS = 60

SECTION_MARKER = "●"

# ---------------------------------------------------------------------------------------
# Line-level rules

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_STRIP = " \t\r\n\x0b\x0c\x1a\u3000\xa0" + INVISIBLE

_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")

_PAGE_NUMBER = [
    re.compile(r"\d+"),  # 7
    re.compile(r"[-–—－―~～]+\s*\d+\s*[-–—－―~～]+"),  # - 3 -   —3—
    re.compile(r"第\s*\d+\s*页(?:\s*[,，/／]?\s*共\s*\d+\s*页)?"),  # 第3页  第3页 共12页
    re.compile(r"\d+\s*[/／]\s*\d+"),  # 3/12
    re.compile(r"(?i)(?:page|p\.?)\s*\d+(?:\s*(?:of|/)\s*\d+)?"),  # Page 3 of 12
]

# Sentence punctuation at the end of a line, optionally followed by closing quotes/brackets.
_SENTENCE_END = re.compile(r"[。！？；…，：、.!?;,:][\"'”’」』）)\]】》]*$")

# 来源：新华社 / 来源:新华社 / （来源：新华社） / 资料来源：… / 摘自《科技日报》
_SOURCE = re.compile(
    r"^(?P<open>[（(【\[]?)\s*"
    r"(?:(?:资料|文章|信息|消息|稿件)?来源\s*[：:]|(?:摘编自|摘自|转载自|转自|选自)\s*[：:]?)"
    r"\s*+(?P<source>.*\S)\s*$"  # not \s*(.+?)\s*$: quadratic on a line of spaces
)


def clean_line(line: str) -> str:
    """Strip a line, including full-width spaces, NBSP and zero-width characters."""
    return line.strip(_STRIP)


def split_lines(text: str) -> list[tuple[int, str]]:
    """The text as (1-based line number, cleaned line) pairs; line breaks: LF, CRLF, CR."""
    return [(no, clean_line(line)) for no, line in enumerate(_LINE_BREAK.split(text), 1)]


def stored_text(text: str, file: str, line: int | None) -> str:
    """``text`` by the character rule for what is stored (dispatch.cleantext): line breaks
    and tabs → a space, invisible characters dropped, other control characters refused
    naming the file and line."""
    try:
        return clean(text)
    except BadText as e:
        raise IngestError(file, line, e.message) from None


def is_page_number(line: str) -> bool:
    """A stray page number left by a PDF/Word export: ``7``, ``- 3 -``, ``第3页``, ``3/12``."""
    s = line.translate(_FULLWIDTH_DIGITS)
    return any(p.fullmatch(s) for p in _PAGE_NUMBER)


def ends_like_sentence(line: str) -> bool:
    return bool(_SENTENCE_END.search(line))


def is_title_like(line: str) -> bool:
    """Short (≤ TITLE_MAX_CHARS) and not ending with sentence punctuation."""
    return 0 < len(line) <= TITLE_MAX_CHARS and not ends_like_sentence(line)


def source_of(line: str) -> str | None:
    """The source named by a ``来源：…`` line, or None if the line is not one."""
    m = _SOURCE.match(line)
    if not m:
        return None
    source = m["source"]
    if m["open"] and source[-1] in "）)】]":
        source = source[:-1]
    source = source.rstrip(" 。.；;").strip()
    return source or None


# ---------------------------------------------------------------------------------------
# Masthead: 刊名, 期号, 日期

_ISSUE_NUMBER = re.compile(
    r"(?:\d{4}\s*年\s*)?(?:总\s*)?第\s*(?:\d+|[一二三四五六七八九十百零〇]+)\s*期"
)
_DATE_CN = re.compile(r"(?<!\d)(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
_DATE_ISO = re.compile(r"(?<![\d.])(\d{4})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{1,2})(?![\d.])")
_DATE_HANZI = re.compile(
    r"([〇零○Ｏ一二三四五六七八九]{4})年([一二三四五六七八九十]{1,2})月([一二三四五六七八九十]{1,3})日"
)
_BULLETIN_TITLE = re.compile(r"[^\s《》]*竞争情报快递")

_HANZI_DIGIT = {c: i for i, c in enumerate("〇一二三四五六七八九")} | {"零": 0, "○": 0, "Ｏ": 0}


def _hanzi_number(s: str) -> int:
    """一 → 1, 十 → 10, 十二 → 12, 二十 → 20, 三十一 → 31."""
    if "十" not in s:
        return _HANZI_DIGIT[s]
    tens, _, ones = s.partition("十")
    return (_HANZI_DIGIT[tens] if tens else 1) * 10 + (_HANZI_DIGIT[ones] if ones else 0)


class InvalidDate(ValueError):
    """A date-shaped string that is no date (2024年2月30日)."""


def find_date(text: str) -> date | None:
    """The first date in the text: 2024年5月10日, 2024-05-10, 2024/5/10, 2024.5.10, 二〇二四年五月十日.

    Raises InvalidDate for a date-shaped string that is not a real date."""
    s = text.translate(_FULLWIDTH_DIGITS)
    found: list[tuple[int, str, int, int, int]] = []
    for pattern in (_DATE_CN, _DATE_ISO):
        m = pattern.search(s)
        if m:
            found.append((m.start(), m.group(0), int(m[1]), int(m[2]), int(m[3])))
    m = _DATE_HANZI.search(s)
    if m:
        try:
            year = int("".join(str(_HANZI_DIGIT[c]) for c in m[1]))
            found.append((m.start(), m.group(0), year, _hanzi_number(m[2]), _hanzi_number(m[3])))
        except KeyError:
            pass
    if not found:
        return None
    _, shown, y, mo, d = min(found)
    try:
        return date(y, mo, d)
    except ValueError:
        raise InvalidDate(shown) from None


def find_issue_number(text: str) -> str | None:
    """第3期 / 2024年第3期 / 总第12期 (the first one), spaces removed, ASCII digits."""
    m = _ISSUE_NUMBER.search(text.translate(_FULLWIDTH_DIGITS))
    return re.sub(r"\s+", "", m.group(0)) if m else None


def find_bulletin_title(text: str) -> str | None:
    m = _BULLETIN_TITLE.search(text)
    return m.group(0) if m else None


# ---------------------------------------------------------------------------------------
# Events → ParsedIssue


EventKind = Literal["section", "article", "subheading", "paragraph"]


@dataclass
class Event:
    kind: EventKind
    text: str
    line: int


def heading_kind(level: int) -> EventKind:
    """What a heading of this level (1 = top) marks in the formats that have levels:
    Markdown's #, ##, ### and Word's Heading 1, 2, 3."""
    return "section" if level == 1 else "article" if level == 2 else "subheading"


@dataclass(frozen=True)
class Labels:
    """How a format's markers are named in messages to editors."""

    section: str  # what a section marker is, in "没有{section}"
    marker: str  # short form, in "第一个栏目（{marker}）之前"
    article: str  # short form of an article heading


TEXT_LABELS = Labels(section="以 ● 开头的栏目行", marker="●", article="文章标题")


@dataclass
class _Article:
    title: str
    line: int
    kind: ArticleKind
    blocks: list[tuple[BlockKind, str, int]] = field(default_factory=list)


def _quote(text: str, limit: int = 20) -> str:
    return "“" + (text if len(text) <= limit else text[:limit] + "……") + "”"


def _finish_article(art: _Article, file: str) -> ParsedArticle:
    blocks = list(art.blocks)
    source = None
    # A 来源 line is the article's source when it is its last line (or, failing that,
    # its first line, right under the title).
    for index in (-1, 0):
        if blocks and blocks[index][0] == "paragraph":
            source = source_of(blocks[index][1])
            if source is not None:
                blocks.pop(index)
                break
    # A subheading with nothing after it is not a subheading: make it a paragraph.
    end = len(blocks)
    while end and blocks[end - 1][0] == "subheading":
        end -= 1
    blocks[end:] = [("paragraph", text, line) for _, text, line in blocks[end:]]
    if not any(kind == "paragraph" for kind, _, _ in blocks):
        if art.kind == "note":
            reason = f"栏目“{art.title}”没有正文"
        else:
            reason = f"文章{_quote(art.title, 40)}只有标题，没有正文（标题下面至少要有一段正文）"
        raise IngestError(file, art.line, reason)
    return ParsedArticle(
        title=art.title,
        blocks=[Block(kind=kind, text=text) for kind, text, _ in blocks],
        source=source,
        kind=art.kind,
        line=art.line,
    )


def _read_masthead(
    lines: list[tuple[int, str]], file: str, labels: Labels
) -> tuple[str | None, str | None, date | None]:
    title: str | None = None
    number: str | None = None
    published_on: date | None = None
    for no, text in lines:
        found_number = find_issue_number(text)
        try:
            found_date = find_date(text)
        except InvalidDate as e:
            raise IngestError(file, no, f"刊头中的日期“{e}”不是有效日期") from None
        found_title = find_bulletin_title(text)
        number = number or found_number
        published_on = published_on or found_date
        title = title or found_title
        masthead_like = found_number or found_date or found_title or not ends_like_sentence(text)
        if len(text) > MASTHEAD_MAX_CHARS or not masthead_like:
            raise IngestError(
                file,
                no,
                f"第一个栏目（{labels.marker}）之前有正文：{_quote(text)}。"
                f"栏目之前只能有刊名、期号、日期等刊头信息；"
                f"如果这是一个栏目，请检查栏目标题前的 {labels.marker}",
            )
    return title, number, published_on


def build_issue(
    events: list[Event],
    *,
    file: str,
    source_format: Literal["text", "markdown", "docx"],
    labels: Labels,
) -> ParsedIssue:
    """Apply the shared rules to a parser's events; raise IngestError on the first problem.

    - paragraphs before the first section are the masthead (title, number, date);
    - an article or subheading before the first section is refused;
    - paragraphs/subheadings in a section before any article title form a note article
      titled as the section (编者的话);
    - 来源 lines become the article's source; every section and article must have text.
    """
    # Every text that is stored comes through here: the character rule, with the line.
    events = [Event(ev.kind, stored_text(ev.text, file, ev.line), ev.line) for ev in events]
    first_section = next((i for i, ev in enumerate(events) if ev.kind == "section"), None)
    if first_section is None:
        raise IngestError(file, None, f"文件中没有找到任何文章：没有{labels.section}")

    masthead: list[tuple[int, str]] = []
    for ev in events[:first_section]:
        if ev.kind == "paragraph":
            masthead.append((ev.line, ev.text))
        else:
            what = "文章" if ev.kind == "article" else "小标题"
            raise IngestError(
                file, ev.line, f"{what}{_quote(ev.text)}出现在第一个栏目（{labels.marker}）之前"
            )
    title, number, published_on = _read_masthead(masthead, file, labels)

    sections: list[ParsedSection] = []
    section: ParsedSection | None = None
    article: _Article | None = None

    def close_article() -> None:
        nonlocal article
        if article is not None and section is not None:
            section.articles.append(_finish_article(article, file))
        article = None

    def close_section() -> None:
        nonlocal section
        close_article()
        if section is not None:
            if not section.articles:
                raise IngestError(file, section.line, f"栏目“{section.title}”没有内容")
            sections.append(section)
        section = None

    for ev in events[first_section:]:
        if ev.kind == "section":
            close_section()
            if not ev.text:
                raise IngestError(file, ev.line, f"栏目标题为空（{labels.marker} 后面没有文字）")
            section = ParsedSection(title=ev.text, line=ev.line)
            continue
        assert section is not None
        if ev.kind == "article":
            close_article()
            if not ev.text:
                raise IngestError(file, ev.line, f"{labels.article}为空")
            article = _Article(title=ev.text, line=ev.line, kind="article")
            continue
        if article is None:
            article = _Article(title=section.title, line=ev.line, kind="note")
        article.blocks.append((ev.kind, ev.text, ev.line))
    close_section()

    return ParsedIssue(
        sections=sections,
        source_format=source_format,
        title=title,
        number=number,
        published_on=published_on,
    )


# ---------------------------------------------------------------------------------------
# The plain-text parser


def check_text(text: str, file: str) -> str:
    """Refuse empty, binary or overlong text; drop a leading BOM."""
    if looks_binary(text):
        raise IngestError(file, None, NOT_TEXT)
    if is_blank(text):
        raise IngestError(file, None, "文件为空")
    lines = text.count("\n") + text.count("\r") - text.count("\r\n") + 1
    if lines > ISSUE_LINES:
        raise IngestError(file, None, f"行数过多（{lines} 行，最多 {ISSUE_LINES} 行）：不像一期快报")
    return text.lstrip("\ufeff")


def text_events(lines: list[tuple[int, str]]) -> list[Event]:
    """Classify cleaned lines of the text format (see the module docstring)."""
    events: list[Event] = []
    in_section = False
    after_blank = True
    for no, line in lines:
        if not line:
            after_blank = True
            continue
        if is_page_number(line):
            continue  # invisible: neither text nor a blank line
        if line.startswith(SECTION_MARKER):
            events.append(Event("section", clean_line(line[len(SECTION_MARKER) :]), no))
            in_section, after_blank = True, True
            continue
        if not in_section or source_of(line) is not None:
            kind: EventKind = "paragraph"
        elif is_title_like(line):
            kind = "article" if after_blank else "subheading"
        else:
            kind = "paragraph"
        events.append(Event(kind, line, no))
        after_blank = False
    return events


def parse_text(text: str, file: str) -> ParsedIssue:
    """Parse an issue in the institute's plain-text format."""
    text = check_text(text, file)
    return build_issue(
        text_events(split_lines(text)), file=file, source_format="text", labels=TEXT_LABELS
    )
