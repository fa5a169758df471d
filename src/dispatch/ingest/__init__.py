"""Ingest: an issue file → ``ParsedIssue`` (sections of articles), or ``IngestError``.

``parse_file`` picks the parser by extension (.txt/.text, .md/.markdown, .docx) and
otherwise by content: a zip holding word/document.xml is Word; text with ``#`` heading
lines (or front matter) is Markdown; text with ● lines is the institute's plain text.
``parse_bytes`` does the same for a file's bytes and name (an upload to the staff web).
The rules editors follow are in docs/ingest-rules.md.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath
from typing import Any, Literal

from dispatch.limits import ISSUE_FILE_BYTES, too_large

from .decode import EMPTY, NOT_TEXT, decode_bytes, read_issue_file
from .document import (
    Block,
    IngestError,
    ParsedArticle,
    ParsedIssue,
    ParsedSection,
)
from .docx import is_docx_bytes, parse_docx, parse_docx_bytes
from .markdown import parse_markdown
from .plaintext import SECTION_MARKER, parse_text

__all__ = [
    "Block",
    "IngestError",
    "ParsedArticle",
    "ParsedIssue",
    "ParsedSection",
    "parse_bytes",
    "parse_docx",
    "parse_file",
    "parse_markdown",
    "parse_text",
    "sniff_text_format",
]

TEXT_EXTENSIONS = {".txt", ".text"}
MARKDOWN_EXTENSIONS = {".md", ".markdown"}
DOCX_EXTENSIONS = {".docx"}

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .doc, .wps, .xls: old Office files
OLD_WORD = "旧版 Word（.doc）或 WPS 文件不能直接读取：请在 Word/WPS 中“另存为” .docx 后再导入"
SUPPORTED = "支持的格式：纯文本（.txt）、Markdown（.md）、Word（.docx）"

_MARKDOWN_HEADING = re.compile(r"^#{1,6}(?!#)\s*\S", re.MULTILINE)


def sniff_text_format(text: str) -> Literal["markdown", "text"] | None:
    """Markdown if it opens with front matter or has ``#`` heading lines; else plain
    text if a line starts with ●; else None."""
    body = text.lstrip("\ufeff")
    if body.startswith("---") or _MARKDOWN_HEADING.search(body):
        return "markdown"
    if any(line.strip().startswith(SECTION_MARKER) for line in body.splitlines()):
        return "text"
    return None


def parse_file(path: Path | str) -> ParsedIssue:
    """Parse an issue file; raise IngestError (file, line, reason) if it can't be used."""
    path = Path(path)
    file = str(path)
    return parse_bytes(read_issue_file(path, file), file)


def parse_bytes(data: bytes, file: str) -> ParsedIssue:
    """Parse an issue file's bytes; ``file`` is its name (its extension picks the parser,
    as in parse_file) and names it in messages. The caller keeps to ISSUE_FILE_BYTES."""
    return _within_columns(_parse_bytes(data, file), file)


def _within_columns(parsed: ParsedIssue, file: str) -> ParsedIssue:
    """Refuse a text longer than the table keeps it: PostgreSQL would refuse to store it
    (SQLite would keep it whole), so the file is refused alike on both, where it says so."""
    from dispatch.db.models import Article, Issue, Section  # the columns' lengths

    def check(text: str | None, column: Any, what: str, line: int | None) -> None:
        most = column.type.length
        if text is not None and len(text) > most:
            raise IngestError(file, line or None, f"{what}过长（{len(text)} 个字，最多 {most} 个）")

    check(parsed.title, Issue.title, "期刊标题", None)
    check(parsed.number, Issue.number, "期号", None)
    for s in parsed.sections:
        check(s.title, Section.title, f"栏目标题“{s.title[:20]}…”", s.line)
        for a in s.articles:
            check(a.title, Article.title, f"文章标题“{a.title[:20]}…”", a.line)
            check(a.source, Article.source, f"文章“{a.title[:20]}”的来源", a.line)
    return parsed


def _parse_bytes(data: bytes, file: str) -> ParsedIssue:
    if len(data) > ISSUE_FILE_BYTES:
        raise IngestError(file, None, too_large(len(data), ISSUE_FILE_BYTES, "期刊文件"))
    if not data:
        raise IngestError(file, None, EMPTY)

    ext = PurePath(file).suffix.lower()
    if ext in TEXT_EXTENSIONS | MARKDOWN_EXTENSIONS:
        try:
            text = decode_bytes(data, file)
        except IngestError as e:
            if e.reason == NOT_TEXT and is_docx_bytes(data):
                raise IngestError(
                    file, None, f"{NOT_TEXT}：看起来是 Word 文件，请把扩展名改为 .docx"
                ) from None
            raise
        if ext in TEXT_EXTENSIONS:
            return parse_text(text, file)
        return parse_markdown(text, file)
    if data.startswith(_OLE_MAGIC) or ext in {".doc", ".wps"}:
        raise IngestError(file, None, OLD_WORD)
    if ext in DOCX_EXTENSIONS:
        return parse_docx_bytes(data, file)

    # Unknown or missing extension: look at the content.
    what = f"扩展名 {ext}" if ext else "没有扩展名"
    if is_docx_bytes(data):
        return parse_docx_bytes(data, file)
    try:
        text = decode_bytes(data, file)
    except IngestError as e:
        if e.reason != NOT_TEXT:
            raise
        raise IngestError(
            file,
            None,
            f"不支持的文件类型（{what}）：不是文本文件，也不是 Word .docx 文件。{SUPPORTED}",
        ) from None
    kind = sniff_text_format(text)
    if kind == "markdown":
        return parse_markdown(text, file)
    if kind == "text":
        return parse_text(text, file)
    raise IngestError(
        file,
        None,
        f"不支持的文件类型（{what}）：既没有 # 标题行，也没有 ● 栏目行，无法判断格式。{SUPPORTED}",
    )
