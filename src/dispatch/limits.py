"""How much of a file dispatch will read, and the one way to read a file within a cap.

Every file the service reads from staff or from the outside goes through ``read_capped``
first: its size is checked with ``fstat`` before a byte is read, and the read itself is
bounded (a FIFO or ``/dev/zero`` reports no size). What a parser may then spend on the
content is bounded by the other limits here, checked by the callers before the parser
(python-docx, openpyxl, the csv module) is handed the bytes. The README's "Input limits"
table lists them; change them there too.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from dispatch.errors import os_reason

MB = 1024 * 1024

# Whole files, checked before parsing. Decoded text takes up to four bytes a character
# in Python (one emoji is enough), so text files get less room than zip packages.
ISSUE_FILE_BYTES = 20 * MB  # .docx with its pictures; any issue file
ISSUE_TEXT_BYTES = 5 * MB  # .txt / .md; a year of issues as text is under 2 MB
READER_LIST_BYTES = 20 * MB  # .csv / .xlsx; 100,000 readers as CSV are about 12 MB
EML_BYTES = 25 * MB  # one message (replies, bounces); what common mail servers accept

# Text and Markdown issues: lines (blank ones too). An issue has a few hundred.
ISSUE_LINES = 50_000
# Markdown front matter: three keys; YAML is parsed in pure Python, so keep it small.
FRONT_MATTER_LINES = 100


@dataclass(frozen=True)
class ZipLimits:
    """What an Office Open XML package (.docx, .xlsx: a zip) may hold."""

    entries: int
    total_bytes: int  # declared uncompressed size of all entries together
    part_bytes: int  # of one entry that the library reads whole into memory
    ratio: int  # uncompressed / compressed, per entry of at least ratio_floor bytes
    ratio_floor: int = 1 * MB
    streamed: str = ""  # content type of the parts the library streams instead


# Images don't compress, XML compresses 5–30 times; a zip bomb's entries compress
# hundreds of times. python-docx keeps every part in memory; openpyxl (read-only) streams
# the worksheets and reads the rest (shared strings, styles) whole.
DOCX = ZipLimits(entries=2_000, total_bytes=50 * MB, part_bytes=50 * MB, ratio=100)
XLSX = ZipLimits(
    entries=2_000, total_bytes=200 * MB, part_bytes=50 * MB, ratio=100,
    streamed="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml",
)

# Word: paragraphs (a table cell's paragraphs count) and XML elements of the body. A
# 100-page issue has about 3,000 paragraphs and 100,000 elements.
DOCX_PARAGRAPHS = 20_000
DOCX_ELEMENTS = 500_000


@dataclass(frozen=True)
class TableLimits:
    """What one reader list (CSV, or the first sheet of a workbook) may span."""

    rows: int
    columns: int
    cells: int  # rows × columns of the area holding values
    elements: int  # XML elements of an .xlsx sheet, empty formatted cells included


# 100,000 readers (and a header, title rows, blank rows) of 20 columns. A sheet's extent is measured at about 1.3 million
# elements a second (a Python call each): 2 million (100,000 rows of 9 cells and their
# values) keeps every refusal well under 2 s.
READER_TABLE = TableLimits(rows=120_000, columns=100, cells=2_400_000, elements=2_000_000)


class FileRefused(Exception):
    """A file that can't be read or is over its cap; ``reason`` is for the user (Chinese)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def size_text(n: int) -> str:
    """1.5 MB, 20 MB, 830 KB: how sizes are written in messages."""
    if n >= MB:
        value = n / MB
        return f"{value:.0f} MB" if value >= 10 or value.is_integer() else f"{value:.1f} MB"
    return f"{max(1, round(n / 1024))} KB"


def too_large(size: int, cap: int, what: str) -> str:
    return f"文件过大（{size_text(size)}）：{what}最大 {size_text(cap)}"


def read_capped(path: Path | str, cap: int, what: str) -> bytes:
    """The file's bytes, or FileRefused if it is missing, not a regular file, or over ``cap``.

    ``what`` names the kind of file in the message (期刊文件, 读者名单, 邮件).
    """
    try:
        # stat before open: opening a FIFO would wait for a writer.
        _check(os.stat(path), cap, what)
        with open(path, "rb") as f:
            _check(os.fstat(f.fileno()), cap, what)
            # The file may grow between fstat and read: never read more than cap + 1.
            data = f.read(cap + 1)
    except FileNotFoundError:
        raise FileRefused("文件不存在") from None
    except IsADirectoryError:
        raise FileRefused("这是一个文件夹，不是文件") from None
    except OSError as e:
        raise FileRefused(f"无法读取文件：{os_reason(e)}") from None
    if len(data) > cap:
        raise FileRefused(too_large(len(data), cap, what))
    return data


def _check(info: os.stat_result, cap: int, what: str) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise FileRefused("这是一个文件夹，不是文件")
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused("不是普通文件（设备、管道或套接字），无法读取")
    if info.st_size > cap:
        raise FileRefused(too_large(info.st_size, cap, what))
