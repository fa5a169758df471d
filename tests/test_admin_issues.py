"""The staff web's issues pages (issue 12, point 2) over real HTTP on SQLite: upload a
file and see it parsed (or its errors), fix tags, preview as a reader, finalize and move
the time, follow a send, retry failures, send a test copy to a real SMTP server. All as
李四, an editor."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from html import unescape

import pytest
from admin_site import Site, admin_site, form_token, visible
from cli_language import english_words
from conftest import SAMPLE_ISSUE
from hostile_files import docx
from served import raw
from site_rows import add_delivery, add_reader
from smtp_servers import MailServer, make_certificates, rcpt
from sqlalchemy import func, select, update

from dispatch import clock, editorial
from dispatch.db.models import (
    Article,
    ArticleTag,
    Delivery,
    Issue,
    IssueChange,
    ReaderChannel,
    Section,
)
from dispatch.db.session import transaction
from dispatch.ingest import parse_file
from dispatch.preview import PREVIEW_TOKEN
from dispatch.web.admin_issues import MORNING, uploaded_name

# 第五行的“第二篇”只有来源，没有正文 (tests/test_ingest_parsers.py)
NO_BODY = "●行业动态\n第一篇\n正文。\n\n第二篇\n来源：新华社\n\n●行业趋势\n标题\n正文。\n"


@pytest.fixture
def site(sqlite_url) -> Iterator[Site]:
    with admin_site(sqlite_url) as served:
        yield served


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


def chinese(page: str) -> None:
    assert english_words(visible(page)) == [], visible(page)


def issue_id(site: Site) -> int:
    with site.runtime.sessions() as s:
        return s.scalars(select(Issue.id).order_by(Issue.id.desc())).first() or 0


def articles(site: Site, issue: int) -> dict[str, int]:
    """Title → id of the issue's articles."""
    with site.runtime.sessions() as s:
        return {title: n for title, n in s.execute(
            select(Article.title, Article.id).join(Section).where(Section.issue_id == issue))}


# admin_site stores the sample issue as the CLI does: its log opens with that ingest, by
# no staff member. `changes` is what came after it.
SETUP = ("ingested", None, None, "issue-sample.txt")


def changes(site: Site, issue: int) -> list[tuple[str, int | None, str | None, str | None]]:
    with site.runtime.sessions() as s:
        rows = [(c.field, c.staff_id, c.old, c.new) for c in s.scalars(
            select(IssueChange).where(IssueChange.issue_id == issue).order_by(IssueChange.id))]
    return rows[1:] if rows[:1] == [SETUP] else rows


def future(hours: int = 48) -> str:
    """A publication time as the datetime-local input sends it (Beijing time)."""
    return clock.local_input(clock.utcnow() + timedelta(hours=hours))


# -- upload ------------------------------------------------------------------------------


def test_upload_the_sample_then_the_same_content_again(sqlite_url) -> None:
    with admin_site(sqlite_url, sample_issue=False) as site:
        cookie = site.signed_in("li")
        form = site.get("/admin/issues/new", cookie)
        assert form.status == 200 and 'type="file"' in form.text
        chinese(form.text)
        token = form_token(form.text)
        data = SAMPLE_ISSUE.read_bytes()
        sent = site.post_file("/admin/issues/new", {"csrf": token}, "file",
                              "C:\\Users\\li\\issue-sample.txt", data, cookie)
        assert sent.status == 303, sent.text
        first = issue_id(site)
        assert sent.headers["location"] == f"/admin/issues/{first}?done=ingested"
        page = site.get(sent.headers["location"], cookie)
        assert page.status == 200 and "已入库为草稿" in page.text
        parsed = parse_file(SAMPLE_ISSUE)
        for section in parsed.sections:
            assert f"<h3>{section.title}</h3>" in page.text
            for article in section.articles:
                assert unescape(article.title) in unescape(page.text)
        assert "文件：issue-sample.txt" in page.text  # the name only, not the browser's path
        assert 'type="checkbox"' in page.text and "草稿" in page.text
        chinese(page.text)
        li = site.staff("li").id
        assert changes(site, first) == [("ingested", li, None, "issue-sample.txt")]
        assert "李四" in page.text and "入库" in page.text

        # The same content again: refused like the CLI, nothing stored, the way on offered.
        again = site.post_file("/admin/issues/new", {"csrf": token}, "file", "copy.txt", data,
                               cookie)
        assert again.status == 409
        assert "内容与已入库的期刊相同" in again.text and f'href="/admin/issues/{first}"' in again.text
        assert re.search(r'name="again" value="1"\s+checked', again.text)
        chinese(again.text)
        assert issue_id(site) == first
        stored = site.post_file("/admin/issues/new", {"csrf": token, "again": "1"}, "file",
                                "copy.txt", data, cookie)
        assert stored.status == 303 and issue_id(site) == first + 1


