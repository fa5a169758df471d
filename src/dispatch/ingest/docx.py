"""Word ``.docx`` issues, read with python-docx.

Paragraph styles carry the structure: 标题 1 / Heading 1 → section, 标题 2 / Heading 2 →
article, 标题 3 and deeper → subheading, the 标题 / Title style → the issue's title, every
other non-empty paragraph → a paragraph. Styles derived from a heading style, and a
paragraph's own outline level (大纲级别), count as that heading. A document that uses no
heading styles but whose paragraphs start with ● is read with the plain-text rules, each
Word paragraph being one line.

"Line" numbers in messages are paragraph numbers: every paragraph of the body counts,
empty ones too, and a table counts as one.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

from docx import Document
from docx.document import Document as DocumentObject
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph

from dispatch import ooxml
from dispatch.limits import DOCX, DOCX_ELEMENTS, DOCX_PARAGRAPHS

from .decode import EMPTY, read_issue_file
from .document import IngestError, ParsedIssue
from .plaintext import (
    SECTION_MARKER,
    TEXT_LABELS,
    Event,
    Labels,
    build_issue,
    clean_line,
    heading_kind,
    stored_text,
    text_events,
)

DOCX_LABELS = Labels(
    section="使用“标题 1”样式（Heading 1）的栏目标题",
    marker="标题 1",
    article="文章标题（标题 2）",
)

NOT_DOCX = "不是有效的 Word（.docx）文件，无法打开"

_TITLE_NAMES = {"title", "标题"}
_HEADING_NAME = re.compile(r"(?:heading|标题)([1-9])")
_W_P = "http://schemas.openxmlformats.org/wordprocessingml/2006/main p"


def is_docx_bytes(data: bytes) -> bool:
    """A zip archive holding word/document.xml (or one too large to tell: the caller's
    parse then refuses it with the limit it breaks)."""
    if not data.startswith(b"PK"):
        return False
    try:
        return "word/document.xml" in ooxml.open_index(data, DOCX).namelist()
    except ooxml.PackageRefused:
        return True
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _norm(name: str | None) -> str:
    return re.sub(r"\s+", "", name or "").lower()


def _outline_level(element: Any) -> int | None:
    """w:outlineLvl of a paragraph's or style's properties, as a heading level (1–9)."""
    ppr = element.find(qn("w:pPr")) if element is not None else None
    lvl = ppr.find(qn("w:outlineLvl")) if ppr is not None else None
    if lvl is None:
        return None
    try:
        value = int(lvl.get(qn("w:val")))
    except (TypeError, ValueError):
        return None
    return value + 1 if 0 <= value <= 8 else None


class StyleLevels:
    """The heading level of each paragraph style, read once from styles.xml.

    0 for the Title style, 1–9 for headings (by name or id, or by outline level, through
    the styles a style is based on), None for body text. python-docx looks a paragraph's
    style up with an XPath query over every style, for every paragraph: with thousands
    of paragraphs or styles that is minutes.
    """

    def __init__(self, document: DocumentObject):
        self._info: dict[str, tuple[str, str | None, int | None]] = {}
        self._default: str | None = None
        for style in document.styles.element.findall(qn("w:style")):
            if style.get(qn("w:type"), "paragraph") != "paragraph":
                continue
            style_id = style.get(qn("w:styleId")) or ""
            name = style.find(qn("w:name"))
            based_on = style.find(qn("w:basedOn"))
            self._info.setdefault(style_id, (
                name.get(qn("w:val"), "") if name is not None else "",
                based_on.get(qn("w:val")) if based_on is not None else None,
                _outline_level(style),
            ))
            if self._default is None and style.get(qn("w:default")) in ("1", "true", "on"):
                self._default = style_id
        self._levels: dict[str | None, int | None] = {}

    def _resolve(self, style_id: str | None) -> int | None:
        for _ in range(10):  # styles are based on styles; don't trust the chain to end
            if style_id is None or style_id not in self._info:
                return None
            name, based_on, outline = self._info[style_id]
            for key in (_norm(name), _norm(style_id)):
                if key in _TITLE_NAMES:
                    return 0
                m = _HEADING_NAME.fullmatch(key)
                if m:
                    return int(m[1])
            if outline is not None:
                return outline
            style_id = based_on
        return None

    def of(self, paragraph: Paragraph) -> int | None:
        """The paragraph's heading level: its own outline level, else its style's."""
        own = _outline_level(paragraph._p)
        if own is not None:
            return own
        style_id = paragraph._p.style
        if style_id not in self._info:
            style_id = self._default  # as Word: an unknown style is the default one
        if style_id not in self._levels:
            self._levels[style_id] = self._resolve(style_id)
        return self._levels[style_id]


class _Counter:
    """Counts a Word package's paragraphs and XML elements as expat streams them."""

    def __init__(self) -> None:
        self.paragraphs = 0
        self.elements = 0

    def __call__(self, name: str, attrs: dict[str, str]) -> None:
        self.elements += 1
        if name == _W_P:
            self.paragraphs += 1
            if self.paragraphs > DOCX_PARAGRAPHS:
                raise ooxml.PackageRefused(
                    f"段落过多（超过 {DOCX_PARAGRAPHS} 段，表格、页眉、页脚中的段落也计算在内）："
                    "不像一期快报；请检查文件是否含有大量空段落"
                )
        if self.elements > DOCX_ELEMENTS:
            raise ooxml.PackageRefused(
                f"内容过于复杂（XML 元素超过 {DOCX_ELEMENTS} 个）：不像一期快报"
            )


