"""The staff web's feedback inbox and reports (issue 12, point 4), over real HTTP
(tests/admin_site.py) on SQLite: readers, deliveries, events and feedback written straight
to the tables as the track and feedback stages write them; an editor (李四) at the pages."""

from __future__ import annotations

import base64
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.header import Header
from html import unescape
from urllib.parse import quote, urlencode

import pytest
from admin_site import Site, admin_site, form_token, visible
from cli_language import english_words
from defusedxml import ElementTree as SafeET
from openpyxl import load_workbook
from site_rows import add_delivery, add_reader
from sqlalchemy import select

from dispatch import editorial
from dispatch.db.models import Delivery, Event, Feedback, Issue, Reader
from dispatch.db.session import transaction
from dispatch.report.feedback_list import COLUMNS, Filters, list_feedback
from dispatch.report.figures import issue_figures
from dispatch.report.issue_sheet import blocks, percent
from dispatch.report.sheets import csv_bytes
from dispatch.staff.throttle import as_utc

NOW = as_utc(1_800_000_000.0)  # admin_site's clock: 2027-01-15 16:00 in Beijing
SENT = NOW - timedelta(days=2, hours=5, minutes=20)  # 2027-01-13 10:40 Beijing


@dataclass
class World:
    issue: int
    second: int  # another issue, sent earlier, with no articles
    a: int  # the sample's first article
    b: int  # its second
    wang: int  # readers
    liu: int
    chen: int
    useful: int  # feedback rows, oldest first
    comment: int
    mail: int  # a reply by email, HTML only, Chinese subject in RFC 2047
    wecom: int  # a reply by WeChat Work
    bounce: int  # of the second issue, from no reader
    angle: int  # a reply in plain text with <b> in it
    auto: int  # an auto-reply to the second issue


def html_only_mail() -> bytes:
    subject = Header("回复：关于本期快报的建议", "utf-8").encode()
    sender = Header("王建国", "utf-8").encode()
    html = ("<html><head><style>p{color:red}</style><script>alert('x')</script></head>"
            "<body><p>谢谢，<b>数据很及时</b>。</p><img src=\"https://tracker.example/x.png\">"
            "<blockquote type=\"cite\">原来的快报</blockquote></body></html>")
    body = base64.encodebytes(html.encode("utf-8")).decode("ascii")
    pdf = base64.encodebytes(b"%PDF-1.4 " + b"0" * 3000).decode("ascii")
    name = Header("意见.docx", "utf-8").encode()
    return (
        f"From: {sender} <wangjianguo@example.cn>\r\n"
        "To: bulletin@example.cn\r\n"
        f"Subject: {subject}\r\n"
        "Date: Wed, 13 Jan 2027 12:00:00 +0800\r\n"
        "Message-ID: <reply-1@example.cn>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{body}\r\n"
        f'--b1\r\nContent-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document; name="{name}"\r\n'
        f'Content-Disposition: attachment; filename="{name}"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{pdf}\r\n--b1--\r\n"
    ).encode("ascii")


def plain_mail() -> bytes:
    body = base64.encodebytes("请看 <b>第二篇</b> & 第三篇".encode("gb18030")).decode("ascii")
    return (
        "From: liu@example.cn\r\nTo: bulletin@example.cn\r\n"
        "Subject: =?gb2312?B?" + base64.b64encode("意见".encode("gb2312")).decode() + "?=\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=gb2312\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{body}"
    ).encode("ascii")


WECOM_XML = ("<xml><ToUserName>corp</ToUserName><FromUserName>ChenXiaoDong</FromUserName>"
             "<CreateTime>1799800000</CreateTime><MsgType>text</MsgType>"
             "<Content>收到，下期请多登化工的</Content><MsgId>123</MsgId><AgentID>1</AgentID>"
             "</xml>").encode()


