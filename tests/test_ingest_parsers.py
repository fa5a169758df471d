"""Ingest parsers: what an editor's file turns into, and how a bad file is refused.

Real files in tmp_path, no mocks. The sample is the institute's real issue."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from docx import Document
from docx.enum.style import WD_STYLE_TYPE

from dispatch.ingest import (
    IngestError,
    ParsedArticle,
    ParsedIssue,
    parse_docx,
    parse_file,
    parse_markdown,
    parse_text,
)

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "issue-sample.txt"

SAMPLE_STRUCTURE = [
    ("编者的话", [("编者的话", "note")]),
    ("行业动态", [("未来产业是培育新质生产力的重要引擎", "article")]),
    ("行业趋势", [("让知识产权更好护航前沿科技创新", "article")]),
    ("行业报告", [("上海国际科技创新中心：从“建框架”向“强功能”跃升", "article")]),
]
REPORT_SUBHEADINGS = [
    "超前布局提升战略科技力量",
    "瞄准风口培育高端产业集群",
    "不断改革完善创新生态环境",
]


def structure(issue: ParsedIssue) -> list[tuple[str, list[tuple[str, str]]]]:
    return [(s.title, [(a.title, a.kind) for a in s.articles]) for s in issue.sections]


def subheadings(article: ParsedArticle) -> list[str]:
    return [b.text for b in article.blocks if b.kind == "subheading"]


def paragraphs(article: ParsedArticle) -> list[str]:
    return [b.text for b in article.blocks if b.kind == "paragraph"]


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def refusal(path: Path) -> IngestError:
    with pytest.raises(IngestError) as caught:
        parse_file(path)
    return caught.value


def assert_where(err: IngestError, path: Path, line: int | None) -> None:
    """The message names the file (as given) and the line, like `file:12: reason`."""
    assert err.file == str(path)
    assert err.line == line
    where = f"{path}:{line}: " if line else f"{path}: "
    assert str(err).startswith(where), str(err)


# --- the sample ---------------------------------------------------------------------------


def test_sample_gives_four_sections_as_the_editor_wrote_them():
    issue = parse_file(SAMPLE)

    assert issue.source_format == "text"
    assert structure(issue) == SAMPLE_STRUCTURE
    assert [s.line for s in issue.sections] == [1, 4, 18, 35]
    assert [a.line for a in issue.articles] == [3, 6, 19, 36]
    assert (issue.title, issue.number, issue.published_on) == (None, None, None)

    note, trends, ip, report = issue.articles
    # 编者的话: one untitled paragraph, opening every digest.
    assert paragraphs(note) == [paragraphs(note)[0]]
    assert paragraphs(note)[0].startswith("许昌市科学技术情报研究所是隶属于市科技局")
    # Articles: every line of the body is a paragraph, no subheadings except in the report.
    assert subheadings(trends) == [] and subheadings(ip) == []
    assert len(paragraphs(trends)) == 11 and len(paragraphs(ip)) == 14
    assert paragraphs(trends)[0].startswith("未来产业代表着新一轮科技革命")
    # A short line that ends with 。 is a sentence, not a subheading.
    assert "新质生产力与未来产业的内涵高度统一。" in paragraphs(trends)
    assert paragraphs(ip)[0] == "因为一枚小小的人工耳蜗，腾讯在全球布局了几十件专利。"
    assert subheadings(report) == REPORT_SUBHEADINGS
    assert len(paragraphs(report)) == 25
    kinds = [b.kind for b in report.blocks]
    assert kinds.index("subheading") == 2  # two opening paragraphs, then the first subheading
    # The stray page numbers `1` and `7` at the end are gone.
    assert paragraphs(report)[-1].startswith("浦江奔流，东方潮涌。")
    assert paragraphs(report)[-1].endswith("勇毅前行。")
    all_text = [b.text for a in issue.articles for b in a.blocks]
    assert "1" not in all_text and "7" not in all_text
    assert all(t == t.strip() and t for t in all_text)
    assert all(a.source is None for a in issue.articles)


def test_sample_in_gb18030_gives_the_same_issue(tmp_path):
    text = SAMPLE.read_text(encoding="utf-8")
    gb = write(tmp_path, "issue-gb.txt", text, "gb18030")
    assert parse_file(gb) == parse_file(SAMPLE)


def test_sample_with_bom_and_windows_line_ends_gives_the_same_issue(tmp_path):
    text = SAMPLE.read_text(encoding="utf-8")
    bom = tmp_path / "issue-bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    assert parse_file(bom) == parse_file(SAMPLE)


def test_gbk_file_from_a_chinese_windows_editor(tmp_path):
    path = write(tmp_path, "gbk.txt", "●行业动态\n标题\n正文第一段。\n来源：河南日报\n", "gbk")
    issue = parse_file(path)
    assert structure(issue) == [("行业动态", [("标题", "article")])]
    assert issue.articles[0].source == "河南日报"


# --- plain-text rules ---------------------------------------------------------------------


def test_blank_line_then_title_starts_a_new_article_with_its_source(tmp_path):
    path = write(
        tmp_path,
        "issue.txt",
        "●行业动态\n"
        "\n"
        "许昌发制品出口创新高\n"  # 3
        "一季度全市发制品出口额同比增长12%。\n"
        "来源：许昌日报\n"
        "\n"
        "\u3000\u3000新能源汽车产业链加速集聚\u3000\n"  # 7: full-width indentation is stripped
        "小标题也可以\n"  # 8: title-like right after a title line: a subheading
        "多家配套企业落户许昌。\n"
        "（来源：河南省工业和信息化厅）\n"
        "\n"
        "●行业趋势\n"  # 12
        "  第三篇\n"
        "正文。\n",
    )
    issue = parse_file(path)
    assert structure(issue) == [
        (
            "行业动态",
            [("许昌发制品出口创新高", "article"), ("新能源汽车产业链加速集聚", "article")],
        ),
        ("行业趋势", [("第三篇", "article")]),
    ]
    first, second, third = issue.articles
    assert [a.line for a in issue.articles] == [3, 7, 13]
    assert first.source == "许昌日报" and paragraphs(first) == [
        "一季度全市发制品出口额同比增长12%。"
    ]
    assert second.source == "河南省工业和信息化厅"
    assert [(b.kind, b.text) for b in second.blocks] == [
        ("subheading", "小标题也可以"),
        ("paragraph", "多家配套企业落户许昌。"),
    ]
    assert third.source is None


def test_a_source_line_in_the_middle_stays_text_and_a_short_last_line_is_a_paragraph(tmp_path):
    path = write(
        tmp_path,
        "issue.txt",
        "●行业动态\n标题\n来源：甲报\n正文。\n结语不加标点\n",
    )
    article = parse_file(path).articles[0]
    # A 来源 line right under the title is the source too.
    assert article.source == "甲报"
    # A title-like line with nothing after it is not a subheading.
    assert [(b.kind, b.text) for b in article.blocks] == [
        ("paragraph", "正文。"),
        ("paragraph", "结语不加标点"),
    ]


def test_masthead_gives_title_number_and_date(tmp_path):
    path = write(
        tmp_path,
        "issue.txt",
        "《许昌竞争情报快递》\n"
        "2024年第3期（总第12期）\n"
        "许昌市科学技术情报研究所编　　2024年5月10日\n"
        "\n"
        "●编者的话\n"
        "本期关注未来产业。\n",
    )
    issue = parse_file(path)
    assert issue.title == "许昌竞争情报快递"
    assert issue.number == "2024年第3期"
    assert issue.published_on == date(2024, 5, 10)
    assert structure(issue) == [("编者的话", [("编者的话", "note")])]


@pytest.mark.parametrize(
    "masthead, number, published_on",
    [
        ("第3期  2024-05-10", "第3期", date(2024, 5, 10)),
        ("总第12期\n二〇二四年五月十日", "总第12期", date(2024, 5, 10)),
        ("许昌竞争情报快递", None, None),
    ],
)
def test_masthead_forms(tmp_path, masthead, number, published_on):
    path = write(tmp_path, "issue.txt", f"{masthead}\n●栏目\n文章\n正文。\n")
    issue = parse_file(path)
    assert (issue.number, issue.published_on) == (number, published_on)


def test_page_numbers_anywhere_are_dropped(tmp_path):
    path = write(
        tmp_path,
        "issue.txt",
        "●行业动态\n标题\n第一段。\n- 3 -\n第二段。\n—4—\n第5页\n5/12\n１２\n第三段。\n",
    )
    article = parse_file(path).articles[0]
    assert paragraphs(article) == ["第一段。", "第二段。", "第三段。"]
    assert subheadings(article) == []


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"  \n\r\n\xe3\x80\x80\n"])
def test_empty_file_is_refused(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    err = refusal(path)
    assert_where(err, path, None)
    assert err.reason == "文件为空"


def test_binary_file_is_refused_as_not_text(tmp_path):
    path = tmp_path / "scan.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    err = refusal(path)
    assert_where(err, path, None)
    assert "不是文本文件" in err.reason


def test_undecodable_bytes_are_refused_as_not_text(tmp_path):
    path = tmp_path / "issue.md"
    path.write_bytes(b"# \xff\xfe\xfd\xff\xff\n")
    err = refusal(path)
    assert "不是文本文件" in err.reason


def test_unknown_extension_is_sniffed_or_refused(tmp_path):
    # Sniffed: ● lines → plain text, # lines → Markdown.
    assert parse_file(write(tmp_path, "issue", "●栏目\n标题\n正文。\n")).source_format == "text"
    md = write(tmp_path, "issue.dat", "# 栏目\n## 标题\n正文。\n")
    assert parse_file(md).source_format == "markdown"
    # Not sniffable.
    pdf = tmp_path / "issue.pdf"
    pdf.write_bytes(b"%PDF-1.7\n\x00\x01\x02\x03binary")
    err = refusal(pdf)
    assert_where(err, pdf, None)
    assert err.reason.startswith("不支持的文件类型（扩展名 .pdf）")
    prose = write(tmp_path, "notes.dat", "只是一些文字。\n")
    err = refusal(prose)
    assert_where(err, prose, None)
    assert err.reason.startswith("不支持的文件类型（扩展名 .dat）")


def test_old_word_file_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "issue.doc"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)
    err = refusal(path)
    assert_where(err, path, None)
    assert ".docx" in err.reason and "另存为" in err.reason


def test_text_without_sections_has_no_article(tmp_path):
    path = write(tmp_path, "prose.txt", "这是一段没有栏目标记的文字。\n")
    err = refusal(path)
    assert_where(err, path, None)
    assert err.reason.startswith("文件中没有找到任何文章")
    assert "●" in err.reason


def test_text_before_the_first_section_is_refused_with_its_line(tmp_path):
    path = write(
        tmp_path,
        "issue.txt",
        "许昌竞争情报快递\n\n本期共有三篇文章，请各位领导审阅。\n●栏目\n标题\n正文。\n",
    )
    err = refusal(path)
    assert_where(err, path, 3)
    assert err.reason.startswith("第一个栏目（●）之前有正文")


def test_article_title_without_body_is_refused_with_its_line(tmp_path):
    path = write(
        tmp_path,
        "issue.txt",
        "●行业动态\n第一篇\n正文。\n\n第二篇\n来源：新华社\n\n●行业趋势\n标题\n正文。\n",
    )
    err = refusal(path)
    assert_where(err, path, 5)
    assert "第二篇" in err.reason and "没有正文" in err.reason


def test_section_without_content_is_refused_naming_it(tmp_path):
    path = write(
        tmp_path,
        "issue.txt",
        "●行业动态\n标题\n正文。\n●行业趋势\n\n1\n\n●行业报告\n标题\n正文。\n",
    )
    err = refusal(path)
    assert_where(err, path, 4)
    assert err.reason == "栏目“行业趋势”没有内容"


def test_section_marker_without_title_is_refused(tmp_path):
    path = write(tmp_path, "issue.txt", "●\n标题\n正文。\n")
    err = refusal(path)
    assert_where(err, path, 1)
    assert "栏目标题为空" in err.reason


def test_masthead_date_that_does_not_exist_is_refused(tmp_path):
    path = write(tmp_path, "issue.txt", "2024年2月30日\n●栏目\n标题\n正文。\n")
    err = refusal(path)
    assert_where(err, path, 1)
    assert "2024年2月30日" in err.reason


def test_parse_text_checks_its_input_too():
    with pytest.raises(IngestError, match="文件为空"):
        parse_text("", "pasted.txt")
    with pytest.raises(IngestError, match="不是文本文件"):
        parse_text("●栏目\x00\x01\x02\x03", "pasted.txt")
    with pytest.raises(IngestError, match=r"pasted.txt:2: .*U\+0000"):  # a stray NUL: its line
        parse_text("●栏目\n标\x00题\n正文。", "pasted.txt")


# --- Markdown -----------------------------------------------------------------------------

MARKDOWN_ISSUE = """\
---
number: 3
title: 许昌竞争情报快递
date: 2024-05-10
editor: 张三
---

