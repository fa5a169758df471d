"""Reading issue files: their bytes within the size limit (dispatch.limits), then text by
the rules every text file follows (dispatch.textfile): UTF-8 (with or without BOM),
GB18030/GBK, UTF-16 with a BOM; one encoding per file."""

from __future__ import annotations

from pathlib import Path

from dispatch import textfile
from dispatch.cleantext import INVISIBLE
from dispatch.limits import (
    ISSUE_FILE_BYTES,
    ISSUE_TEXT_BYTES,
    FileRefused,
    read_capped,
    too_large,
)

from .document import IngestError

__all__ = ["EMPTY", "NOT_TEXT", "decode_bytes", "is_blank", "read_issue_file"]

EMPTY = "文件为空"
NOT_TEXT = "不是文本文件（含有二进制内容，或既不是 UTF-8 也不是 GBK/GB18030 编码）"


def read_issue_file(path: Path, file: str) -> bytes:
    """The bytes of an issue file, within the size limit; IngestError otherwise."""
    try:
        return read_capped(path, ISSUE_FILE_BYTES, "期刊文件")
    except FileRefused as e:
        raise IngestError(file, None, e.reason) from None


def is_blank(text: str) -> bool:
    """True when the text has nothing but whitespace and invisible characters."""
    return not text.strip().strip(INVISIBLE).strip()


def decode_bytes(data: bytes, file: str) -> str:
    """Decode an issue file's bytes; raise IngestError for empty or non-text content,
    naming the line where one line is in another encoding. The result has no BOM."""
    if not data:
        raise IngestError(file, None, EMPTY)
    if len(data) > ISSUE_TEXT_BYTES:
        raise IngestError(file, None, too_large(len(data), ISSUE_TEXT_BYTES, "文本或 Markdown 期刊文件"))
    try:
        text = textfile.decode(data)
    except textfile.Undecodable as e:
        if e.problem == "binary":
            raise IngestError(file, None, NOT_TEXT) from None
        raise IngestError(file, e.line, e.reason) from None
    if is_blank(text):
        raise IngestError(file, None, EMPTY)
    return text