def build(site: Site) -> World:
    """The sample issue sent 2 days ago to three readers, an earlier issue to two; what
    they did; and feedback of every channel."""
    with transaction(site.runtime.sessions) as s:
        issue = s.scalars(select(Issue)).one()
        issue.status, issue.publish_at, issue.fanned_out_at = "sent", SENT, SENT
        a, b = editorial.get_issue(s, issue.id).articles[:2]
        second = Issue(title="上一期快报", number="第1期", source_file="old.txt",
                       source_format="txt", status="sent", publish_at=SENT - timedelta(days=30),
                       fanned_out_at=SENT - timedelta(days=30))
        s.add(second)
        s.flush()
        wang = add_reader(s, "王建国", "wangjianguo@example.cn", follows_all=True)
        liu = add_reader(s, "刘卫国", "liu@example.cn", industries=("chemical",))
        chen = add_reader(s, "陈晓东", industries=("chemical", "machinery"))
        chen.wecom_userid = "ChenXiaoDong"
        d: dict[str, int] = {}
        for reader in (wang, liu, chen):
            for which, iss in (("now", issue.id), ("old", second.id)):
                if which == "old" and reader is chen:
                    continue
                token = add_delivery(s, iss, reader, state="sent",
                                     sent_at=SENT if which == "now" else second.publish_at)
                d[f"{reader.name}-{which}"] = s.scalars(
                    select(Delivery.id).where(Delivery.token == token)).one()

        def event(key: str, kind: str, after: timedelta, article: int | None = None,
                  machine: bool = False) -> None:
            delivery = s.get(Delivery, d[key])
            assert delivery is not None
            s.add(Event(issue_id=delivery.issue_id, delivery_id=delivery.id, kind=kind,
                        article_id=article, at=delivery.sent_at + after, machine=machine,
                        n=1 if kind == "click" else None))

        # 王建国: opened within the hour, clicked A twice (7 h and 30 h after sending);
        # 刘卫国: a click on B at 8 h (images blocked: no open); 陈晓东: a proxy only.
        event("王建国-now", "open", timedelta(minutes=30))
        event("王建国-now", "click", timedelta(hours=7), a.id)
        event("王建国-now", "click", timedelta(hours=30), a.id)
        event("刘卫国-now", "click", timedelta(hours=8), b.id)
        event("陈晓东-now", "open", timedelta(minutes=1), machine=True)
        event("刘卫国-old", "open", timedelta(hours=2))  # the earlier issue: 1 of 2 opened

        def feedback(kind: str, channel: str, ago: timedelta, *, key: str | None = None,
                     issue_id: int | None = None, article: int | None = None, text: str = "",
                     raw: bytes | None = None, sender: str | None = None,
                     subject: str | None = None) -> int:
            delivery = s.get(Delivery, d[key]) if key else None
            row = Feedback(
                reader_id=delivery.reader_id if delivery else None,
                issue_id=delivery.issue_id if delivery else issue_id,
                delivery_id=delivery.id if delivery else None, article_id=article,
                channel=channel, kind=kind, text=text, raw=raw, sender=sender,
                subject=subject, received_at=NOW - ago)
            s.add(row)
            s.flush()
            return row.id

        hours = timedelta(hours=1)
        world = World(
            issue=issue.id, second=second.id, a=a.id, b=b.id, wang=wang.id, liu=liu.id,
            chen=chen.id,
            useful=feedback("useful", "web", 9 * hours, key="王建国-now", article=a.id),
            comment=feedback("comment", "web", 8 * hours, key="刘卫国-now", article=b.id,
                             text="数据很及时，希望多登化工"),
            mail=feedback("reply", "email", 7 * hours, key="王建国-now", text="谢谢，数据很及时。",
                          raw=html_only_mail(), sender="wangjianguo@example.cn",
                          subject="回复：关于本期快报的建议"),
            wecom=feedback("reply", "wecom", 6 * hours, key="陈晓东-now",
                           text="收到，下期请多登化工的", raw=WECOM_XML),
            bounce=feedback("bounce", "email", 5 * hours, issue_id=second.id,
                            sender="mailer-daemon@bounce.example.cn", raw=plain_mail()),
            angle=feedback("reply", "email", 4 * hours, key="刘卫国-now",
                           text="请看 <b>第二篇</b> & 第三篇", raw=plain_mail(),
                           sender="liu@example.cn", subject="意见"),
            auto=feedback("auto_reply", "email", 3 * hours, key="刘卫国-old", text="我正在休假"),
        )
    return world