# 编者的话

本期聚焦**未来产业**，
请各位读者指正。

# 行业动态

## 未来产业是培育新质生产力的*重要引擎*

未来产业代表着新一轮科技革命的
重要方向，详见[工信部网站](https://www.miit.gov.cn)。

![配图](https://example.com/a.png)

### 完善发展生态

推动 `AI` 与 GPU
computing 的融合。

*来源：新华社*

## 第二篇

- 第一点
- 第二点

来源：人民日报
"""


def test_markdown_with_front_matter(tmp_path):
    path = write(tmp_path, "issue.md", MARKDOWN_ISSUE)
    issue = parse_file(path)
    assert issue.source_format == "markdown"
    assert (issue.number, issue.title, issue.published_on) == (
        "第3期",
        "许昌竞争情报快递",
        date(2024, 5, 10),
    )
    assert structure(issue) == [
        ("编者的话", [("编者的话", "note")]),
        ("行业动态", [("未来产业是培育新质生产力的重要引擎", "article"), ("第二篇", "article")]),
    ]
    assert [s.line for s in issue.sections] == [8, 13]
    assert [a.line for a in issue.articles] == [10, 15, 29]
    note, first, second = issue.articles
    # Soft-wrapped lines join into one paragraph; markup is gone.
    assert paragraphs(note) == ["本期聚焦未来产业，请各位读者指正。"]
    assert [(b.kind, b.text) for b in first.blocks] == [
        ("paragraph", "未来产业代表着新一轮科技革命的重要方向，详见工信部网站。"),
        ("subheading", "完善发展生态"),
        ("paragraph", "推动 AI 与 GPU computing 的融合。"),
    ]
    assert first.source == "新华社"
    assert paragraphs(second) == ["第一点", "第二点"] and second.source == "人民日报"


def test_markdown_front_matter_in_chinese_keys_and_dates(tmp_path):
    text = "---\n期号: 2024年第3期\n标题: 许昌竞争情报快递\n日期: 2024年5月10日\n---\n# 栏目\n## 文章\n正文。\n"
    issue = parse_markdown(text, "x.md")
    assert (issue.number, issue.title, issue.published_on) == (
        "2024年第3期",
        "许昌竞争情报快递",
        date(2024, 5, 10),
    )


def test_markdown_without_front_matter(tmp_path):
    issue = parse_file(write(tmp_path, "issue.markdown", "# 栏目\n\n## 文章\n\n正文。\n"))
    assert structure(issue) == [("栏目", [("文章", "article")])]
    assert (issue.number, issue.title, issue.published_on) == (None, None, None)


def test_markdown_front_matter_not_closed_is_refused(tmp_path):
    path = write(tmp_path, "issue.md", "---\nnumber: 3\n# 栏目\n## 文章\n正文。\n")
    err = refusal(path)
    assert_where(err, path, 1)
    assert "front matter" in err.reason and "没有结束" in err.reason


def test_markdown_bad_yaml_is_refused_with_its_line(tmp_path):
    path = write(
        tmp_path,
        "issue.md",
        "---\nnumber: 3\ntitle: [未闭合\ndate: 2024-05-10\n---\n# 栏目\n## 文章\n正文。\n",
    )
    err = refusal(path)
    assert err.file == str(path) and err.line in (3, 4, 5)
    assert f"{path}:{err.line}: " in str(err)
    assert "front matter 不是有效的 YAML" in err.reason


def test_markdown_front_matter_that_is_not_a_mapping_is_refused(tmp_path):
    path = write(tmp_path, "issue.md", "---\n- 3\n- 2024-05-10\n---\n# 栏目\n## 文章\n正文。\n")
    err = refusal(path)
    assert_where(err, path, 2)
    assert "键: 值" in err.reason


def test_markdown_bad_date_is_refused_with_its_line(tmp_path):
    path = write(
        tmp_path, "issue.md", "---\nnumber: 3\ndate: 下周一\n---\n# 栏目\n## 文章\n正文。\n"
    )
    err = refusal(path)
    assert_where(err, path, 3)
    assert "下周一" in err.reason


def test_markdown_article_before_any_section_is_refused(tmp_path):
    path = write(tmp_path, "issue.md", "## 文章\n正文。\n# 栏目\n## 文章\n正文。\n")
    err = refusal(path)
    assert_where(err, path, 1)
    assert err.reason == "文章“文章”出现在第一个栏目（#）之前"


def test_markdown_article_without_body_is_refused(tmp_path):
    path = write(
        tmp_path,
        "issue.md",
        "# 栏目\n## 有正文\n正文。\n## 没有正文\n\n# 下一栏目\n## 文章\n正文。\n",
    )
    err = refusal(path)
    assert_where(err, path, 4)
    assert "没有正文" in err.reason and "没有正文”" in err.reason


def test_markdown_without_sections_has_no_article(tmp_path):
    path = write(tmp_path, "issue.md", "---\nnumber: 3\n---\n")
    err = refusal(path)
    assert_where(err, path, None)
    assert err.reason.startswith("文件中没有找到任何文章")


# --- Word ---------------------------------------------------------------------------------


def make_docx(path: Path, items: list[tuple[str | None, str]]) -> Path:
    document = Document()
    for style, text in items:
        document.add_paragraph(text, style=style)
    document.save(str(path))
    return path


def test_docx_with_heading_styles(tmp_path):
    path = make_docx(
        tmp_path / "issue.docx",
        [
            ("Title", "《许昌竞争情报快递》"),
            (None, "2024年第3期　　2024年5月10日"),
            ("Heading 1", "编者的话"),
            (None, "本期聚焦未来产业。"),
            (None, ""),
            ("Heading 1", "行业动态"),
            ("Heading 2", "未来产业是培育新质生产力的重要引擎"),
            (None, "未来产业代表着新一轮科技革命的重要方向。"),
            ("Heading 3", "完善发展生态"),
            (None, "推动生态主导型企业设立研发机构。"),
            (None, "来源：新华社"),
            ("Heading 2", "第二篇"),
            (None, "第二篇正文。\n软回车后的第二段。"),
        ],
    )
    issue = parse_file(path)
    assert issue.source_format == "docx"
    assert (issue.title, issue.number, issue.published_on) == (
        "许昌竞争情报快递",
        "2024年第3期",
        date(2024, 5, 10),
    )
    assert structure(issue) == [
        ("编者的话", [("编者的话", "note")]),
        ("行业动态", [("未来产业是培育新质生产力的重要引擎", "article"), ("第二篇", "article")]),
    ]
    note, first, second = issue.articles
    assert paragraphs(note) == ["本期聚焦未来产业。"]
    assert [(b.kind, b.text) for b in first.blocks] == [
        ("paragraph", "未来产业代表着新一轮科技革命的重要方向。"),
        ("subheading", "完善发展生态"),
        ("paragraph", "推动生态主导型企业设立研发机构。"),
    ]
    assert first.source == "新华社"
    assert paragraphs(second) == ["第二篇正文。", "软回车后的第二段。"]
    assert parse_docx(path) == issue


def test_docx_heading_styles_by_chinese_name_and_by_base_style(tmp_path):
    document = Document()
    styles = document.styles
    section_style = styles.add_style("栏目标题", WD_STYLE_TYPE.PARAGRAPH)
    section_style.base_style = styles["Heading 1"]  # an editor's own style based on 标题 1
    article_style = styles.add_style("标题 2", WD_STYLE_TYPE.PARAGRAPH)  # as WPS names it
    document.add_paragraph("行业动态", style=section_style)
    document.add_paragraph("文章标题", style=article_style)
    document.add_paragraph("正文。")
    path = tmp_path / "custom.docx"
    document.save(str(path))
    assert structure(parse_file(path)) == [("行业动态", [("文章标题", "article")])]


def test_docx_typed_like_the_text_format_is_read_with_the_text_rules(tmp_path):
    path = make_docx(
        tmp_path / "typed.docx",
        [
            (None, "●编者的话"),
            (None, "本期聚焦未来产业。"),
            (None, "●行业动态"),
            (None, "标题"),
            (None, "正文。"),
        ],
    )
    issue = parse_file(path)
    assert issue.source_format == "docx"
    assert structure(issue) == [
        ("编者的话", [("编者的话", "note")]),
        ("行业动态", [("标题", "article")]),
    ]
    assert [a.line for a in issue.articles] == [2, 4]


def test_docx_found_by_content_without_extension(tmp_path):
    path = make_docx(
        tmp_path / "issue.docx", [("Heading 1", "栏目"), ("Heading 2", "文章"), (None, "正文。")]
    )
    renamed = path.rename(tmp_path / "issue-from-mail")
    assert structure(parse_file(renamed)) == [("栏目", [("文章", "article")])]


def test_docx_refusals_name_the_paragraph(tmp_path):
    no_body = make_docx(
        tmp_path / "no-body.docx",
        [
            ("Heading 1", "栏目"),
            ("Heading 2", "文章"),
            (None, "正文。"),
            (None, ""),
            ("Heading 2", "空文章"),
        ],
    )
    err = refusal(no_body)
    assert_where(err, no_body, 5)  # paragraph 5: empty paragraphs count too
    assert "空文章" in err.reason and "没有正文" in err.reason

    article_first = make_docx(
        tmp_path / "h2.docx",
        [("Heading 2", "文章"), (None, "正文。"), ("Heading 1", "栏目"), ("Heading 2", "文章")],
    )
    err = refusal(article_first)
    assert_where(err, article_first, 1)
    assert "第一个栏目（标题 1）之前" in err.reason

    no_headings = make_docx(tmp_path / "plain.docx", [(None, "这是一段没有标题样式的文字。")])
    err = refusal(no_headings)
    assert_where(err, no_headings, None)
    assert err.reason.startswith("文件中没有找到任何文章") and "标题 1" in err.reason

    empty = make_docx(tmp_path / "empty.docx", [(None, "")])
    err = refusal(empty)
    assert_where(err, empty, None)
    assert err.reason == "文件为空"


def test_broken_docx_is_refused(tmp_path):
    path = tmp_path / "broken.docx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    err = refusal(path)
    assert_where(err, path, None)
    assert "不是有效的 Word" in err.reason
