"""Bytes of a text file staff made → text: issue files and CSV reader lists alike.

The encodings Chinese Windows and Office write: UTF-8 (with or without BOM), GB18030 (a
superset of GBK/GB2312, what Notepad and Excel save by default there), UTF-16 with a BOM
(Notepad's and Excel's "Unicode"). A file is read in one encoding as a whole: a UTF-8
file with one line pasted from a GBK file is refused naming that line, rather than read
as GB18030 and stored as mojibake. Binary data (images, archives, UTF-16 without BOM) is
refused as not text.

Line numbers count line ends as LF, CRLF or CR, as the parsers and Excel do.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import Literal

# C0 controls that do appear in real text files: tab, line feed, vertical tab, form feed
# (page breaks), carriage return, and DOS end-of-file. Any other C0 control or DEL counts
# towards "binary".
_TEXT_CONTROLS = "\t\n\x0b\x0c\r\x1a"
_BINARY_CONTROLS = "".join(chr(c) for c in range(32) if chr(c) not in _TEXT_CONTROLS) + "\x7f"
_BINARY_CONTROL_BYTES = _BINARY_CONTROLS.encode("ascii")
_BINARY_CONTROL_RE = re.compile(f"[{re.escape(_BINARY_CONTROLS)}]")

_CHUNK = 1 << 20
_LINE_END = re.compile(rb"\r\n|\r|\n")
_LINE_END_TEXT = re.compile(r"\r\n|\r|\n")
_LINE_WITH_END = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
# Two characters from U+0800 up (three bytes in UTF-8: all of CJK) in a line that decodes
# as UTF-8 mean the line is UTF-8: GBK text almost never forms such sequences by chance.
_UTF8_EVIDENCE = re.compile("[\u0800-\U0010ffff].*[\u0800-\U0010ffff]")

Problem = Literal["binary", "encoding", "mixed", "bom"]


class Undecodable(ValueError):
    """Bytes that are not text in an accepted encoding.

    ``problem``: "binary" (no line: the file is not text at all), "encoding" (a line in no
    accepted encoding), "mixed" (UTF-8 elsewhere, not this line), "bom" (a BOM says one
    encoding, this line is in another). ``line`` is 1-based; ``utf8_line`` a line that
    is UTF-8, for "mixed".
    """

    def __init__(self, problem: Problem, line: int | None = None, utf8_line: int | None = None,
                 encoding: str = ""):
        super().__init__(f"{problem} at line {line}")
        self.problem = problem
        self.line = line
        self.utf8_line = utf8_line
        self.encoding = encoding

    @property
    def reason(self) -> str:
        """What is wrong, for the user; the caller names the file and ``line``."""
        if self.problem == "mixed":
            return (f"这一行不是 UTF-8 编码（可能是从 GBK 编码的文件粘贴来的），而文件的其他部分"
                    f"是 UTF-8（如第 {self.utf8_line} 行）：请把整个文件用同一种编码保存（建议 UTF-8）")
        if self.problem == "bom":
            return (f"文件开头的标记（BOM）表明是 {self.encoding} 编码，但这一行不是有效的 "
                    f"{self.encoding} 文本（可能混入了其他编码的文字）")
        return "不是文本文件，或这一行已损坏：既不是 UTF-8 也不是 GBK/GB18030 编码"


def looks_binary(data: bytes | str) -> bool:
    """More than 1 % (at least 3) control characters that text files don't have.

    A NUL or an ESC or two in a text file is not binary: it is refused later with its
    line by the character rule (dispatch.cleantext).
    """
    controls = 0
    for at in range(0, len(data), _CHUNK):  # in chunks: translate() copies what it keeps
        chunk = data[at:at + _CHUNK]
        if isinstance(chunk, bytes):
            controls += len(chunk) - len(chunk.translate(None, _BINARY_CONTROL_BYTES))
        else:
            # A regex, not translate(): str.translate is slow on CJK text (0.4 s for a
            # 14 MB reader list against 0.03 s).
            controls += len(_BINARY_CONTROL_RE.findall(chunk))
    return controls > max(2, len(data) // 100)


def line_of(data: bytes, offset: int) -> int:
    """The 1-based line of the byte at ``offset``."""
    return sum(1 for _ in _LINE_END.finditer(data, 0, offset)) + 1


def decode(data: bytes) -> str:
    """The text of a file, without BOM; raises Undecodable. Empty bytes give ""."""
    for bom, codec, name in ((codecs.BOM_UTF8, "utf-8", "UTF-8"),
                             (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
                             (codecs.BOM_UTF16_BE, "utf-16", "UTF-16")):
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                raise Undecodable("bom", _bom_line(data, exc.start, codec), encoding=name) from None
            if looks_binary(text):
                raise Undecodable("binary")
            return text.lstrip("\ufeff")
    if looks_binary(data):
        raise Undecodable("binary")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    first_bad, evidence = _scan_lines(data)
    if evidence is not None:
        raise Undecodable("mixed", first_bad, evidence)
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise Undecodable("encoding", line_of(data, exc.start)) from None


def _bom_line(data: bytes, offset: int, codec: str) -> int:
    if codec == "utf-16":
        head = data[:offset - offset % 2].decode("utf-16", errors="replace")
        return len(_LINE_END_TEXT.findall(head)) + 1
    return line_of(data, offset)


def _scan_lines(data: bytes) -> tuple[int, int | None]:
    """(first line that isn't UTF-8, first line that is UTF-8 by evidence, or None)."""
    first_bad = 0
    evidence: int | None = None
    for no, line in enumerate(_lines(data), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            first_bad = first_bad or no
        else:
            if evidence is None and _UTF8_EVIDENCE.search(text):
                evidence = no
        if first_bad and evidence is not None:
            break
    return first_bad, evidence


def _lines(data: bytes) -> Iterator[bytes]:
    """The lines of ``data``, one at a time (a list of them would double the memory)."""
    start = 0
    for m in _LINE_END.finditer(data):
        yield data[start:m.start()]
        start = m.end()
    yield data[start:]


def iter_lines(text: str) -> Iterator[str]:
    """The lines of ``text`` with their line ends, one at a time: what the csv module
    reads. (io.StringIO would copy the text at four bytes a character first.)"""
    for m in _LINE_WITH_END.finditer(text):
        yield m.group()