@pytest.fixture
def site(sqlite_url) -> Iterator[Site]:
    with admin_site(sqlite_url) as served:
        yield served


def ids_on(page: str) -> list[int]:
    """The feedback rows of an inbox page, in order."""
    return list(dict.fromkeys(int(i) for i in re.findall(r'href="/admin/feedback/(\d+)"', page)))


def chinese(page: str) -> None:
    assert english_words(visible(page)) == [], english_words(visible(page))


def svgs(page: str) -> dict[str, object]:
    """The charts of a page by their key, parsed (each must be well-formed XML)."""
    found = {}
    for match in re.finditer(r"<svg\b.*?</svg>", page, flags=re.S):
        root = SafeET.fromstring(match[0])
        key = root.get("aria-labelledby").split()[0].removesuffix("-title")
        found[key] = root
    return found


def count(root: object, cls: str) -> int:
    return sum(1 for e in root.iter() if e.get("class") == cls)  # type: ignore[attr-defined]


# -- the inbox -------------------------------------------------------------------------------


def test_inbox_newest_first_and_each_filter(site: Site) -> None:
    w = build(site)
    cookie = site.signed_in("li")
    page = site.get("/admin/feedback", cookie)
    assert page.status == 200
    newest_first = [w.auto, w.angle, w.bounce, w.wecom, w.mail, w.comment, w.useful]
    assert ids_on(page.text) == newest_first
    chinese(page.text)
    # Each row links its reader and its issue; a bounce from no reader shows its sender.
    assert f'href="/admin/readers/{w.wang}"' in page.text
    assert f'href="/admin/issues/{w.issue}"' in page.text
    assert "mailer-daemon@bounce.example.cn" in page.text
    assert "数据很及时，希望多登化工" in page.text and "2027年1月15日 08:00" in page.text

    def shown(**query: object) -> list[int]:
        answer = site.get("/admin/feedback?" + urlencode(query), cookie)
        assert answer.status == 200
        chinese(answer.text)
        return ids_on(answer.text)

    assert shown(issue=w.issue) == [w.angle, w.wecom, w.mail, w.comment, w.useful]
    assert shown(issue=w.second) == [w.auto, w.bounce]
    assert shown(issue=w.issue, article=w.a) == [w.useful]
    assert shown(reader="刘卫国") == [w.auto, w.angle, w.comment]
    assert shown(reader="BOUNCE.example") == [w.bounce]  # the sender, any case
    assert shown(reader_id=w.chen) == [w.wecom]
    assert shown(channel="wecom") == [w.wecom]
    assert shown(channel="web") == [w.comment, w.useful]
    assert shown(kind="comment") == [w.comment]
    assert shown(kind="votes") == [w.useful]
    assert shown(kind="reply", channel="email") == [w.angle, w.mail]
    assert shown(state="done") == []
    assert shown(state="open") == newest_first
    # The issue's articles are offered once an issue is chosen.
    with_issue = site.get(f"/admin/feedback?issue={w.issue}", cookie).text
    assert f'<option value="{w.a}"' in with_issue
    # Bad filters are named and nothing is listed, never a crash.
    bad = site.get("/admin/feedback?issue=abc&kind=nonsense&channel=fax", cookie)
    assert bad.status == 200 and ids_on(bad.text) == []
    assert "期刊应为编号" in bad.text and "不是反馈类别" in bad.text and "渠道“fax”不对" in bad.text
    unknown = site.get("/admin/feedback?issue=999", cookie)
    assert "期刊 999 不存在" in unknown.text and ids_on(unknown.text) == []


def test_inbox_pages(site: Site) -> None:
    w = build(site)
    with transaction(site.runtime.sessions) as s:
        s.add_all(Feedback(issue_id=w.issue, channel="web", kind="comment", text=f"留言{i}",
                           received_at=NOW - timedelta(days=1, minutes=i)) for i in range(60))
    cookie = site.signed_in("li")
    first = site.get("/admin/feedback?kind=comment", cookie).text
    assert len(ids_on(first)) == 50 and "第 1 / 2 页" in first and "共 61 条" in first
    assert ids_on(first)[0] == w.comment  # 8 hours ago; the 60 others are a day old
    assert 'href="/admin/feedback?kind=comment&amp;page=2"' in first
    second = site.get("/admin/feedback?kind=comment&page=2", cookie).text
    assert len(ids_on(second)) == 11
    assert not set(ids_on(first)) & set(ids_on(second))
    past = site.get("/admin/feedback?kind=comment&page=9", cookie).text
    assert ids_on(past) == ids_on(second)  # past the end: the last page


