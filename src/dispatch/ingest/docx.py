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
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph

from .decode import EMPTY
from .document import IngestError, ParsedIssue
from .plaintext import (
    SECTION_MARKER,
    TEXT_LABELS,
    Event,
    Labels,
    build_issue,
    clean_line,
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


def is_docx_bytes(data: bytes) -> bool:
    """A zip archive holding word/document.xml."""
    if not data.startswith(b"PK"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
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


def heading_level(paragraph: Paragraph) -> int | None:
    """0 for the Title style, 1–9 for headings, None for body text."""
    own = _outline_level(paragraph._p)
    if own is not None:
        return own
    style = paragraph.style
    for _ in range(10):  # styles are based on styles; don't trust the chain to end
        if style is None:
            break
        for name in (_norm(style.name), _norm(style.style_id)):
            if name in _TITLE_NAMES:
                return 0
            m = _HEADING_NAME.fullmatch(name)
            if m:
                return int(m[1])
        level = _outline_level(style.element)
        if level is not None:
            return level
        style = getattr(style, "base_style", None)
    return None


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
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IngestError(file, None, f"无法读取文件：{e.strerror or e}") from None
    return parse_docx_bytes(data, file)


def parse_docx_bytes(data: bytes, file: str) -> ParsedIssue:
    if not data:
        raise IngestError(file, None, EMPTY)
    try:
        document = Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
    except Exception:  # python-docx raises many kinds for a broken package
        raise IngestError(file, None, NOT_DOCX) from None

    # (paragraph number, heading level or None, text lines); tables: level None, one
    # line per row with cells joined by " | ", cells kept apart in `table_cells`.
    items: list[tuple[int, int | None, list[str]]] = []
    table_cells: dict[int, list[str]] = {}
    for no, block in enumerate(blocks, 1):
        if isinstance(block, Paragraph):
            level = heading_level(block)
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

    title = next((lines[0] for _, level, lines in items if level == 0 and lines[0]), None)
    title = title.strip("《》") if title else None

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
                kind = "section" if level == 1 else "article" if level == 2 else "subheading"
                started = started or level == 1
                events.append(Event(kind, lines[0], no))
                continue
            if no in table_cells and not started:
                lines = table_cells[no]  # masthead tables: each cell on its own
            events.extend(Event("paragraph", line, no) for line in lines if line)
        issue = build_issue(events, file=file, source_format="docx", labels=DOCX_LABELS)
    issue.title = title or issue.title
    return issue
