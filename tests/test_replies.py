"""The reply splitter: a reader's reply without the quoted original.

Fixtures (tests/fixtures/replies/NAME.eml, written by build.py there) are replies as
Gmail, Apple Mail, Outlook, QQ Mail, Foxmail, NetEase, Coremail, Alibaba Mail and
Thunderbird send them. NAME.expected.txt is what the reader wrote; NAME.plain.expected.txt
what the same message gives when it has only its text part (a client that sends no HTML,
or an HTML part with nothing to cut at). Comparison: the file's text without its final
line feed equals ``reply_text`` exactly.
"""

from __future__ import annotations

import base64
import email
import email.policy
import importlib.util
import threading
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import cast

import pytest

from dispatch.feedback.html_text import HTML_ELEMENTS
from dispatch.feedback.replies import HTML_CHARS, TEXT_CHARS, reply_text

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "replies"
NAMES = sorted(p.name.removesuffix(".eml") for p in FIXTURES.glob("*.eml"))
PLAIN_NAMES = sorted(p.name.removesuffix(".plain.expected.txt")
                     for p in FIXTURES.glob("*.plain.expected.txt"))


def parse(raw: bytes) -> EmailMessage:
    """As the inbox reads a message."""
    return cast(EmailMessage, email.message_from_bytes(raw, policy=email.policy.default))


def expected(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8").removesuffix("\n")


def without_html(message: EmailMessage) -> EmailMessage:
    """The message with its HTML parts taken out: what its text part alone gives."""
    for part in message.walk():
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list):
            part.set_payload([p for p in payload if p.get_content_type() != "text/html"])
    return message