def test_mark_two_handled(site: Site) -> None:
    w = build(site)
    cookie = site.signed_in("li")
    inbox = site.get("/admin/feedback?state=open", cookie)
    token = form_token(inbox.text)
    back = re.search(r'name="back" value="([^"]+)"', inbox.text)
    assert back and back[1] == "/admin/feedback?state=open"
    answer = site.post("/admin/feedback/handled",
                       [("csrf", token), ("back", back[1]), ("ids", str(w.comment)),
                        ("ids", str(w.mail))], cookie)
    assert answer.status == 303
    assert answer.headers["location"] == "/admin/feedback?state=open&done=2"
    after = site.get(answer.headers["location"], cookie).text
    assert "已将 2 条反馈标记为已处理" in after
    assert w.comment not in ids_on(after) and w.mail not in ids_on(after)
    assert len(ids_on(after)) == 5
    done = site.get("/admin/feedback?state=done", cookie).text
    assert ids_on(done) == [w.mail, w.comment]
    assert "李四" in done and "2027年1月15日 16:00" in done
    chinese(done)
    with site.runtime.sessions() as s:
        marked = {f.id: (f.handled_by, f.handled_at) for f in s.scalars(select(Feedback))
                  if f.handled_at}
    assert marked == {w.comment: ("李四（li）", NOW), w.mail: ("李四（li）", NOW)}

    # None ticked: said so, nothing changed. An id that names nothing: refused, and the
    # good one beside it is not marked either.
    none = site.post("/admin/feedback/handled", {"csrf": token, "back": "/admin/feedback"},
                     cookie)
    assert none.headers["location"] == "/admin/feedback?none=1"
    assert "请先勾选" in site.get(none.headers["location"], cookie).text
    gone = site.post("/admin/feedback/handled",
                     [("csrf", token), ("ids", str(w.useful)), ("ids", "999999")], cookie)
    assert gone.status == 404 and "已不存在" in gone.text
    chinese(gone.text)
    # Without the form's token: refused, nothing changed. Another site as `back`: ignored.
    assert site.post("/admin/feedback/handled", {"ids": str(w.useful)}, cookie).status == 403
    elsewhere = site.post("/admin/feedback/handled",
                          {"csrf": token, "ids": str(w.wecom), "back": "https://evil.example/"},
                          cookie)
    assert elsewhere.headers["location"] == "/admin/feedback?done=1"
    with site.runtime.sessions() as s:
        assert s.get(Feedback, w.useful).handled_at is None  # type: ignore[union-attr]


