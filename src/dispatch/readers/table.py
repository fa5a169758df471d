"""Read a reader list (CSV or XLSX, as Excel and WPS write them) into raw rows.

Only reading and decoding happen here; what the cells mean is ``validate``'s business.
CSV encodings: a BOM decides (UTF-8, UTF-16 from Excel's "Unicode text"), else UTF-8,
else GB18030 (a superset of GBK, what Excel writes on Chinese Windows).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

from dispatch.readers import RawTable, ReaderImportError

SUPPORTED = (".csv", ".xlsx")

# Signatures of files that are not text tables, whatever their name says.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "这是一个 Excel 工作簿（.xlsx）或其他压缩文件，不是 CSV；请把扩展名改为 .xlsx，或在 Excel 中另存为 CSV"),
    (b"\xd0\xcf\x11\xe0", "这是旧版 Excel（.xls）或 Word 文件，不是 CSV；请在 Excel 中另存为 .xlsx 或 CSV"),
    (b"\x89PNG", "这是一张 PNG 图片，不是表格文件"),
    (b"\xff\xd8\xff", "这是一张 JPEG 图片，不是表格文件"),
    (b"GIF8", "这是一张 GIF 图片，不是表格文件"),
    (b"%PDF", "这是一个 PDF 文件，不是表格文件"),
)


class TableError(Exception):
    """The file cannot be read as a table; carries the error to report."""

    def __init__(self, error: ReaderImportError):
        super().__init__(str(error))
        self.error = error


def read_table(path: Path, display: str | None = None) -> RawTable:
    """Read one list. Raises TableError naming the file (and row, where there is one)."""
    name = display or str(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        hint = "；.xls 请在 Excel 中另存为 .xlsx" if suffix == ".xls" else ""
        raise _error(name, None, f"不支持的文件类型“{path.suffix or '（无扩展名）'}”，只接受 .csv 和 .xlsx{hint}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _error(name, None, "文件不存在") from None
    except IsADirectoryError:
        raise _error(name, None, "这是一个文件夹，不是文件") from None
    except OSError as exc:
        raise _error(name, None, f"无法读取文件：{exc.strerror or exc}") from None
    rows = _csv_rows(name, data) if suffix == ".csv" else _xlsx_rows(name, data)
    return _to_table(name, rows)


def _error(file: str, row: int | None, message: str) -> TableError:
    return TableError(ReaderImportError(file, row, None, message))


# --- CSV ---------------------------------------------------------------------------------


def decode(name: str, data: bytes) -> str:
    """Bytes of a CSV → text, by BOM, else UTF-8, else GB18030."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                       (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as exc:
                raise _error(name, _line_of(data, exc.start), f"文件以 {codec} 标记开头，但内容不是有效的 {codec} 文本") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise _error(
            name, _line_of(data, exc.start),
            "无法识别文件编码（应为 UTF-8 或 GBK/GB18030），文件可能已损坏或不是文本表格",
        ) from None


def _line_of(data: bytes, offset: int) -> int:
    return data[:offset].count(b"\n") + 1


def _csv_rows(name: str, data: bytes) -> list[tuple[int, list[str]]]:
    for magic, message in _MAGIC:
        if data.startswith(magic):
            raise _error(name, None, message)
    if not data.strip(b" \t\r\n\xef\xbb\xbf"):
        raise _error(name, None, "文件为空")
    if not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and b"\x00" in data:
        raise _error(name, None, "不是文本表格文件（含有二进制数据），请确认选择了正确的文件")
    text = decode(name, data)
    if _looks_binary(text):
        raise _error(name, None, "不是文本表格文件（含有大量控制字符，疑似二进制文件）")
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        # One record is one spreadsheet row, even when a quoted cell spans lines.
        for number, cells in enumerate(reader, start=1):
            rows.append((number, cells))
    except csv.Error as exc:
        raise _error(name, len(rows) + 1, f"CSV 格式错误：{exc}") from None
    return rows


def _looks_binary(text: str) -> bool:
    sample = text[:4096]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\r\n")
    return controls > max(2, len(sample) // 100)


# --- XLSX --------------------------------------------------------------------------------


def _xlsx_rows(name: str, data: bytes) -> list[tuple[int, list[str]]]:
    from openpyxl import load_workbook

    if not data:
        raise _error(name, None, "文件为空")
    if not data.startswith(b"PK\x03\x04"):
        for magic, message in _MAGIC:
            if data.startswith(magic):
                raise _error(name, None, message.replace("不是 CSV", "不是 .xlsx"))
        raise _error(name, None, "不是有效的 Excel 工作簿（.xlsx）文件；若是 CSV，请把扩展名改为 .csv")
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise _error(name, None, f"不是有效的 Excel 工作簿（.xlsx）文件：{exc}") from None
    except Exception as exc:  # openpyxl raises a zoo of errors on damaged workbooks
        raise _error(name, None, f"无法读取 Excel 工作簿：{type(exc).__name__}: {exc}") from None
    try:
        if not wb.worksheets:
            raise _error(name, None, "工作簿中没有工作表")
        ws = wb.worksheets[0]
        rows = [
            (number, [_cell_text(v) for v in values])
            for number, values in enumerate(
                ws.iter_rows(min_row=1, min_col=1, values_only=True), start=1
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
    return all(not c.strip() for c in cells)


def _to_table(name: str, rows: list[tuple[int, list[str]]]) -> RawTable:
    filled = [(n, cells) for n, cells in rows if not _blank(cells)]
    if not filled:
        raise _error(name, None, "文件为空（没有表头，也没有数据行）")
    header_row, header = filled[0]
    width = len(header)
    while width and not header[width - 1].strip():
        width -= 1
    data = []
    for number, cells in filled[1:]:
        if len(cells) < width:
            cells = cells + [""] * (width - len(cells))
        data.append((number, cells))  # extra cells past the header stay: validate reports them
    return RawTable(file=name, header_row=header_row, header=header[:width], rows=data)
