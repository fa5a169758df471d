"""Readers → a list in the import format (CSV as Excel opens it, or XLSX).

What is exported imports back unchanged: same columns, 状态 included, industries joined
with 、 (or 全部), channels in words. No cell is ever a formula (OWASP "CSV injection"): a
value starting with = + - @ TAB CR gets a leading ' in both formats (``neutralise``; the
import takes it off), and every .xlsx cell is written as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, TextIO

from dispatch.errors import Refused, os_reason
from dispatch.industries import describe
from dispatch.readers import COLUMNS, channel_words, neutralise, status_word

if TYPE_CHECKING:
    from openpyxl.cell.cell import Cell

    from dispatch.readers.apply import ReaderState

FORMATS = (".csv", ".xlsx")


def reader_cells(s: ReaderState) -> list[str]:
    """The reader's cells as the lists write them (not neutralised)."""
    return [
        s.name,
        s.organization,
        s.position,
        s.group,
        s.email or "",
        s.wecom_userid or "",
        describe(s.follows_all, s.industries),
        channel_words(s.channels),
        status_word(s.status),
    ]


def reader_row(s: ReaderState) -> list[str]:
    """The reader's cells as an export writes them (neutralised)."""
    return [neutralise(v) for v in reader_cells(s)]


def write_csv(rows: Iterable[list[str]], out: TextIO, header: Iterable[str] = COLUMNS.values()) -> None:
    """CRLF line ends: what Excel on Chinese Windows opens right."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)


def csv_bytes(states: Iterable[ReaderState]) -> bytes:
    """UTF-8 with BOM and CRLF line ends: what Excel on Chinese Windows opens right."""
    buf = io.StringIO(newline="")
    write_csv((reader_row(s) for s in states), buf)
    return buf.getvalue().encode("utf-8-sig")


def write_xlsx(states: Iterable[ReaderState], path: Path | IO[bytes]) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    # Write-only: rows are streamed out as they come, not kept as cell objects (10,000
    # readers in about two thirds of the time, and flat memory).
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("读者名单")
    widths = (10, 24, 16, 10, 28, 18, 28, 16, 6)
    for column, width in zip("ABCDEFGHI", widths, strict=True):
        ws.column_dimensions[column].width = width
    ws.freeze_panes = "A2"
    bold = Font(bold=True)

    def header(value: str) -> Cell:
        cell = WriteOnlyCell(ws, value=value)
        cell.font = bold
        return cell

    def text(value: str) -> Cell:
        # Every cell is text: Excel must not turn a numeric WeChat Work id into 1.38E+10,
        # and openpyxl would otherwise write a value starting with "=" as a formula.
        cell = WriteOnlyCell(ws, value=value)
        cell.number_format = "@"
        if value is not None:
            cell.data_type = "s"
        return cell

    ws.append([header(v) for v in COLUMNS.values()])
    for s in states:
        ws.append([text(v) for v in reader_row(s)])
    wb.save(path)


def xlsx_bytes(states: Iterable[ReaderState]) -> bytes:
    """The workbook an export writes, as bytes (a download)."""
    buf = io.BytesIO()
    write_xlsx(states, buf)
    return buf.getvalue()


def export(states: Iterable[ReaderState], path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise Refused(f"{path}：只能导出为 CSV 或 XLSX 文件（扩展名“.csv”或“.xlsx”），不能是“{path.suffix or path.name}”")
    if path.is_dir():
        raise Refused(f"{path}：这是一个文件夹，请给出文件名（如 名单.csv）")
    try:
        if suffix == ".csv":
            path.write_bytes(csv_bytes(states))
        else:
            write_xlsx(states, path)
    except OSError as exc:
        raise Refused(f"{path}：无法写入（{os_reason(exc)}）") from exc
