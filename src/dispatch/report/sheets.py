"""Tables written for Excel: CSV in UTF-8 with a BOM and CRLF line ends (what Excel on
Chinese Windows opens right, as the reader lists: dispatch.readers.export), or XLSX.

The same bytes are offered as downloads by the staff web (csv_bytes, xlsx_bytes).
A file is written whole or not at all: into a temporary file beside it, then renamed over
it, so a full disk or a crash never leaves half a file under the name staff open. No cell
is ever a formula: text is neutralised as the reader lists' exports do.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from dispatch.errors import Refused, os_reason
from dispatch.readers import neutralise
from dispatch.readers.export import FORMATS, write_csv

if TYPE_CHECKING:
    from openpyxl import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

Cell = str | int | float | None


@dataclass(frozen=True)
class Block:
    """A table: its header and rows; a CSV of several blocks has an empty line between."""

    header: Sequence[str]
    rows: Sequence[Sequence[Cell]]


def _text(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, str):
        return neutralise(cell)
    return str(cell)


def csv_bytes(blocks: Iterable[Block]) -> bytes:
    buf = io.StringIO(newline="")
    for i, block in enumerate(blocks):
        if i:
            buf.write("\r\n")
        write_csv(([_text(c) for c in row] for row in block.rows), buf,
                  header=list(block.header))
    return buf.getvalue().encode("utf-8-sig")


def write_xlsx(path: Path, title: str, block: Block, widths: Sequence[int] = ()) -> None:
    _workbook(title, block, widths).save(path)


def xlsx_bytes(title: str, block: Block, widths: Sequence[int] = ()) -> bytes:
    """The workbook `write_xlsx` writes, as bytes (a download of the staff web)."""
    buf = io.BytesIO()
    _workbook(title, block, widths).save(buf)
    return buf.getvalue()


def _workbook(title: str, block: Block, widths: Sequence[int]) -> Workbook:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=False)
    ws = cast("Worksheet", wb.active)  # a new workbook's one sheet
    ws.title = title
    ws.append(list(block.header))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in block.rows:
        ws.append([_text(c) if isinstance(c, str) else c for c in row])
    # Text stays text: openpyxl would write a value starting with "=" as a formula, and
    # Excel would read digits as a number.
    for cells in ws.iter_rows(min_row=2):
        for cell in cells:
            if isinstance(cell.value, str):
                cell.number_format = "@"
                cell.data_type = "s"
    for i, width in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = "A2"
    return wb


def check_target(path: Path, formats: tuple[str, ...] = FORMATS) -> str:
    """The format (".csv", ".xlsx") `path` asks for; refuses any other and a folder."""
    suffix = path.suffix.lower()
    if suffix not in formats:
        names = "或".join(f"“{f}”" for f in formats)
        kinds = " 或 ".join(f[1:].upper() for f in formats)
        raise Refused(
            f"{path}：只能写成 {kinds} 文件（扩展名{names}），不能是“{path.suffix or path.name}”"
        )
    if path.is_dir():
        raise Refused(f"{path}：这是一个文件夹，请给出文件名（如 反馈{formats[0]}）")
    return suffix


def write_whole(path: Path, write: Callable[[Path], None]) -> None:
    """`write` fills a temporary file in `path`'s folder, which then replaces `path`."""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=".", suffix=path.suffix, dir=path.parent)
    except OSError as exc:
        raise Refused(f"{path}：无法写入（{os_reason(exc)}）") from exc
    tmp = Path(tmp_name)
    try:
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise Refused(f"{path}：无法写入（{os_reason(exc)}）") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _umask() -> int:
    # mkstemp makes the file 0600; the file should get what an ordinary write would.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_csv(path: Path, blocks: Iterable[Block]) -> None:
    data = csv_bytes(blocks)

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    write_whole(path, write)


def save(path: Path, title: str, block: Block, widths: Sequence[int] = ()) -> None:
    """`block` as CSV or XLSX, by `path`'s extension (refused if it is neither)."""
    if check_target(path) == ".csv":
        save_csv(path, [block])
    else:
        write_whole(path, lambda tmp: write_xlsx(tmp, title, block, widths))
