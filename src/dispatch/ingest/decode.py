"""Bytes → text for issue files: UTF-8 (with or without BOM), then GB18030 (a superset of
GBK/GB2312, what Chinese Windows editors save by default). UTF-16 with a BOM (Notepad's
"Unicode") is accepted too. Anything else is refused as not text."""

from __future__ import annotations

import codecs

from .document import IngestError

EMPTY = "文件为空"
NOT_TEXT = "不是文本文件（含有二进制内容，或既不是 UTF-8 也不是 GBK/GB18030 编码）"

# Characters str.strip() does not remove but that carry nothing visible.
INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060"

# C0 control characters that do appear in real text files: tab, line feed, vertical tab,
# form feed (page breaks), carriage return, and DOS end-of-file.
_ALLOWED_CONTROLS = {"\t", "\n", "\x0b", "\x0c", "\r", "\x1a"}


def is_blank(text: str) -> bool:
    """True when the text has nothing but whitespace and invisible characters."""
    return not text.strip().strip(INVISIBLE).strip()


def looks_binary(text: str) -> bool:
    """A decoded string that is really binary data: NUL, or more than 1% control chars."""
    if "\x00" in text:
        return True
    controls = sum(1 for c in text if (c < " " and c not in _ALLOWED_CONTROLS) or c == "\x7f")
    return controls > 0 and controls * 100 > len(text)


def decode_bytes(data: bytes, file: str) -> str:
    """Decode an issue file's bytes; raise IngestError for empty or non-text content.

    The result has no BOM. It may still be blank-looking only if the caller skips
    ``is_blank``; here a blank file is refused as empty.
    """
    if not data:
        raise IngestError(file, None, EMPTY)
    text: str | None = None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise IngestError(file, None, NOT_TEXT) from None
    elif b"\x00" in data:
        raise IngestError(file, None, NOT_TEXT)
    else:
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
    if text is None or looks_binary(text):
        raise IngestError(file, None, NOT_TEXT)
    text = text.lstrip("\ufeff")
    if is_blank(text):
        raise IngestError(file, None, EMPTY)
    return text
