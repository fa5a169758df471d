"""Hostile and malformed files, built as the user reports describe them. Shared by
tests/test_hostile_input.py and bench/hostile.py (which adds tests/ to sys.path).

Each builder returns the file's bytes; nothing here knows how dispatch refuses them.
"""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Callable
from pathlib import Path

from docx import Document
from openpyxl import Workbook

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
HANZI = "许昌竞争情报快递未来产业新质生产力科技创新生物医药智能装备新材料节能环保发制品"

# A small valid issue, used as the body of the Word files below.
ISSUE_TEXT = "●行业动态\n未来产业是培育新质生产力的重要引擎\n未来产业代表着新一轮科技革命的重要方向。\n"
READER_HEADER = "姓名,单位,职务,分组,邮箱,企业微信账号,关注产业,接收方式\n"


def write(path: Path, content: bytes | int) -> Path:
    """`content` into `path`; an int makes a sparse file of that many zero bytes (a huge
    file that costs no disk)."""
    if isinstance(content, int):
        with open(path, "wb") as f:
            f.truncate(content)
    else:
        path.write_bytes(content)
    return path


def _zip(parts: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in parts.items():
            z.writestr(name, data)
    return buf.getvalue()


def _parts(package: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(package)) as z:
        return {name: z.read(name) for name in z.namelist()}


# --- Word --------------------------------------------------------------------------------


def docx(paragraphs: list[tuple[str | None, str]] | None = None) -> bytes:
    """A real Word file made by python-docx: (style, text) paragraphs."""
    document = Document()
    for style, text in paragraphs or [("Heading 1", "行业动态"), ("Heading 2", "文章标题"),
                                      (None, "正文。")]:
        document.add_paragraph(text, style=style)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def docx_with_body(body: bytes, prolog: bytes = b"") -> bytes:
    """A real Word file whose document.xml body is replaced by ``body``."""
    parts = _parts(docx())
    parts["word/document.xml"] = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + prolog
        + f'<w:document xmlns:w="{W_NS}"><w:body>'.encode() + body + b"</w:body></w:document>"
    )
    return _zip(parts)