def _one_line(text: str) -> str:
    """A heading's text: soft line breaks and tabs inside it joined."""
    parts = [clean_line(p) for p in re.split(r"[\n\t]", text)]
    out = ""
    for part in filter(None, parts):
        out += (" " if out and out[-1].isascii() and part[0].isascii() else "") + part
    return out


def _cells(table: Table) -> list[list[str]]:
    rows = []
    for row in table.rows:
        seen: set[int] = set()
        cells = []
        for cell in row.cells:  # a merged cell is repeated: keep it once
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            text = _one_line(cell.text)
            if text:
                cells.append(text)
        rows.append(cells)
    return rows


def parse_docx(path: Path | str, file: str | None = None) -> ParsedIssue:
    """Parse a Word .docx issue. ``file`` names it in messages (default: the path)."""
    path = Path(path)
    file = str(path) if file is None else file
    return parse_docx_bytes(read_issue_file(path, file), file)


def parse_docx_bytes(data: bytes, file: str) -> ParsedIssue:
    if not data:
        raise IngestError(file, None, EMPTY)
    # Limits first: python-docx reads the whole package into memory and parses it.
    try:
        ooxml.open_package(data, DOCX, "Word 文件", _Counter())
    except ooxml.PackageRefused as e:
        raise IngestError(file, None, e.reason) from None
    except (zipfile.BadZipFile, OSError, ValueError):
        raise IngestError(file, None, NOT_DOCX) from None
    try:
        document = Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
        levels = StyleLevels(document)
    except Exception:  # python-docx raises many kinds for a broken package
        raise IngestError(file, None, NOT_DOCX) from None

    # (paragraph number, heading level or None, text lines); tables: level None, one
    # line per row with cells joined by " | ", cells kept apart in `table_cells`.
    items: list[tuple[int, int | None, list[str]]] = []
    table_cells: dict[int, list[str]] = {}
    for no, block in enumerate(blocks, 1):
        if isinstance(block, Paragraph):
            level = levels.of(block)
            if level is None:
                lines = [clean_line(t) for t in re.split(r"\n", block.text.replace("\t", " "))]
            else:
                lines = [_one_line(block.text)]
                if not lines[0]:
                    level, lines = None, [""]  # an empty heading paragraph is just a gap
            items.append((no, level, lines))
        elif isinstance(block, Table):
            rows = _cells(block)
            items.append((no, None, [" | ".join(r) for r in rows]))
            table_cells[no] = [c for r in rows for c in r]

    if not any(line for _, _, lines in items for line in lines):
        raise IngestError(file, None, EMPTY)

    title_at = next(((no, lines[0]) for no, level, lines in items if level == 0 and lines[0]), None)
    title = stored_text(title_at[1], file, title_at[0]).strip("《》") if title_at else None

    uses_headings = any(level in (1, 2) for _, level, _ in items)
    if not uses_headings and any(
        line.startswith(SECTION_MARKER) for _, _, lines in items for line in lines
    ):
        text_lines = [(no, line) for no, _, lines in items for line in lines or [""]]
        issue = build_issue(
            text_events(text_lines), file=file, source_format="docx", labels=TEXT_LABELS
        )
    else:
        events: list[Event] = []
        started = False
        for no, level, lines in items:
            if level is not None and level >= 1:
                started = started or level == 1
                events.append(Event(heading_kind(level), lines[0], no))
                continue
            if no in table_cells and not started:
                lines = table_cells[no]  # masthead tables: each cell on its own
            events.extend(Event("paragraph", line, no) for line in lines if line)
        issue = build_issue(events, file=file, source_format="docx", labels=DOCX_LABELS)
    issue.title = title or issue.title
    return issue