def test_an_item_and_its_raw_message(site: Site) -> None:
    w = build(site)
    cookie = site.signed_in("li")
    page = site.get(f"/admin/feedback/{w.mail}", cookie)
    assert page.status == 200
    text = page.text
    # The headers decoded (RFC 2047), the date in Beijing time, the base64 HTML body as
    # text: its markup never reaches the page as markup, the quote kept.
    assert "回复：关于本期快报的建议" in text and "王建国 &lt;wangjianguo@example.cn&gt;" in text
    assert "2027年1月13日 12:00" in text
    assert "谢谢，数据很及时。" in visible(text) and "原来的快报" in text
    assert "alert(" not in text and "<b>数据" not in text and "tracker.example" not in text
    assert "意见.docx" in text and "只有 HTML 正文" in text
    assert f'href="/admin/readers/{w.wang}"' in text and f'href="/admin/issues/{w.issue}"' in text
    assert f'href="/admin/feedback/{w.mail}/raw"' in text
    chinese(text)
    raw = site.get(f"/admin/feedback/{w.mail}/raw", cookie)
    assert raw.status == 200 and raw.body == html_only_mail()
    assert raw.headers["content-type"].startswith("message/rfc822")
    assert f'filename="feedback-{w.mail}.eml"' in raw.headers["content-disposition"]

    # A plain-text body (base64, gb2312) with angle brackets: shown as written, escaped.
    plain = site.get(f"/admin/feedback/{w.angle}", cookie).text
    assert "请看 &lt;b&gt;第二篇&lt;/b&gt; &amp; 第三篇" in plain and "<b>第二篇" not in plain
    assert "只有 HTML 正文" not in plain
    chinese(plain)

    # WeChat Work: the stored XML read into its parts; a page's vote: no message at all.
    wecom = site.get(f"/admin/feedback/{w.wecom}", cookie).text
    assert "收到，下期请多登化工的" in wecom and "ChenXiaoDong" in wecom and "文字" in wecom
    assert "<MsgType>" not in wecom and "&lt;MsgType&gt;" not in wecom
    xml = site.get(f"/admin/feedback/{w.wecom}/raw", cookie)
    assert xml.body == WECOM_XML and xml.headers["content-type"].startswith("application/xml")
    vote = site.get(f"/admin/feedback/{w.useful}", cookie).text
    assert "没有原始消息" in vote and f"/admin/feedback/{w.useful}/raw" not in vote
    assert site.get(f"/admin/feedback/{w.useful}/raw", cookie).status == 404

    # Marking it handled from its page comes back to it.
    marked = site.post("/admin/feedback/handled",
                       {"csrf": form_token(vote), "ids": str(w.useful),
                        "back": f"/admin/feedback/{w.useful}"}, cookie)
    assert marked.headers["location"] == f"/admin/feedback/{w.useful}?done=1"
    again = site.get(marked.headers["location"], cookie).text
    assert "已标记为已处理" in again and "已处理：李四" in again
    missing = site.get("/admin/feedback/999999", cookie)
    assert missing.status == 404 and "反馈 999999 不存在" in missing.text
    chinese(missing.text)


