"""Read a reader list (CSV or XLSX, as Excel and WPS write them) into raw rows.

Only reading and decoding happen here; what the cells mean is ``validate``'s business.
CSV encodings are those of every text file (dispatch.textfile): a BOM decides (UTF-8,
UTF-16 from Excel's "Unicode text"), else UTF-8, else GB18030 (a superset of GBK, what
Excel writes on Chinese Windows); one encoding per file. Sizes are bounded before any
parser runs (dispatch.limits), and a cell an export neutralised (``'=…``) reads back as
the value it was.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import logging
import posixpath
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from dispatch import ooxml, textfile
from dispatch.limits import (
    READER_LIST_BYTES,
    READER_TABLE,
    XLSX,
    FileRefused,
    TableLimits,
    read_capped,
)
from dispatch.readers import NEUTRALISER, ListProblem, RawTable, unneutralise

SUPPORTED = (".csv", ".xlsx")
_NOT_A_WORKBOOK = "不是有效的 Excel 工作簿（XLSX）文件，或文件已损坏；请用 Excel 打开后重新保存"

log = logging.getLogger(__name__)

# Signatures of files that are not text tables, whatever their name says.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "这是一个 Excel 工作簿（XLSX）或其他压缩文件，不是 CSV；请把扩展名改为“.xlsx”，或在 Excel 中另存为 CSV"),
    (b"\xd0\xcf\x11\xe0", "这是旧版 Excel（XLS）或 Word 文件，不是 CSV；请在 Excel 中另存为 XLSX 或 CSV"),
    (b"\x89PNG", "这是一张 PNG 图片，不是表格文件"),
    (b"\xff\xd8\xff", "这是一张 JPEG 图片，不是表格文件"),
    (b"GIF8", "这是一张 GIF 图片，不是表格文件"),
    (b"%PDF", "这是一个 PDF 文件，不是表格文件"),
)


class TableError(Exception):
    """The file cannot be read as a table; carries the error to report."""

    def __init__(self, error: ListProblem):
        super().__init__(str(error))
        self.error = error


def read_table(path: Path, display: str | None = None) -> RawTable:
    """Read one list. Raises TableError naming the file (and row, where there is one)."""
    name = display or str(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        hint = "；旧版 Excel 文件（XLS）请在 Excel 中另存为 XLSX" if suffix == ".xls" else ""
        raise _error(name, None, f"不支持的文件类型“{path.suffix or '无扩展名'}”：只接受 CSV 和 XLSX 文件{hint}")
    try:
        data = read_capped(path, READER_LIST_BYTES, "读者名单")
    except FileRefused as exc:
        raise _error(name, None, exc.reason) from None
    rows = _csv_rows(name, data) if suffix == ".csv" else _xlsx_rows(name, data)
    return _to_table(name, rows)


def _error(file: str, row: int | None, message: str) -> TableError:
    return TableError(ListProblem(file, row, None, message))


def _over(limits: TableLimits) -> str:
    return f"名单最多 {limits.rows} 行、{limits.columns} 列、{limits.cells} 个单元格"


# --- CSV ---------------------------------------------------------------------------------

_BLANK = re.compile(rb"[ \t\r\n\xef\xbb\xbf]*\Z")
# A physical line with more delimiters than this, or a record (a spreadsheet row, whose
# quoted cells may hold line breaks) over more lines, is no reader list: caught before
# the csv module builds a row of millions of cells.
_LINE_DELIMITERS = 1_000
_RECORD_LINES = 100
_TOO_MANY_LINES = (f"此行的单元格中含有过多换行（跨越超过 {_RECORD_LINES} 行），"
                   "可能缺少结尾的英文双引号")


def _csv_rows(name: str, data: bytes) -> list[tuple[int, list[str]]]:
    for magic, message in _MAGIC:
        if data.startswith(magic):
            raise _error(name, None, message)
    if _BLANK.match(data):  # not data.strip(): that copies the whole file to find one byte
        raise _error(name, None, "文件为空")
    try:
        text = textfile.decode(data)
    except textfile.Undecodable as exc:
        if exc.problem == "binary":
            raise _error(name, None, "不是文本表格文件（含有二进制数据或大量控制字符），请确认选择了正确的文件") from None
        raise _error(name, _row_of_line(name, data, exc.line or 1), exc.reason) from None
    if text.count("\n") + text.count("\r") - text.count("\r\n") >= READER_TABLE.rows:
        # Maybe too many rows: count them before keeping any (kept, rows take many
        # times the memory of their text).
        for _ in _records(name, text):
            pass
    return [
        # Only a row with a neutraliser in it can hold a cell an export neutralised.
        (number, [unneutralise(c) for c in cells] if NEUTRALISER in "".join(cells) else cells)
        for number, cells, _ in _records(name, text)
    ]


def _delimiter(text: str) -> str:
    first_line = text[: text.find("\n")] if "\n" in text else text
    return "\t" if "\t" in first_line and "," not in first_line else ","


def _records(name: str, text: str,
             limits: TableLimits = READER_TABLE) -> Iterator[tuple[int, list[str], int]]:
    """(spreadsheet row, cells, last physical line) of each record, within ``limits``."""
    delimiter = _delimiter(text)
    state = {"record": 0, "lines": 0}

    def guarded() -> Iterator[str]:
        for line in textfile.iter_lines(text):
            state["lines"] += 1
            row = state["record"] + 1
            if line.count(delimiter) > _LINE_DELIMITERS:
                raise _error(name, row, f"此行的分隔符过多（超过 {_LINE_DELIMITERS} 个）：{_over(limits)}")
            if state["lines"] > _RECORD_LINES:
                raise _error(name, row, _TOO_MANY_LINES)
            yield line

    # No line longer than the delimiters allowed on one (nearly every list): no line can
    # hold too many, and the lines need no look of their own, only each record's span.
    short_lines = max(map(len, text.split("\n")), default=0) <= _LINE_DELIMITERS
    reader = csv.reader(textfile.iter_lines(text) if short_lines else guarded(),
                        delimiter=delimiter)
    width = last_line = 0
    try:
        # One record is one spreadsheet row, even when a quoted cell spans lines.
        for number, cells in enumerate(reader, start=1):
            state["record"], state["lines"] = number, 0
            if reader.line_num - last_line > _RECORD_LINES:
                raise _error(name, number, _TOO_MANY_LINES)
            last_line = reader.line_num
            if number > limits.rows:
                raise _error(name, number, f"名单行数过多（超过 {limits.rows} 行）：{_over(limits)}")
            if len(cells) > limits.columns and any(c.strip() for c in cells[limits.columns:]):
                raise _error(name, number, f"此行有 {len(cells)} 列：{_over(limits)}")
            width = max(width, min(len(cells), limits.columns))
            if number * width > limits.cells:
                raise _error(name, number, f"名单过大（{number} 行 × {width} 列）：{_over(limits)}")
            yield number, cells, reader.line_num
    except csv.Error as exc:
        log.debug("%s: csv error: %s", name, exc)
        reason = (f"单元格内容过长（超过 {csv.field_size_limit()} 个字符），可能缺少结尾的英文双引号"
                  if "field limit" in str(exc) else "CSV 格式错误，无法读取此行")
        raise _error(name, state["record"] + 1, reason) from None


def _row_of_line(name: str, data: bytes, line: int) -> int:
    """The spreadsheet row holding physical ``line`` (they differ after a cell with line
    breaks), read from the file decoded leniently; the line itself if that fails."""
    try:
        text = data.decode("utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
                           else "utf-8", errors="replace")
        for number, _, last_line in _records(name, text):
            if last_line >= line:
                return number
    except TableError:
        pass
    return line


# --- XLSX --------------------------------------------------------------------------------

_SHEET_NS = ("http://schemas.openxmlformats.org/spreadsheetml/2006/main",
             "http://purl.oclc.org/ooxml/spreadsheetml/main")
_ROW, _CELL, _VALUES = ({f"{ns} {local}" for ns in _SHEET_NS} for local in ("row", "c", "v"))
_VALUES |= {f"{ns} is" for ns in _SHEET_NS}
_LETTERS = re.compile(r"[A-Z]{1,3}")


class _Extent:
    """The area of a sheet that holds values, measured as expat streams the sheet.

    Empty cells that only carry formatting don't count (a whole column formatted in Excel
    declares a million rows), and neither does the sheet's own ``<dimension>``: openpyxl
    pads every row up to that area, which for one value in XFD1048576 is 17 billion cells.
    """

    def __init__(self, name: str, limits: TableLimits):
        self.name = name
        self.limits = limits
        self.rows = self.columns = 0
        self._row = self._column = 0
        self._cell: dict[str, str] | None = None  # attributes of the open <c>
        self._columns: dict[str, int] = {}

    # Called for every element of the sheet (millions): the common cases come first, and
    # the work is inline rather than in helpers.
    def __call__(self, tag: str, attrs: dict[str, str]) -> None:
        if tag in _CELL:
            self._column += 1
            self._cell = attrs
        elif tag in _VALUES:
            cell, self._cell = self._cell, None
            if cell is None:
                return
            row, ref = self._row, cell.get("r")
            if ref:
                letters = ref.rstrip("0123456789")
                column = self._columns.get(letters)
                if column is None and _LETTERS.fullmatch(letters):
                    column = self._columns[letters] = _column_number(letters)
                digits = ref[len(letters):]
                if column is not None and digits.isdigit() and len(digits) <= 9:
                    self._column, row = column, int(digits)
            if row > self.rows:
                self.rows = row
            if self._column > self.columns:
                self.columns = self._column
            if self.rows > self.limits.rows or self.columns > self.limits.columns or (
                self.rows * self.columns > self.limits.cells
            ):
                self._refuse(row, self._column)
        elif tag in _ROW:
            r = attrs.get("r")
            self._row = int(r) if r and r.isdigit() and len(r) <= 9 else self._row + 1
            self._column = 0

    def _refuse(self, row: int, column: int) -> None:
        limits = self.limits
        if row > limits.rows or column > limits.columns:
            ref = f"{_column_letters(column)}{row}"
            raise _error(self.name, row, f"表格范围过大：单元格 {ref}（第 {row} 行、第 {column} 列）有内容，"
                         f"{_over(limits)}；请删除多余的内容")
        raise _error(self.name, row, f"表格范围过大（有内容的区域达 {self.rows} 行 × "
                     f"{self.columns} 列）：{_over(limits)}")


def _column_number(letters: str) -> int:
    """A → 1, Z → 26, AA → 27, XFD → 16384."""
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def _column_letters(n: int) -> str:
    letters = ""
    while n > 0:
        n, r = divmod(n - 1, 26)
        letters = chr(65 + r) + letters
    return letters


_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships Relationship"


def _relationships(archive: zipfile.ZipFile, part: str) -> list[tuple[str, str, str]]:
    """(id, type, target part) of a part's relationships ("" for the package's)."""
    folder, _, base = part.rpartition("/")
    rels = f"{folder}/_rels/{base}.rels" if folder else f"_rels/{base}.rels"
    found: list[tuple[str, str, str]] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        if tag == _PKG_REL and attrs.get("TargetMode") != "External":
            target = attrs.get("Target", "")
            target = target.lstrip("/") if target.startswith("/") else posixpath.normpath(
                posixpath.join(folder, target))
            found.append((attrs.get("Id", ""), attrs.get("Type", ""), target))

    if rels in archive.namelist():
        ooxml.scan_xml(archive, rels, "Excel 工作簿", start)
    return found


def _first_sheet(archive: zipfile.ZipFile) -> str | None:
    """The part of the workbook's first worksheet (openpyxl's ``worksheets[0]``)."""
    book = next((t for _, kind, t in _relationships(archive, "") if kind.endswith("/officeDocument")),
                None)
    if book is None or book not in archive.namelist():
        return None
    sheets = {i: t for i, kind, t in _relationships(archive, book) if kind.endswith("/worksheet")}
    order: list[str] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        if tag.endswith(" sheet"):
            order.append(attrs.get(f"{_REL_NS} id", ""))

    ooxml.scan_xml(archive, book, "Excel 工作簿", start)
    return next((sheets[i] for i in order if sheets.get(i) in archive.namelist()), None)


def _xlsx_rows(name: str, data: bytes) -> list[tuple[int, list[str]]]:
    from openpyxl import load_workbook

    if not data:
        raise _error(name, None, "文件为空")
    if not data.startswith(b"PK\x03\x04"):
        for magic, message in _MAGIC:
            if data.startswith(magic):
                raise _error(name, None, message.replace("不是 CSV", "不是 XLSX"))
        raise _error(name, None, "不是有效的 Excel 工作簿（XLSX）文件；若是 CSV，请把扩展名改为“.csv”")
    # Limits first: the zip, its XML, then the sheet's extent, before openpyxl reads cells.
    try:
        archive = ooxml.open_package(data, XLSX, "Excel 工作簿")
    except ooxml.PackageRefused as exc:
        raise _error(name, None, exc.reason) from None
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        log.debug("%s: not a workbook: %r", name, exc)
        raise _error(name, None, _NOT_A_WORKBOOK) from None
    # The extent before openpyxl: it reads the whole sheet once already when opening a
    # workbook whose sheet has no <dimension>.
    extent = _Extent(name, READER_TABLE)
    try:
        sheet = _first_sheet(archive)
        if sheet is not None:
            # Counted first at C speed: the extent scan costs a Python call per element.
            if ooxml.count_elements(archive, sheet, READER_TABLE.elements) > READER_TABLE.elements:
                raise _error(name, None, f"工作表过大（超过 {READER_TABLE.elements} 个 XML 元素，"
                             f"空白但设置了格式的单元格也计算在内）：{_over(READER_TABLE)}")
            ooxml.scan_xml(archive, sheet, "Excel 工作簿", extent)
    except ooxml.PackageRefused as exc:
        raise _error(name, None, exc.reason) from None
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises a zoo of errors on damaged workbooks
        # Its messages are English and about its insides: the log has them, staff get ours.
        log.debug("%s: openpyxl: %r", name, exc)
        raise _error(name, None, _NOT_A_WORKBOOK) from None
    try:
        if not wb.worksheets:
            raise _error(name, None, "工作簿中没有工作表")
        ws = wb.worksheets[0]
        if not extent.rows:
            return []
        rows = [
            (number, [unneutralise(_cell_text(v)) for v in values])
            for number, values in enumerate(
                ws.iter_rows(min_row=1, min_col=1, max_row=extent.rows, max_col=extent.columns,
                             values_only=True),
                start=1,
            )
        ]
    finally:
        wb.close()
    return rows


def _cell_text(value: object) -> str:
    """A cell's value as the text staff typed: ids typed as numbers lose no '.0'."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M") if value.time() != dt.time() else value.strftime("%Y-%m-%d")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


# --- both --------------------------------------------------------------------------------


def _blank(cells: list[str]) -> bool:
    return not "".join(cells).strip()


def _to_table(name: str, rows: list[tuple[int, list[str]]]) -> RawTable:
    header: list[str] | None = None
    header_row = width = 0
    data = []
    for number, cells in rows:
        if _blank(cells):
            continue
        if header is None:
            header_row, header, width = number, cells, len(cells)
            while width and not header[width - 1].strip():
                width -= 1
            continue
        if len(cells) < width:
            cells.extend([""] * (width - len(cells)))
        data.append((number, cells))  # extra cells past the header stay: validate reports them
    if header is None:
        raise _error(name, None, "文件为空（没有表头，也没有数据行）")
    return RawTable(file=name, header_row=header_row, header=header[:width], rows=data)