def returns(work: Callable[[], str], deadline: float = 300) -> str:
    """``work()``'s result; fails instead of hanging the suite if it never returns (a hang
    guard only: the deadline is far beyond any honest run)."""
    outcome: list[str | BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as e:
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(deadline)
    assert outcome, "reply_text did not return"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def text_message(body: str | bytes, *, charset: str | None = "utf-8", cte: str = "8bit",
                 ctype: str = "text/plain", params: str = "") -> EmailMessage:
    data = body.encode(charset or "utf-8") if isinstance(body, str) else body
    if cte == "base64":
        data = base64.encodebytes(data)
    label = f'; charset="{charset}"' if charset else ""
    head = (f"From: reader@example.com\nTo: feedback+t@reply.example.cn\nSubject: Re: x\n"
            f"MIME-Version: 1.0\nContent-Type: {ctype}{label}{params}\n"
            f"Content-Transfer-Encoding: {cte}\n\n").encode()
    return parse(head + data)


def multipart_message(*parts: tuple[str, str], subtype: str = "alternative") -> EmailMessage:
    """A multipart message of (content type, UTF-8 text) parts."""
    chunks = [b"From: reader@example.com\nMIME-Version: 1.0\n",
              f'Content-Type: multipart/{subtype}; boundary="b"\n\n'.encode()]
    for ctype, text in parts:
        chunks.append(f'--b\nContent-Type: {ctype}; charset="utf-8"\n'
                      f"Content-Transfer-Encoding: base64\n\n".encode())
        chunks.append(base64.encodebytes(text.encode()))
    chunks.append(b"--b--\n")
    return parse(b"".join(chunks))


# --- the fixtures -------------------------------------------------------------------------


def test_there_are_fixtures_for_every_client() -> None:
    assert len(NAMES) >= 20
    for name in NAMES:
        assert (FIXTURES / f"{name}.expected.txt").exists(), name


def test_the_committed_fixtures_are_what_the_builder_writes() -> None:
    spec = importlib.util.spec_from_file_location("reply_fixtures", FIXTURES / "build.py")
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    assert sorted(build.FIXTURES) == NAMES
    for name, make in build.FIXTURES.items():
        assert (FIXTURES / f"{name}.eml").read_bytes() == make(), name


@pytest.mark.parametrize("name", NAMES)
def test_reply_text_is_what_the_reader_wrote(name: str) -> None:
    message = parse((FIXTURES / f"{name}.eml").read_bytes())
    assert reply_text(message) == expected(f"{name}.expected.txt")


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_the_text_part_alone_gives_the_same_words(name: str) -> None:
    message = without_html(parse((FIXTURES / f"{name}.eml").read_bytes()))
    assert message.get_body(preferencelist=("html",)) is None
    assert reply_text(message) == expected(f"{name}.plain.expected.txt")


# --- text rules ---------------------------------------------------------------------------

WORDS = "谢谢，已收到。"
QUOTE = "王磊 您好：\n\n●行业动态\n未来产业是培育新质生产力的重要引擎"
QUOTED = "> 王磊 您好：\n>\n> ●行业动态\n> 未来产业是培育新质生产力的重要引擎"


@pytest.mark.parametrize("separator", [
    "------------------ 原始邮件 ------------------",
    "------------------\xa0原始邮件\xa0------------------",
    "-----原始邮件-----",
    "-----邮件原件-----",
    "------------------ 回复的原邮件 ------------------",
    "-----Original Message-----",
    "------------------ Original ------------------",
    "---- Replied Message ----",
    "---------- Forwarded message ---------",
    "‐‐‐‐‐‐‐ Original Message ‐‐‐‐‐‐‐",
    "Begin forwarded message:",
    "_" * 32,
    "-" * 20,
    "-" * 66,
])
def test_a_separator_ends_the_reply(separator: str) -> None:
    message = text_message(f"{WORDS}\n\n{separator}\n发件人: 许昌竞争情报快递\n\n{QUOTE}\n")
    assert reply_text(message) == WORDS


@pytest.mark.parametrize("header", [
    "发件人: 许昌竞争情报快递 <news@example.cn>\n发送时间: 2024年5月14日 22:10",
    "发件人:\"许昌竞争情报快递\" <news@example.cn>\n发送时间:2025-05-07 00:47:37 (星期三)",
    "发件人：许昌竞争情报快递 <news@example.cn>\n发送时间： 2025-05-07 00:47:37 (星期三)",
    "发件人：许昌竞争情报快递\n日期：2024-05-14 22:10",
    "发件人: 许昌竞争情报快递\n收件人: 王磊",
    "From: 许昌竞争情报快递\nDate: 2024-05-14 22:10",
    "From: 许昌竞争情报快递 <news@example.cn>\nSent: Tuesday, May 14, 2024 10:10 PM",
    "From: 许昌竞争情报快递\nSend Time: 2024-05-14 22:10",
    "From: 许昌竞争情报快递\nTo: 王磊",
    "*From:* 许昌竞争情报快递\n*Sent:* Tuesday, May 14, 2024 10:10 PM",
    "Sent: Tuesday, May 14, 2024 10:10 PM\nFrom: 许昌竞争情报快递\nTo: 王磊",
    "Date: Tue, 14 May 2024 22:10:00 +0800\nSubject: 第5期\nFrom: 许昌竞争情报快递",
    "主　题：第5期\n发件人：许昌竞争情报快递",
])
def test_a_header_block_ends_the_reply(header: str) -> None:
    message = text_message(f"{WORDS}\n\n{header}\n主题: 第5期\n\n{QUOTE}\n")
    assert reply_text(message) == WORDS


@pytest.mark.parametrize("attribution", [
    "在 2020年5月14日 下午10:10，张三 <zhangsan@example.com> 写道：",
    '在 2020-05-14 22:10:00，"许昌竞争情报快递" <news@example.cn> 写道：',
    "张三 <zhangsan@example.com> 于2020年5月14日周四 下午10:10写道：",
    "张三 <zhangsan@example.com> 于2020年5月14日周四\n下午10:10写道：",
    "张三 <zhangsan@example.com>\n于2020年5月14日周四 下午10:10写道：",
    "在 2020年5月14日 下午10:10，张三 <zhangsan@example.com>\n写道：",
    "2019年11月22日 18:05，张三 <zhangsan@example.com> 写道：",
    "On Thu, May 14, 2020 at 10:10 PM Zhang San <zhangsan@example.com> wrote:",
    "On Thu, May 14, 2020 at 10:10 PM Zhang San <\nzhangsan@example.com> wrote:",
    "On Thu, May 14, 2020 at 10:10 PM Zhang San <zhangsan@example.com>\nwrote:",
    'At 2020-05-14 22:10:00, "Zhang San" <zhangsan@example.com> wrote:',
    "On 2020/5/14 22:10, Zhang San wrote:",
    "Zhang San <zhangsan@example.com> wrote:",
])
@pytest.mark.parametrize("quote_marks", [True, False])
def test_an_attribution_ends_the_reply(attribution: str, quote_marks: bool) -> None:
    quote = QUOTED if quote_marks else QUOTE
    message = text_message(f"{WORDS}\n{attribution}\n\n{quote}\n")
    assert reply_text(message) == WORDS


def test_apple_mail_writes_its_attribution_inside_the_quote() -> None:
    message = text_message(f"{WORDS}\n\n发自我的iPhone\n\n> 2019年11月22日 18:05，张三 "
                           f"<zhangsan@example.com> 写道：\n> \n{QUOTED}\n")
    assert reply_text(message) == f"{WORDS}\n\n发自我的iPhone"


def test_quoted_lines_at_the_end_and_the_line_introducing_them_go() -> None:
    message = text_message(f"{WORDS}\n\n许昌竞争情报快递 写道：\n> 第一行\n>\n> 第二行\n\n")
    assert reply_text(message) == WORDS


def test_a_reply_below_the_quote_keeps_the_words_below() -> None:
    message = text_message(f"On 2024/5/14 22:10, Zhang San wrote:\n{QUOTED}\n\n{WORDS}\n")
    assert reply_text(message) == WORDS


@pytest.mark.parametrize("words", [
    "From the report, the export figure looks wrong.\nFrom: 我们自己的统计",
    "建议如下：\n- 增加图表\n- 每期附上PDF\n\n- 发送时间改到上午",
    "1. 数据来源请注明；\n2. 建议增加“政策解读”栏目。",
    "我的意见如下：\n第一，内容很好；\n第二，字体偏小。",
    "你们在第3期写道：\n“未来产业是培育新质生产力的重要引擎”，这一点我们很认同。",
    "在报告中你们写道：\n许昌的发制品出口增长了12%，我们核实过，是准确的。",
    "On page 2 you wrote:\nthe export figure is 1.2 million. It is 1.2 billion.",
    "发件人一栏显示的是“许昌竞争情报快递”。\n发送时间最好改到上午。",
    "-----\n分割线之后还是我的话。",
    "- " * 29 + "-\n列表之后还是我的话。",
    "他说：“> 这不是引用”。\n> 这一行引用了原文\n这一行是我的回答。",
    "-- \n王磊\n许昌瑞贝卡发制品股份有限公司",
])
def test_the_readers_own_words_are_kept(words: str) -> None:
    assert reply_text(text_message(words + "\n")) == words.replace("-- \n", "--\n")
    reply = f"{words}\n\nOn Tue, May 14, 2024 at 10:10 PM 许昌竞争情报快递 <news@example.cn> wrote:\n\n{QUOTED}\n"
    assert reply_text(text_message(reply)) == words.replace("-- \n", "--\n")


@pytest.mark.parametrize("body", [
    "",
    "\n\n",
    "> 只有引用\n> 第二行\n",
    f"On Tue, May 14, 2024 at 10:10 PM 许昌竞争情报快递 <news@example.cn> wrote:\n\n{QUOTED}\n",
    f"------------------ 原始邮件 ------------------\n发件人: 许昌竞争情报快递\n\n{QUOTE}\n",
])
def test_a_reply_that_is_only_the_quote_is_empty(body: str) -> None:
    assert reply_text(text_message(body)) == ""


def test_qq_entities_in_the_text_part_are_unescaped_once() -> None:
    message = text_message("价格&nbsp;&lt;&nbsp;100&amp;&gt;50，&amp;lt;是字面的\n")
    assert reply_text(message) == "价格 < 100&>50，&lt;是字面的"


def test_format_flowed_lines_are_joined() -> None:
    message = text_message("第一段很长，客户端在这里 \n折了行。\n\n-- \n王磊\n",
                           params="; format=flowed")
    assert reply_text(message) == "第一段很长，客户端在这里 折了行。\n\n--\n王磊"
    message = text_message("Long line wra\npped here.\n", params="; format=flowed; delsp=yes")
    assert reply_text(message) == "Long line wra\npped here."
    message = text_message("Long line wra \npped here.\n", params="; format=flowed; delsp=yes")
    assert reply_text(message) == "Long line wrapped here."


# --- HTML ---------------------------------------------------------------------------------


def test_html_is_preferred_and_cut_at_the_quote_element() -> None:
    message = multipart_message(
        ("text/plain", "纯文本版本\n\n> 引用\n"),
        ("text/html", '<div>网页版本</div><div class="gmail_quote">引用</div>'),
    )
    assert reply_text(message) == "网页版本"


def test_without_a_quote_in_the_html_the_text_part_is_cut() -> None:
    message = multipart_message(
        ("text/plain", "我的回复\n\n> 引用的原文\n"),
        ("text/html", "<div>我的回复</div><blockquote>引用的原文</blockquote>"),
    )
    assert reply_text(message) == "我的回复"


def test_a_message_that_quotes_nothing_is_read_whole_from_its_html() -> None:
    message = multipart_message(
        ("text/plain", "第一段\n第二段\n"),
        ("text/html", "<p>第一段</p><p>第二段，<b>加粗</b>&amp;转义</p>"),
    )
    assert reply_text(message) == "第一段\n\n第二段，加粗&转义"


def test_an_html_only_reply() -> None:
    html = ('<div dir="ltr">只有网页版</div><div class="gmail_quote"><div class="gmail_attr">'
            "On Tue, May 14, 2024 at 10:10 PM X &lt;x@example.cn&gt; wrote:</div>"
            "<blockquote>原文</blockquote></div>")
    assert reply_text(text_message(html, ctype="text/html")) == "只有网页版"


def test_an_html_part_with_no_text_falls_back_to_the_text_part() -> None:
    message = multipart_message(
        ("text/plain", "文字\n"),
        ("text/html", '<div><img src="cid:x"></div>'),
    )
    assert reply_text(message) == "文字"


@pytest.mark.parametrize(("html", "text"), [
    ("<p>a</p><p>&nbsp;</p><p>b</p>", "a\n\nb"),
    ("<div>a</div><div><br></div><div>b</div>", "a\n\nb"),
    ("<div>a<br></div><div>b</div>", "a\nb"),
    ("a<br>b<br><br>c", "a\nb\n\nc"),
    ("<p>  lots   of\n\n spaces </p>", "lots of spaces"),
    ("<ol start=3><li>x</li><li>y<ul><li>z</li></ul></li></ol>", "3. x\n4. y\n  - z"),
    ("<table><tr><td>姓名</td><td>王磊</td></tr><tr><td>单位</td><td>瑞贝卡</td></tr></table>",
     "姓名 王磊\n单位 瑞贝卡"),
    ("<pre>  缩进\n保留</pre>", "  缩进\n保留"),
    ("<head><title>标题</title><style>p{}</style></head><body>正文<script>x()</script></body>",
     "正文"),
    ('<div style="display:none">预览文字</div><div hidden>隐藏</div><div>正文</div>', "正文"),
    ("<p>&lt;tag&gt; &amp;amp; &#20320;&#x597D;</p>", "<tag> &amp; 你好"),
    ("<div>a</div><blockquote>读者引用的一段</blockquote><div>b</div>", "a\n\n读者引用的一段\n\nb"),
    ("<div>未闭合<div>的<b>标签<p>也行", "未闭合\n的标签\n\n也行"),
])
def test_html_becomes_clean_text(html: str, text: str) -> None:
    assert reply_text(text_message(html, ctype="text/html")) == text


@pytest.mark.parametrize("quote", [
    '<div class="gmail_quote">Q</div>',
    '<blockquote type="cite">Q</blockquote>',
    '<div id="divRplyFwdMsg"><b>From:</b> Q</div>Q',
    '<div id="appendonsend"></div><hr>Q',
    '<blockquote id="isReplyContent">Q</blockquote>',
    '<div class="ntes-mailmaster-quote">Q</div>',
    '<hr id="replySplit">Q',
    '<div class="FoxDiv20240515093012345678">Q</div>',
    "<div style=\"border:none;border-top:solid #E1E1E1 1.0pt\"><p><b>发件人:</b> Q</p></div>Q",
    '<div style="border-top: 1px solid #ccc"><b>From:</b> Q</div>Q',
    "<div>------------------&nbsp;原始邮件&nbsp;------------------</div><div>Q</div>",
    "<div>-----Original Message-----</div><div>Q</div>",
    '<div id="OLK_SRC_BODY_SECTION"><b>From: </b>Q</div>Q',
    '<div id="reply139content">Q</div>',
    '<div id="isForwardContent">Q</div>',
    '<div class="yahoo_quoted">Q</div>',
    '<div name="quote"><b>Sent:</b> Q</div>',
    '<hr id="stopSpelling">Q',
    "<div style=\"border-top-style: solid; border-top-width: 1px\"><b>发件人:</b> Q</div>Q",
    # 网易 web: the attribution above the quote goes with it
    '<br>At 2024-05-14 22:10:00, "许昌竞争情报快递" &lt;news@example.cn&gt; wrote:<br>'
    '<blockquote id="isReplyContent">Q</blockquote><br><span title="neteasefooter"><p>&nbsp;</p></span>',
])
def test_each_clients_quote_element_is_cut(quote: str) -> None:
    html = f"<div>读者的话</div>{quote}"
    assert reply_text(text_message(html, ctype="text/html")) == "读者的话"


def test_html_entity_declarations_are_not_expanded_nor_fetched() -> None:
    html = ("<!DOCTYPE html [<!ENTITY a 'AAAAAAAAAA'><!ENTITY b '&a;&a;&a;&a;'>"
            "<!ENTITY f SYSTEM 'file:///etc/hostname'>]><div>读者的话 &b; &f;</div>")
    text = reply_text(text_message(html, ctype="text/html"))
    assert text.endswith("读者的话 &b; &f;") and "AAAA" not in text


def test_a_border_top_div_of_the_readers_own_is_kept() -> None:
    html = ('<div>读者的话</div><div style="border-top:1px solid #ccc">From the report, '
            "more data please.</div>")
    assert reply_text(text_message(html, ctype="text/html")) == (
        "读者的话\nFrom the report, more data please.")


# --- MIME and charsets --------------------------------------------------------------------


@pytest.mark.parametrize("label", ["gb2312", "GB2312", "gbk", "x-gbk", "cp936", "gb18030"])
def test_gb_labels_are_read_as_gb18030(label: str) -> None:
    words = "王䶮：朱镕基的“镕”和“䶮”都认得。"  # 镕: GBK, not GB2312; 䶮: gb18030 only
    for cte in ("8bit", "base64"):
        message = text_message(words.encode("gb18030"), charset=label, cte=cte)
        assert reply_text(message) == words


def test_no_charset_is_utf8_else_gb18030() -> None:
    assert reply_text(text_message("中文回复".encode(), charset=None)) == "中文回复"
    assert reply_text(text_message("中文回复".encode("gbk"), charset=None)) == "中文回复"


def test_an_html_part_may_name_its_charset_in_a_meta_tag() -> None:
    html = '<meta http-equiv="Content-Type" content="text/html; charset=gbk"><div>读者</div>'
    message = text_message(html.encode("gbk"), charset=None, ctype="text/html")
    assert reply_text(message) == "读者"


@pytest.mark.parametrize("label", ["x-unknown-42", "base64", "rot13", "unicode-escape", "utf-7"])
def test_an_unknown_or_non_text_charset_label_is_not_used(label: str) -> None:
    message = text_message("回复\\x41".encode(), charset=label)
    assert reply_text(message) == "回复\\x41"


def test_a_wrong_label_falls_back() -> None:
    assert reply_text(text_message("中文".encode(), charset="us-ascii")) == "中文"
    assert reply_text(text_message("中文".encode("gbk"), charset="utf-8")) == "中文"


def test_invalid_bytes_are_replaced() -> None:
    data = "好".encode() + b"\xff\xfe\x80" + "的".encode()
    text = reply_text(text_message(data, charset="utf-8"))
    assert text.startswith("好") and text.endswith("的") and "\ufffd" in text


def test_broken_base64_does_not_crash() -> None:
    head = (b"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
            b"Content-Transfer-Encoding: base64\n\n")
    assert isinstance(reply_text(parse(head + b"5Lit5paH!!!%%%=\n==\n")), str)


def test_attachments_are_not_the_reply() -> None:
    raw = (b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n'
           b'--b\nContent-Type: text/plain; charset=utf-8; name="notes.txt"\n'
           b'Content-Disposition: attachment; filename="notes.txt"\n\nattached notes\n'
           b"--b\nContent-Type: application/pdf\nContent-Disposition: attachment; "
           b'filename="a.pdf"\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--b--\n')
    assert reply_text(parse(raw)) == ""


def test_a_forwarded_message_alone_is_not_the_reply() -> None:
    inner = "From: someone@example.com\nContent-Type: text/plain; charset=utf-8\n\n别人的信\n".encode()
    raw = (b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n'
           b"--b\nContent-Type: message/rfc822\n\n" + inner + b"--b--\n")
    assert reply_text(parse(raw)) == ""
    raw = b"MIME-Version: 1.0\nContent-Type: message/rfc822\n\n" + inner
    assert reply_text(parse(raw)) == ""


def test_no_text_part() -> None:
    raw = (b"MIME-Version: 1.0\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\n"
           b"iVBORw0KGgo=\n")
    assert reply_text(parse(raw)) == ""
    assert reply_text(parse(b"Subject: nothing\n\n")) == ""


def test_multipart_related_starts_at_its_root() -> None:
    raw = (b'MIME-Version: 1.0\nContent-Type: multipart/related; boundary="r"; start="<root>"\n\n'
           b"--r\nContent-Type: text/html; charset=utf-8\nContent-ID: <other>\n\n<p>not me</p>\n"
           b"--r\nContent-Type: text/html; charset=utf-8\nContent-ID: <root>\n\n<p>root</p>\n--r--\n")
    assert reply_text(parse(raw)) == "root"


def test_mixed_inline_text_parts_are_joined() -> None:
    message = multipart_message(("text/plain", "第一部分"), ("text/plain", "第二部分"),
                                subtype="mixed")
    assert reply_text(message) == "第一部分\n第二部分"


def test_a_message_built_in_memory_with_8bit_text() -> None:
    message = EmailMessage()
    message.set_content("内存里构造的回复\n\n> 引用\n", cte="8bit")
    assert reply_text(message) == "内存里构造的回复"


# --- hostile input ------------------------------------------------------------------------


def test_a_5_mb_line_of_dashes_and_spaces() -> None:
    for line in ("- " * 2_500_000, "-" * 5_000_000, " -" * 2_499_999 + "原始邮件",
                 "_" * 5_000_000,
                 # and as many lines short enough to be looked at
                 ("- " * 140 + "\n") * 18_000, ("-" * 290 + " 原始\n") * 17_000):
        text = returns(lambda line=line: reply_text(text_message(f"我的话\n{line}\n")))
        assert text.startswith("我的话") and len(text) <= TEXT_CHARS


def test_many_lines_that_almost_look_like_attributions() -> None:
    lines = ["读者的话"]
    lines += ["在" + "年" * 280 + "写道：", "x于" * 140 + "写道：", "<a" * 140 + "写道：",
              "On " + "x " * 140 + "wrote:", "-" * 19 + "原始", "From:" + "a" * 290] * 1_000
    text = returns(lambda: reply_text(text_message("\n".join(lines))))
    assert text == "\n".join(lines)


def test_many_short_quote_runs() -> None:
    body = "回复\n> 引用\n" * 200_000
    assert returns(lambda: reply_text(text_message(body))).startswith("回复\n> 引用")


def test_a_1_mb_nest_of_divs() -> None:
    html = "<div>读者的话</div>" + "<div>" * 200_000 + "深处" + "</div>" * 200_000 + "<p>之后</p>"
    text = returns(lambda: reply_text(text_message(html, ctype="text/html")))
    assert text.startswith("读者的话")


@pytest.mark.parametrize("junk", [
    "<!--" * 500_000, "<![" * 500_000, "</" * 1_000_000, '<a b="' * 300_000, "<" * 2_000_000,
    "&" * 2_000_000, "<b><i><u><font>" * 100_000, "<p>" * 600_000, "<li>" * 500_000,
    "<td>" * 500_000, "<br>" * 500_000, "x<b>y</b>" * 200_000,
])
def test_invalid_html_returns(junk: str) -> None:
    html = "<div>读者的话</div>" + junk
    text = returns(lambda: reply_text(text_message(html, ctype="text/html", charset="utf-8",
                                                   cte="base64")))
    assert text.startswith("读者的话")


def test_html_beyond_the_caps_is_not_read() -> None:
    quote = '<div class="gmail_quote">引用</div>'
    long_text = "<div>读者的话</div><div>" + "填" * HTML_CHARS + "</div>" + quote
    many_elements = "<div>读者的话</div>" + "<i>填</i>" * HTML_ELEMENTS + quote
    for html in (long_text, many_elements):
        text = returns(lambda html=html: reply_text(text_message(html, ctype="text/html")))
        assert text.startswith("读者的话") and "引用" not in text


def test_a_part_beyond_the_cap_is_cut_without_breaking_its_charset() -> None:
    body = "读者的话\n" + "中" * (TEXT_CHARS * 4 // 3 + 10)  # the cut falls inside a character
    text = returns(lambda: reply_text(text_message(body, cte="base64")))
    assert text == ("读者的话\n" + "中" * TEXT_CHARS)[:TEXT_CHARS]


@pytest.mark.parametrize("header", [
    "Content-Type: text/plain; charset*=utf-8''%E4%B8%AD%E6%96%87",
    "Content-Type: text/plain; charset=",
    "Content-Type: text/plain; charset=\"",
    "Content-Type: garbage",
    "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: x-unknown",
    "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: x-uuencode",
    "Content-Type: text/plain; charset=utf-8\nContent-Disposition: attachment; filename*=",
    "Content-Type: multipart/alternative",
    'Content-Type: multipart/mixed; boundary="b"',
    "Content-Type: message/rfc822",
])
def test_odd_headers_do_not_crash(header: str) -> None:
    raw = f"MIME-Version: 1.0\n{header}\n\n中文回复\n--b\n\n".encode()
    assert isinstance(reply_text(parse(raw)), str)


def test_deeply_nested_multiparts() -> None:
    depth = 60
    raw = b"MIME-Version: 1.0\n"
    for level in range(depth):
        raw += f'Content-Type: multipart/mixed; boundary="b{level}"\n\n--b{level}\n'.encode()
    raw += b"Content-Type: text/plain; charset=utf-8\n\ndeep\n"
    for level in reversed(range(depth)):
        raw += f"--b{level}--\n".encode()
    assert returns(lambda: reply_text(parse(raw))) == ""