def test_export_what_the_inbox_shows(site: Site) -> None:
    w = build(site)
    with transaction(site.runtime.sessions) as s:  # more than a page: the export has all
        s.add_all(Feedback(issue_id=w.issue, channel="web", kind="comment", text=f"留言{i}",
                           received_at=NOW - timedelta(days=1, minutes=i)) for i in range(60))
    cookie = site.signed_in("li")
    inbox = site.get(f"/admin/feedback?issue={w.issue}&kind=comment&page=2", cookie).text
    csv_link = unescape(re.search(r'href="([^"]+)">导出 CSV<', inbox)[1])  # type: ignore[index]
    xlsx_link = unescape(re.search(r'href="([^"]+)">导出 Excel<', inbox)[1])  # type: ignore[index]
    assert csv_link == f"/admin/feedback/export?format=csv&issue={w.issue}&kind=comment"
    assert xlsx_link == csv_link.replace("format=csv", "format=xlsx")
    chinese(inbox)

    def inbox_ids(query: str) -> list[int]:
        """Every row the inbox lists for `query`, page after page."""
        found: list[int] = []
        for page in range(1, 10):
            ids = ids_on(site.get(f"/admin/feedback?{query}&page={page}", cookie).text)
            if not ids or ids[0] in found:
                return found
            found += ids
        return found

    def exported(query: str, kind: str) -> list[list[str]]:
        answer = site.get(f"/admin/feedback/export?format={kind}&{query}", cookie)
        assert answer.status == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        if kind == "csv":
            assert answer.headers["content-type"] == "text/csv; charset=utf-8"
            assert answer.body.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 by its BOM
            return list(csv.reader(io.StringIO(answer.body.decode("utf-8-sig"), newline="")))
        assert answer.headers["content-type"].startswith(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        sheet = load_workbook(io.BytesIO(answer.body)).active
        return [["" if v is None else str(v) for v in row]
                for row in sheet.iter_rows(values_only=True)]  # type: ignore[union-attr]

    with site.runtime.sessions() as s:
        items = {i.id: i for i in list_feedback(s, Filters())}
    for query in (f"issue={w.issue}&kind=comment", "reader=%E5%88%98%E5%8D%AB%E5%9B%BD",
                  "channel=email&state=open", "kind=votes", ""):
        ids = inbox_ids(query)
        assert ids, query
        for kind in ("csv", "xlsx"):
            table = exported(query, kind)
            assert table[0] == [name for name, _ in COLUMNS], kind
            assert [int(row[0]) for row in table[1:]] == ids, (query, kind)
            for row in table[1:]:  # the whole text, not the inbox's excerpt
                item = items[int(row[0])]
                assert row[11] == item.text and row[5] == (item.reader_name or "")
    assert len(exported(f"issue={w.issue}&kind=comment", "csv")) == 1 + 61
    mail = next(row for row in exported("", "xlsx")[1:] if int(row[0]) == w.mail)
    assert mail[2:4] == ["回复", "邮件"] and mail[9] == "回复：关于本期快报的建议"

    # The file's name in Chinese (RFC 6266), an ASCII one for old browsers.
    answer = site.get(csv_link, cookie)
    name = quote("读者反馈（筛选）-20270115.csv", safe="")
    assert answer.headers["content-disposition"] == (
        f"attachment; filename=\"feedback-20270115.csv\"; filename*=UTF-8''{name}")
    whole = site.get("/admin/feedback/export?format=xlsx", cookie)
    assert "filename*=UTF-8''" + quote("读者反馈-20270115.xlsx", safe="") in \
        whole.headers["content-disposition"]

    # What the inbox refuses, the export refuses: said in Chinese, no file.
    for query, words in (("format=pdf", "只能导出为 CSV 或 XLSX"), ("issue=abc", "期刊应为编号"),
                         ("issue=999", "期刊 999 不存在"), ("kind=nonsense", "不是反馈类别")):
        refused = site.get(f"/admin/feedback/export?{query}", cookie)
        assert refused.status == 400 and words in refused.text, query
        assert "content-disposition" not in refused.headers
        chinese(refused.text)


# -- the reports -----------------------------------------------------------------------------


def test_an_issues_report(site: Site) -> None:
    w = build(site)
    cookie = site.signed_in("li")
    page = site.get(f"/admin/reports/{w.issue}", cookie)
    assert page.status == 200
    with site.runtime.sessions() as s:
        f = issue_figures(s, w.issue, NOW)
        industries_with_readers = sum(1 for i in f.industries if i.readers)
        n_articles = len(f.articles)
        csv = csv_bytes(blocks(f))
    total = f.total
    # The CLI's headline, from the same figures: 3 sent, 王建国 and 刘卫国 opened (a
    # click proves it), 陈晓东's was a proxy's; 3 human clicks by 2 deliveries.
    assert (total.sent, total.opened_human, total.clicks, total.clicked) == (3, 2, 3, 2)
    headline = (f"发出 {total.sent} 份（{f.readers} 人），{percent(total.open_rate)} 打开，"
                f"{total.clicks} 次点击，{f.from_readers} 条反馈")
    assert headline in page.text and "66.7% 打开" in headline
    assert f"点击率（有点击的份数 ÷ 发出的份数）：{percent(total.click_rate)}" in page.text
    assert "另有 1 份只被机器打开" in page.text
    charts = svgs(page.text)
    assert set(charts) == {"timeline", "reach", "votes", "industries"}
    assert count(charts["reach"], "bar") == 2 * n_articles
    assert count(charts["votes"], "bar") == 2 * n_articles
    assert count(charts["industries"], "bar") == 2 * industries_with_readers == 6
    # Per 6 hours for 3 days from 10:00 (the hour it went out): 王建国's open at 11:10
    # in the first; 刘卫国's first event (a click) at 18:40 in the second; 王建国's first
    # click at 17:40 in the second too.
    assert count(charts["timeline"], "point") == 2 * 12
    desc = charts["timeline"].find("{http://www.w3.org/2000/svg}desc").text  # type: ignore[attr-defined]
    assert "1月13日 10时：首次打开 1，首次点击 0；1月13日 16时：首次打开 1，首次点击 2" in desc
    by_day = svgs(site.get(f"/admin/reports/{w.issue}?by=days", cookie).text)["timeline"]
    assert count(by_day, "point") == 2 * 7
    # Links: the issue, its feedback (by kind), the CSV.
    assert f'href="/admin/issues/{w.issue}"' in page.text
    assert f'href="/admin/feedback?issue={w.issue}&amp;kind=comment"' in page.text
    chinese(page.text)
    download = site.get(f"/admin/reports/{w.issue}.csv", cookie)
    assert download.status == 200 and download.body == csv
    assert download.headers["content-type"].startswith("text/csv")
    assert f'filename="report-{w.issue}.csv"' in download.headers["content-disposition"]
    missing = site.get("/admin/reports/999", cookie)
    assert missing.status == 404 and "期刊 999 不存在" in missing.text


def test_reports_list_and_trend(site: Site) -> None:
    cookie = site.signed_in("li")
    empty = site.get("/admin/reports", cookie)
    assert "还没有发出的快报" in empty.text and "<svg" not in empty.text
    w = build(site)
    page = site.get("/admin/reports", cookie)
    assert page.status == 200
    # Newest first in the table, each linked to its report and its issue; the trend in
    # order of publication: the earlier issue (第1期: 1 of 2 opened, no click) first.
    assert page.text.index(f'href="/admin/reports/{w.issue}"') < page.text.index(
        f'href="/admin/reports/{w.second}"')
    assert f'href="/admin/issues/{w.second}"' in page.text
    row = re.search(rf"<td>{w.second}</td>.*?</tr>", page.text, flags=re.S)
    assert row and "50.0%" in row[0] and "0.0%" in row[0]
    trend = svgs(page.text)["trend"]
    assert count(trend, "point") == 4
    desc = trend.find("{http://www.w3.org/2000/svg}desc").text  # type: ignore[attr-defined]
    assert desc.index("第1期：打开率 50.0%，点击率 0.0%") < desc.index("打开率 66.7%，点击率 66.7%")
    assert "图表数据" in page.text
    chinese(page.text)


def test_charts_of_an_issue_not_sent_say_so(site: Site) -> None:
    cookie = site.signed_in("li")
    with site.runtime.sessions() as s:
        issue_id = s.scalars(select(Issue.id)).one()
    page = site.get(f"/admin/reports/{issue_id}", cookie)
    assert page.status == 200 and "本期尚未发送" in page.text and "还没有投递" in page.text
    chinese(page.text)


def test_every_new_page_needs_a_session(site: Site) -> None:
    for path in ("/admin/feedback", "/admin/feedback/1", "/admin/feedback/1/raw",
                 "/admin/reports", "/admin/reports/1", "/admin/reports/1.csv"):
        answer = site.get(path)
        assert answer.status == 303 and answer.headers["location"].startswith("/admin/login")
    assert site.post("/admin/feedback/handled", {"ids": "1"}).status == 403
    with site.runtime.sessions() as s:
        assert s.scalars(select(Reader)).all() == []


# -- reading a stored message (pure) ---------------------------------------------------------


def test_messages_that_are_odd_are_still_shown() -> None:
    from dispatch.feedback.message_view import view

    garbage = view(b"\xff\xfe not a message at all \x00", "email")
    assert garbage.kind == "email" and "not a message" in garbage.body
    no_zone = view(b"Date: 13 Jan 2027 04:00:00 -0000\r\nSubject: =?x-unknown?B?5L2g5aW9?=\r\n\r\n",
                   "email")
    assert ("日期", "2027年1月13日 12:00") in no_zone.headers
    assert any(name == "主题" for name, _ in no_zone.headers)  # an unknown charset: no crash
    not_a_date = view(b"Date: yesterday\r\n\r\nhi", "email")
    assert ("日期", "yesterday") in not_a_date.headers
    broken = view(b"<xml><unclosed>", "wecom")
    assert broken.unreadable and broken.suffix == ".xml"
    card = view(b"<xml><FromUserName>u1</FromUserName><CreateTime>1799800000</CreateTime>"
                b"<MsgType>event</MsgType><Event>template_card_event</Event>"
                b"<EventKey>useful</EventKey></xml>", "wecom")
    assert ("事件", "卡片按钮") in card.headers and ("按钮", "有用") in card.headers
    assert view(None, "web").kind == "none"