def test_an_upload_with_an_error_shows_its_line_and_stores_nothing(site: Site) -> None:
    cookie = site.signed_in("li")
    token = site.token(cookie, "/admin/issues/new")
    before = issue_id(site)
    bad = site.post_file("/admin/issues/new", {"csrf": token}, "file", "bad.txt",
                         NO_BODY.encode(), cookie)
    assert bad.status == 400
    assert "没有入库：bad.txt" in bad.text and "第 5 行" in bad.text
    assert "第二篇" in bad.text and "没有正文" in bad.text
    chinese(bad.text)
    for name, data, words in [
        ("empty.txt", b"", "文件为空"),
        ("旧稿.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "另存为"),
        ("图片.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "不支持的文件类型"),
    ]:
        answer = site.post_file("/admin/issues/new", {"csrf": token}, "file", name, data, cookie)
        assert answer.status == 400 and words in answer.text, name
        # .doc: a file's extension (tests/cli_language.py knows the ones we read)
        assert set(english_words(visible(answer.text))) <= {"doc", "png"}, name
    none = site.post("/admin/issues/new", {"csrf": token}, cookie)
    assert none.status == 400 and "请选择要导入的期刊文件" in none.text
    assert issue_id(site) == before


def test_a_word_upload_is_parsed(site: Site) -> None:
    cookie = site.signed_in("li")
    token = site.token(cookie, "/admin/issues/new")
    word = docx([("Heading 1", "产业观察"), ("Heading 2", "新材料企业扩产"),
                 (None, "某新材料企业宣布扩产。")])
    sent = site.post_file("/admin/issues/new", {"csrf": token}, "file", "第3期.docx", word, cookie)
    assert sent.status == 303, sent.text
    page = site.get(sent.headers["location"], cookie)
    assert "<h3>产业观察</h3>" in page.text and "新材料企业扩产" in page.text
    assert "某新材料企业宣布扩产。" in page.text and "文件：第3期.docx" in page.text
    with site.runtime.sessions() as s:
        assert s.get(Issue, issue_id(site)).source_format == "docx"


def test_a_too_large_upload_is_refused_in_chinese_before_it_is_read(site: Site) -> None:
    cookie = site.signed_in("li")
    token = site.token(cookie)
    head = (f"POST /admin/issues/new HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Cookie: dispatch_staff={cookie}\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\n"
            f"Content-Length: {21 * 1024 * 1024}\r\nConnection: close\r\n\r\n")
    body = f'--xyz\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{token}\r\n'
    answer = raw(site.url, (head + body).encode())
    assert answer.status == 413
    text = answer.body.decode()
    assert "文件太大：最多 20 MB" in text
    chinese(text)


# -- tags --------------------------------------------------------------------------------


def test_tag_checkboxes_set_the_editors_tags_and_log_who(site: Site) -> None:
    cookie = site.signed_in("li")
    issue = issue_id(site)
    article = articles(site, issue)["让知识产权更好护航前沿科技创新"]
    page = site.get(f"/admin/issues/{issue}", cookie)
    assert page.text.count('name="tag" value="general"') == 4  # 综合 under every article
    assert f'id="a{article}-biomed"' in page.text
    token = form_token(page.text)
    path = f"/admin/issues/{issue}/articles/{article}/tags"
    saved = site.post(path, [("csrf", token), ("tag", "biomed"), ("tag", "materials"),
                             ("action", "save")], cookie)
    assert saved.status == 303 and saved.headers["location"].endswith(f"#a{article}")
    with site.runtime.sessions() as s:
        tags = {(t.industry, t.origin) for t in s.scalars(
            select(ArticleTag).where(ArticleTag.article_id == article))}
    assert {("biomed", "editor"), ("materials", "editor")} <= tags
    page = site.get(saved.headers["location"].split("#")[0], cookie)
    assert "标签已保存" in page.text and "新材料、生物医药（编辑指定）" in page.text
    assert "恢复自动标签" in page.text
    li = site.staff("li").id
    [(field, by, old, new)] = changes(site, issue)
    assert (field, by, new) == ("tags", li, "新材料、生物医药（编辑指定）") and "（自动）" in (old or "")
    assert "改标签：让知识产权更好护航前沿科技创新" in page.text

    # Refusals of the domain, in its words; nothing changes.
    for fields, words in [([], "至少要有一个产业"), ([("tag", "general"), ("tag", "it")], "综合"),
                          ([("tag", "nonsense")], "不认识的产业")]:
        refused = site.post(path, [("csrf", token), *fields, ("action", "save")], cookie)
        assert refused.status == 400 and words in refused.text
        chinese(refused.text)
    assert len(changes(site, issue)) == 1

    back = site.post(path, {"csrf": token, "action": "auto"}, cookie)
    assert back.status == 303
    page = site.get(f"/admin/issues/{issue}", cookie)
    assert "恢复自动标签" not in page.text
    assert changes(site, issue)[-1][3].endswith("（自动）")
    other = site.post(f"/admin/issues/{issue + 1}/articles/{article}/tags",
                      {"csrf": token, "action": "auto"}, cookie)
    assert other.status == 404

    # A finalized issue's tags are read-only, with the reason.
    assert site.post(f"/admin/issues/{issue}/finalize", {"csrf": token, "publish_at": future()},
                     cookie).status == 303
    page = site.get(f"/admin/issues/{issue}", cookie)
    assert 'name="tag"' not in page.text and "内容已冻结，不能改标签" in page.text
    late = site.post(path, {"csrf": token, "action": "auto"}, cookie)
    assert late.status == 400 and "内容已冻结" in late.text
    chinese(late.text)


# -- publication -------------------------------------------------------------------------


def test_finalize_reschedule_and_their_refusals(site: Site) -> None:
    cookie = site.signed_in("li")
    issue = issue_id(site)
    page = site.get(f"/admin/issues/{issue}", cookie)
    token = form_token(page.text)
    morning = clock.local_input(clock.next_local(clock.utcnow(), MORNING))
    assert f'type="datetime-local" id="publish_at" name="publish_at" value="{morning}"' in page.text
    path = f"/admin/issues/{issue}/finalize"
    past = clock.local_input(clock.utcnow() - timedelta(days=1))
    for value, words in [("", "发布时间：请填写"), ("明天早上", "不是有效的日期和时间"),
                         (past, "已过")]:
        refused = site.post(path, {"csrf": token, "publish_at": value}, cookie)
        assert refused.status == 400 and words in refused.text, value
        assert f'value="{value}"' in refused.text  # what was typed stays
        assert "dispatch" not in visible(refused.text)  # no command line in the web
        chinese(refused.text)
    with site.runtime.sessions() as s:
        assert s.get(Issue, issue).status == "draft"

    when = future(30)
    assert site.post(path, {"csrf": token, "publish_at": when}, cookie).status == 303
    page = site.get(f"/admin/issues/{issue}", cookie)
    assert "已定稿" in page.text and "改发布时间" in page.text
    assert f'value="{when}"' in page.text
    listed = site.get("/admin/issues", cookie)
    scheduled = listed.text.split('id="scheduled"')[1].split("</table>")[0]
    shown = clock.cn_time(clock.parse_local_input(when))
    assert f'href="/admin/issues/{issue}"' in scheduled and shown in scheduled
    chinese(listed.text)
    again = site.post(path, {"csrf": token, "publish_at": future()}, cookie)
    assert again.status == 400 and "已定稿，内容已冻结，不能再定稿" in again.text

    move = f"/admin/issues/{issue}/reschedule"
    later = future(72)
    assert site.post(move, {"csrf": token, "publish_at": later}, cookie).status == 303
    page = site.get(f"/admin/issues/{issue}?done=publish_at", cookie)
    assert "发布时间已修改" in page.text and clock.cn_time(clock.parse_local_input(later)) in page.text
    refused = site.post(move, {"csrf": token, "publish_at": past}, cookie)
    assert refused.status == 400 and "已过" in refused.text
    li = site.staff("li").id
    show = clock.cn_time
    assert changes(site, issue) == [
        ("finalized", li, "草稿", show(clock.parse_local_input(when))),
        ("publish_at", li, show(clock.parse_local_input(when)), show(clock.parse_local_input(later))),
    ]
    assert "定稿" in page.text and "改发布时间" in page.text and "李四" in page.text

    # Once it has gone out, the time stays.
    with transaction(site.runtime.sessions) as s:
        s.execute(update(Issue).where(Issue.id == issue)
                  .values(status="sending", fanned_out_at=clock.utcnow()))
    late = site.post(move, {"csrf": token, "publish_at": later}, cookie)
    assert late.status == 400 and "已开始发送，发布时间不能再改" in late.text
    chinese(late.text)


def test_delete_a_draft_after_confirming(site: Site) -> None:
    cookie = site.signed_in("li")
    issue = issue_id(site)
    confirm = site.get(f"/admin/issues/{issue}/delete", cookie)
    assert confirm.status == 200 and "确认删除" in confirm.text and "不能恢复" in confirm.text
    chinese(confirm.text)
    token = form_token(confirm.text)
    gone = site.post(f"/admin/issues/{issue}/delete", {"csrf": token}, cookie)
    assert gone.status == 303 and gone.headers["location"] == "/admin/issues?done=deleted"
    assert "草稿已删除" in site.get(gone.headers["location"], cookie).text
    assert issue_id(site) == 0
    assert site.get(f"/admin/issues/{issue}", cookie).status == 404
    with site.runtime.sessions() as s:  # who deleted it outlives the issue
        [record] = s.scalars(select(IssueChange).where(IssueChange.field == "deleted")).all()
        assert record.issue_id is None and record.staff_id == site.staff("li").id
        assert record.old is not None and record.old.startswith(f"期刊 {issue}《")

    with transaction(site.runtime.sessions) as s:
        kept = editorial.store_issue(s, parse_file(SAMPLE_ISSUE), "kept.txt", site.runtime.rules,
                                     again=True)
        editorial.finalize(s, kept.id, clock.utcnow() + timedelta(days=1))
        kept_id = kept.id
    frozen = site.get(f"/admin/issues/{kept_id}/delete", cookie)
    assert "确认删除" not in frozen.text and "内容已冻结，不能删除" in frozen.text
    refused = site.post(f"/admin/issues/{kept_id}/delete", {"csrf": token}, cookie)
    assert refused.status == 409 and "不能删除" in refused.text
    assert issue_id(site) == kept_id
    with site.runtime.sessions() as s:  # a refused deletion records nothing
        assert len(s.scalars(select(IssueChange).where(IssueChange.field == "deleted")).all()) == 1


# -- following a send --------------------------------------------------------------------


def test_progress_fragment_follows_the_deliveries_until_done(site: Site) -> None:
    cookie = site.signed_in("li")
    issue = issue_id(site)
    with transaction(site.runtime.sessions) as s:
        s.execute(update(Issue).where(Issue.id == issue).values(
            status="sending", publish_at=clock.utcnow(), fanned_out_at=clock.utcnow()))
        readers = [add_reader(s, f"读者{i}") for i in range(3)]
        for r in readers:
            add_delivery(s, issue, r)
        s.add(ReaderChannel(reader_id=readers[0].id, channel="wecom"))
        s.add(Delivery(issue_id=issue, reader_id=readers[0].id, channel="wecom",
                       token="w" * 32))
    page = site.get(f"/admin/issues/{issue}", cookie)
    assert f'data-live="/admin/issues/{issue}/progress" data-every="2"' in page.text
    assert "data-live-done" not in page.text.split('id="progress"')[1].split("<h2>")[0]

    def counts() -> tuple[dict[str, list[str]], str]:
        answer = site.get(f"/admin/issues/{issue}/progress", cookie)
        assert answer.status == 200 and "<html" not in answer.text  # a fragment
        chinese(answer.text)
        rows = re.findall(r'<tr data-channel="([^"]+)">(.*?)</tr>', answer.text)
        return {ch: re.findall(r'class="num">(\d+)<', cells) for ch, cells in rows}, answer.text

    # 排队 发送中 已发送 待重试 失败 已取消 合计
    now, text = counts()
    assert now == {"邮件": ["3", "0", "0", "0", "0", "0", "3"],
                   "企业微信": ["1", "0", "0", "0", "0", "0", "1"]}
    assert "data-live-done" not in text and "发送中" in text
    assert "企业微信渠道尚未启用：1 个企业微信投递留在排队中" in text

    def set_state(state: str, channel: str = "email", n: int = 1) -> None:
        with transaction(site.runtime.sessions) as s:
            ids = s.scalars(select(Delivery.id).where(
                Delivery.issue_id == issue, Delivery.channel == channel,
                Delivery.state.in_(("queued", "sending", "retry"))).order_by(Delivery.id)
                .limit(n)).all()
            s.execute(update(Delivery).where(Delivery.id.in_(ids)).values(state=state))

    set_state("sending", n=2)
    assert counts()[0]["邮件"] == ["1", "2", "0", "0", "0", "0", "3"]
    set_state("sent", n=2)
    set_state("retry")
    assert counts()[0]["邮件"] == ["0", "0", "2", "1", "0", "0", "3"]
    set_state("failed")
    set_state("cancelled", channel="wecom")
    with transaction(site.runtime.sessions) as s:
        s.execute(update(Issue).where(Issue.id == issue).values(status="sent"))
    now, text = counts()
    assert now == {"邮件": ["0", "0", "2", "0", "1", "0", "3"],
                   "企业微信": ["0", "0", "0", "0", "0", "1", "1"]}
    assert "data-live-done" in text and "已全部处理完" in text and "已发送" in text
    # The page itself starts finished: live.js never polls.
    assert "data-live-done" in site.get(f"/admin/issues/{issue}", cookie).text


def test_failures_with_reasons_and_retry(site: Site) -> None:
    cookie = site.signed_in("li")
    issue = issue_id(site)
    with transaction(site.runtime.sessions) as s:
        s.execute(update(Issue).where(Issue.id == issue).values(
            status="sent", publish_at=clock.utcnow(), fanned_out_at=clock.utcnow()))
        gone = add_reader(s, "乙二", "b2@example.gov.cn")
        fine = add_reader(s, "甲一", "a1@example.gov.cn")
        add_delivery(s, issue, gone, state="failed", attempts=3,
                     last_error="550 5.1.1 user unknown")
        add_delivery(s, issue, fine, state="failed", attempts=1,
                     last_error="not sent: reader is inactive")
    page = site.get(f"/admin/issues/{issue}", cookie)
    failures = page.text.split('id="failures"')[1].split("</table>")[0]
    assert "乙二" in failures and "邮件服务器回复：550 5.1.1 user unknown" in failures
    assert "未发送：读者已停用" in failures
    assert "重新发送失败的投递" in page.text
    retried = site.post(f"/admin/issues/{issue}/retry", {"csrf": form_token(page.text)}, cookie)
    assert retried.status == 303
    page = site.get(retried.headers["location"], cookie)
    assert "2 个失败的投递已重新排队" in page.text and 'id="failures"' not in page.text
    chinese(page.text)
    with site.runtime.sessions() as s:
        assert s.scalar(select(func.count()).where(Delivery.issue_id == issue,
                                                   Delivery.state == "queued")) == 2
        assert s.get(Issue, issue).status == "sending"
    assert changes(site, issue) == [("retried", site.staff("li").id, None, "2 个")]
    assert "重试失败的投递" in page.text


# -- preview and test copy ---------------------------------------------------------------


def _readers(site: Site) -> dict[str, int]:
    with transaction(site.runtime.sessions) as s:
        a1 = add_reader(s, "甲一", "a1@example.gov.cn", industries=["biomed"])
        a1.position = "局长"
        everything = add_reader(s, "丙三", "c3@example.gov.cn", follows_all=True)
        everything.wecom_userid = "c3wx"
        off = add_reader(s, "丁四", "d4@example.gov.cn", industries=["hair"])
        off.status = "inactive"
        return {"甲一": a1.id, "丙三": everything.id, "丁四": off.id}


def test_preview_the_email_and_the_wecom_message_as_a_chosen_reader(site: Site) -> None:
    cookie = site.signed_in("li")
    issue = issue_id(site)
    alone = site.get(f"/admin/issues/{issue}/preview", cookie)  # no readers yet: 测试读者
    assert alone.status == 200 and "当前：测试读者" in alone.text
    frame = site.get(f"/admin/issues/{issue}/preview/email?reader=0", cookie)
    assert frame.status == 200 and "测试读者" in frame.text

    ids = _readers(site)
    page = site.get(f"/admin/issues/{issue}/preview", cookie)  # a reader who follows all
    assert f"读者 {ids['丙三']} 丙三" in page.text
    assert f'src="/admin/issues/{issue}/preview/email?reader={ids["丙三"]}"' in page.text
    chinese(page.text)

    found = site.get(f"/admin/issues/{issue}/preview?q=%E7%94%B2", cookie)  # 甲
    assert re.search(rf'<option value="{ids["甲一"]}"[^>]*>{ids["甲一"]} 甲一', found.text)
    assert "丙三 c3" not in found.text
    page = site.get(f"/admin/issues/{issue}/preview?reader={ids['甲一']}", cookie)
    assert f"读者 {ids['甲一']} 甲一，关注：生物医药" in page.text
    assert "没有企业微信账号" in page.text
    frame = site.get(f"/admin/issues/{issue}/preview/email?reader={ids['甲一']}", cookie)
    assert frame.status == 200 and "尊敬的甲一局长" in frame.text
    assert PREVIEW_TOKEN in frame.text  # every link: no delivery, nothing recorded
    assert frame.headers["x-frame-options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in frame.headers["content-security-policy"]
    assert "script-src" not in frame.headers["content-security-policy"]
    assert site.get(f"/admin/issues/{issue}", cookie).headers["x-frame-options"] == "DENY"

    # A reader who is sent nothing: previewed, with the warning.
    off = site.get(f"/admin/issues/{issue}/preview?reader={ids['丁四']}", cookie)
    assert "的状态是“停用”，不会收到任何期刊" in off.text
    missing = site.get(f"/admin/issues/{issue}/preview?reader=99999", cookie)
    assert "没有编号为 99999 的读者" in missing.text

    # The WeChat Work message in every form staff may configure, as a card.
    wecom = site.runtime.config.wecom
    expected = {"news": "图文消息", "markdown": "Markdown 消息", "textcard": "文本卡片",
                "template_card": "模板卡片"}
    for msgtype, words in expected.items():
        wecom.message_type = msgtype
        page = site.get(f"/admin/issues/{issue}/preview?reader={ids['丙三']}", cookie)
        part = page.text.split('id="wecom"')[1].split("</section>")[0]
        assert f"消息类型：{words}" in part, msgtype
        assert "上海国际科技创新中心" in part, msgtype
        assert "wcard" in part and "无法生成" not in part
        chinese(page.text)
    assert "有用" in part and "没用" in part  # the template card's buttons
    wecom.personal_links = False  # a template card needs them: said, not crashed
    page = site.get(f"/admin/issues/{issue}/preview", cookie)
    assert "企业微信消息无法生成" in page.text
    chinese(page.text)
    with site.runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0


def test_test_copy_to_a_real_smtp_server(site: Site, certificates) -> None:
    ids = _readers(site)
    issue = issue_id(site)
    cookie = site.signed_in("li")
    faults = {"nobody@example.gov.cn": rcpt("550 5.1.1 user unknown")}
    with MailServer(security="starttls", certificates=certificates,
                    users={"bulletin": "s3cret"}, faults=faults) as server:
        config = site.runtime.config
        config.smtp.host, config.smtp.port = server.host, server.port
        config.smtp.security, config.smtp.username = "starttls", "bulletin"
        config.smtp.tls_ca_file = str(certificates.ca_file)
        config.secrets.smtp_password = "s3cret"
        page = site.get(f"/admin/issues/{issue}/preview?reader={ids['甲一']}", cookie)
        token = form_token(page.text)
        path = f"/admin/issues/{issue}/test-copy"
        sent = site.post(path, {"csrf": token, "reader": str(ids["甲一"]),
                                "to": "editor@example.gov.cn"}, cookie)
        assert sent.status == 303, sent.text
        [m] = server.accepted
        assert list(m.rcpt_tos) == ["editor@example.gov.cn"] and server.logins == [("bulletin", True)]
        message = email.message_from_bytes(m.data, policy=email.policy.default)
        html = message.get_body(("html",)).get_content()
        assert "尊敬的甲一局长" in html and PREVIEW_TOKEN in html
        page = site.get(sent.headers["location"], cookie)
        assert "测试稿已发到 editor@example.gov.cn（按 甲一 的视角）" in page.text
        chinese(page.text)
        assert changes(site, issue) == [("test_copy", site.staff("li").id, None,
                                         "editor@example.gov.cn（按 甲一 的视角）")]

        bounced = site.post(path, {"csrf": token, "reader": "0", "to": "nobody@example.gov.cn"},
                            cookie)
        assert bounced.status == 502
        assert "测试稿没有发到 nobody@example.gov.cn（被退回）" in bounced.text
        assert "550 5.1.1 user unknown" in bounced.text
        bad = site.post(path, {"csrf": token, "reader": "0", "to": "editor＠example.gov.cn"},
                        cookie)
        assert bad.status == 400 and "收件邮箱：" in bad.text and "全角" in bad.text
        assert 'value="editor＠example.gov.cn"' in bad.text
        unknown = site.post(path, {"csrf": token, "reader": "99999", "to": "editor@example.gov.cn"},
                            cookie)
        assert unknown.status == 400 and "没有编号为 99999 的读者" in unknown.text
        # the server's reply stays word for word, after a Chinese lead-in
        chinese(bounced.text.replace("550 5.1.1 user unknown", ""))
        chinese(bad.text)
        assert len(server.accepted) == 1 and len(changes(site, issue)) == 1
    with site.runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0


# -- the list and the language -----------------------------------------------------------


def test_the_list_every_page_in_chinese_and_links(site: Site) -> None:
    cookie = site.signed_in("li")
    issue = issue_id(site)
    listed = site.get("/admin/issues", cookie)
    assert listed.status == 200 and "没有已定稿、等待发送的期刊" in listed.text
    row = listed.text.split('id="issues"')[1]
    assert f'href="/admin/issues/{issue}"' in row and "草稿" in row
    page = site.get(f"/admin/issues/{issue}", cookie)
    assert f'href="/admin/reports/{issue}"' in page.text
    assert f'href="/admin/feedback?issue={issue}"' in page.text
    assert f'href="/admin/issues/{issue}/preview"' in page.text
    for path in ("/admin/issues", "/admin/issues/new", f"/admin/issues/{issue}",
                 f"/admin/issues/{issue}/progress", f"/admin/issues/{issue}/delete",
                 f"/admin/issues/{issue}/preview", "/admin/issues/999"):
        answer = site.get(path, cookie)
        chinese(answer.text)
        assert answer.status == (404 if path.endswith("999") else 200), path
    assert f'href="/admin/issues/{issue}"' in site.get("/admin", cookie).text
    # What no form sends is the default, never an error.
    for odd in ("%C2%B2", "9" * 5000, "-1", "%EF%BC%93"):
        assert site.get(f"/admin/issues/{issue}/preview?reader={odd}&q={odd}", cookie).status == 200
        assert site.get(f"/admin/issues/{issue}/preview/email?reader={odd}", cookie).status == 200
        assert site.get(f"/admin/issues/{issue}?done=retried&n={odd}", cookie).status == 200


def test_times_as_the_datetime_input_sends_them_and_uploaded_names() -> None:
    half_past_eight = datetime(2026, 12, 1, 0, 30)  # 08:30 in Beijing, as stored (UTC)
    for typed in ("2026-12-01T08:30", "2026-12-01T08:30:00", "2026-12-01 08:30"):
        assert clock.parse_local_input(typed) == half_past_eight
    with pytest.raises(ValueError):
        clock.parse_local_input("2026-12-01T25:00")
    assert clock.local_input(half_past_eight) == "2026-12-01T08:30"
    assert clock.next_local(half_past_eight - timedelta(minutes=1), MORNING) == half_past_eight
    assert clock.next_local(half_past_eight, MORNING) == half_past_eight + timedelta(days=1)
    assert uploaded_name("C:\\Users\\li\\第3期.docx") == "第3期.docx"
    assert uploaded_name("../../etc/passwd") == "passwd"
    assert uploaded_name(" \t") == "上传的文件"
    long = uploaded_name("长" * 300 + ".docx")
    assert len(long) == 200 and long.endswith("长.docx")