def docx_empty_paragraphs(megabytes: int = 8) -> bytes:
    """The 48 KB Word file holding 8 MB of empty <w:p/> (python-docx: 10+ minutes)."""
    heading = ('<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>行业动态</w:t>'
               "</w:r></w:p>").encode()
    return docx_with_body(heading + b"<w:p/>" * (megabytes * 1024 * 1024 // 6))


def docx_many_paragraphs(count: int = 20_001, seed: int = 1) -> bytes:
    """Paragraphs of varied text, so the file compresses like a real one."""
    rng = random.Random(seed)
    body = "".join(
        f"<w:p><w:r><w:t>{''.join(rng.choices(HANZI, k=8))}</w:t></w:r></w:p>"
        for _ in range(count)
    )
    return docx_with_body(body.encode())


def docx_many_elements(runs: int = 260_000, seed: int = 2) -> bytes:
    """One paragraph of 260,000 runs (a run and its text: two elements each)."""
    rng = random.Random(seed)
    body = "<w:p>" + "".join(
        f"<w:r><w:t>{''.join(rng.choices(HANZI, k=2))}</w:t></w:r>" for _ in range(runs)
    ) + "</w:p>"
    return docx_with_body(body.encode())


BILLION_LAUGHS = (
    b'<!DOCTYPE w:document [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]>\n"
)


def docx_billion_laughs() -> bytes:
    body = b"<w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>"
    return docx_with_body(body, BILLION_LAUGHS)


def docx_external_entity() -> bytes:
    prolog = b'<!DOCTYPE w:document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    return docx_with_body(b"<w:p><w:r><w:t>&xxe;</w:t></w:r></w:p>", prolog)


def many_entries(package: bytes, count: int = 3_000) -> bytes:
    """A real package with ``count`` extra empty entries."""
    parts = _parts(package)
    parts.update({f"customXml/item{i}.bin": b"" for i in range(count)})
    return _zip(parts)


def lying_sizes(package: bytes, entries: int = 30, declared: int = 20 * 1024 * 1024) -> bytes:
    """Entries whose central directory declares ``declared`` bytes each (ratio 50): the
    total is what a reader trusting the index would allocate."""
    rng = random.Random(3)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in _parts(package).items():
            z.writestr(name, data)
        for i in range(entries):
            z.writestr(f"word/media/image{i}.bin", rng.randbytes(declared // 50))
            z.getinfo(f"word/media/image{i}.bin").file_size = declared
    return buf.getvalue()


# --- Excel -------------------------------------------------------------------------------


def _workbook_bytes(build: Callable[[Workbook], None]) -> bytes:
    wb = Workbook()
    build(wb)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def xlsx_far_cell() -> bytes:
    """The 4.9 KB workbook with one value in XFD1048576 (openpyxl: 62 s, 7.9 GB)."""
    def build(wb: Workbook) -> None:
        wb.active["XFD1048576"] = "x"
    return _workbook_bytes(build)


def xlsx_list(rows: list[list[str]], far_formatting: bool = False) -> bytes:
    """A normal list; ``far_formatting``: as if a whole area had been formatted, so the
    sheet declares it (``<dimension>``) though it holds no values there."""
    def build(wb: Workbook) -> None:
        ws = wb.active
        for row in rows:
            ws.append(row)
        if far_formatting:
            ws["H1048576"].number_format = "@"
    return _workbook_bytes(build)


def xlsx_lying_dimension() -> bytes:
    """A sheet that declares A1:B2 but holds a value in XFD1048576."""
    parts = _parts(xlsx_far_cell())
    sheet = parts["xl/worksheets/sheet1.xml"]
    start = sheet.index(b"<dimension ")
    end = sheet.index(b"/>", start) + 2
    parts["xl/worksheets/sheet1.xml"] = sheet[:start] + b'<dimension ref="A1:B2"/>' + sheet[end:]
    return _zip(parts)


def xlsx_many_rows(count: int) -> bytes:
    """Numbered rows of one value each, written by hand (openpyxl would take seconds)."""
    parts = _parts(_workbook_bytes(lambda wb: None))
    rows = "".join(f'<row r="{i}"><c r="A{i}"><v>{i}</v></c></row>' for i in range(1, count + 1))
    parts["xl/worksheets/sheet1.xml"] = (
        '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns='
        f'"http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{rows}'
        "</sheetData></worksheet>"
    ).encode()
    return _zip(parts)


def xlsx_formatted_cells(rows: int = 100_000, columns: int = 26, far_value: bool = False) -> bytes:
    """Millions of empty cells that carry only formatting, as a select-all-and-format
    leaves them: no value anywhere, but every one is parsed (``far_value``: then one
    value in XFD1048576)."""
    parts = _parts(_workbook_bytes(lambda wb: wb.active.append(["姓名"])))
    letters = [chr(65 + i // 26 - 1) + chr(65 + i % 26) if i >= 26 else chr(65 + i)
               for i in range(columns)]
    template = "".join(f'<c r="{col}#" s="1"/>' for col in letters)
    body = "".join(f'<row r="{i}">' + template.replace("#", str(i)) + "</row>"
                   for i in range(1, rows + 1))
    if far_value:
        body += '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'
    parts["xl/worksheets/sheet1.xml"] = (
        '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns='
        f'"http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{body}'
        "</sheetData></worksheet>"
    ).encode()
    return _zip(parts)


def xlsx_large_shared_strings(declared: int = 59 * 1024 * 1024) -> bytes:
    """A shared-strings part declaring 59 MB (compressed 100 times less): openpyxl reads
    that part whole into memory, before any row."""
    package = _workbook_bytes(lambda wb: wb.active.append(["姓名"]))
    rng = random.Random(4)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in _parts(package).items():
            z.writestr(name, data)
        z.writestr("xl/sharedStrings.xml", rng.randbytes(declared // 99))
        z.getinfo("xl/sharedStrings.xml").file_size = declared
    return buf.getvalue()


def xlsx_zip_bomb(megabytes: int = 150) -> bytes:
    """A sheet padded with whitespace: megabytes of XML in a few hundred kilobytes."""
    parts = _parts(_workbook_bytes(lambda wb: wb.active.append(["姓名"])))
    sheet = parts["xl/worksheets/sheet1.xml"]
    at = sheet.index(b"<sheetData>")
    parts["xl/worksheets/sheet1.xml"] = sheet[:at] + b" " * (megabytes * 1024 * 1024) + sheet[at:]
    return _zip(parts)


def xlsx_billion_laughs() -> bytes:
    parts = _parts(_workbook_bytes(lambda wb: wb.active.append(["姓名"])))
    parts["xl/workbook.xml"] = BILLION_LAUGHS + parts["xl/workbook.xml"]
    return _zip(parts)


def xlsx_external_entity() -> bytes:
    """The name cell reads a file of the machine that imports the list."""
    parts = _parts(_workbook_bytes(lambda wb: wb.active.append(["姓名", "&xxe;"])))
    sheet = parts["xl/worksheets/sheet1.xml"].replace(b"&amp;xxe;", b"&xxe;")
    prolog = b'<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    parts["xl/worksheets/sheet1.xml"] = prolog + sheet
    return _zip(parts)


# --- text --------------------------------------------------------------------------------


def mixed_encoding(lines: list[str], gbk_line: int) -> bytes:
    """UTF-8 lines (CRLF), except line ``gbk_line`` (1-based), saved in GBK."""
    return b"\r\n".join(
        line.encode("gbk" if no == gbk_line else "utf-8") for no, line in enumerate(lines, 1)
    ) + b"\r\n"


def reader_lines(count: int) -> list[str]:
    return [READER_HEADER.strip()] + [
        f"读者{i},许昌市某单位,科长,市直部门,reader{i}@example.gov.cn,,新材料," for i in range(count)
    ]


def issue_lines(paragraphs: int) -> list[str]:
    return ["●行业动态", "未来产业是培育新质生产力的重要引擎"] + [
        f"第{i}段：未来产业代表着新一轮科技革命的重要方向。" for i in range(paragraphs)
    ]
