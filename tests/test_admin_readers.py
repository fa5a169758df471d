"""The staff web's readers pages (issue 12, point 3) over real HTTP on SQLite, as an editor
uses them: the list with search, filters and pages; adding and editing a reader with the
CLI's checks; stopping and starting sending; importing a list in two steps (errors by row
and column first, nothing written; then a preview, then 确认导入); exporting the filtered
list; and a reader's page with what they received, did and said, and who changed what."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from admin_site import Site, admin_site, form_token, visible
from cli_language import english_words
from conftest import SAMPLE_READERS
from openpyxl import Workbook, load_workbook
from served import Answer
from site_rows import add_delivery, add_reader
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatch.clock import cn_time, utcnow
from dispatch.db.models import (
    Article,
    Delivery,
    Event,
    Feedback,
    Issue,
    Reader,
    ReaderChange,
    ReaderChannel,
)
from dispatch.db.session import transaction
from dispatch.readers.apply import import_lists, list_readers, state_of
from dispatch.readers.export import csv_bytes
from dispatch.web.held import MAX_AGE

SAMPLE_ROWS = 26
HEADER = "姓名,单位,职务,分组,邮箱,企业微信账号,关注产业,接收方式\n"


@pytest.fixture
def site(sqlite_url, tmp_path) -> Iterator[Site]:
    with admin_site(sqlite_url) as served:
        # The instance's folder (var/uploads/ for held files) is the test's own.
        served.runtime.config.base_dir = tmp_path / "instance"
        yield served


@pytest.fixture
def editor(site: Site) -> str:
    return site.signed_in("li")


def chinese(answer: Answer) -> Answer:
    assert english_words(visible(answer.text)) == [], visible(answer.text)
    return answer


def ok(answer: Answer) -> str:
    assert answer.status == 200, answer.text
    return chinese(answer).text


def listed_ids(page: str) -> list[int]:
    body = page.split("<tbody>", 1)[1] if "<tbody>" in page else ""
    return [int(n) for n in re.findall(r'<a href="/admin/readers/(\d+)">', body)]


def readers_count(site: Site) -> int:
    with site.runtime.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Reader)) or 0)


def reader_by_email(site: Site, email: str) -> Reader:
    with site.runtime.sessions() as s:
        return s.scalars(select(Reader).where(Reader.email == email)).one()


def held_files(site: Site) -> list[Path]:
    folder = site.runtime.config.base_dir / "var" / "uploads"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def import_sample(site: Site) -> None:
    report = import_lists(site.runtime.sessions, [SAMPLE_READERS])
    assert report.ok, report.errors


def by_email(session: Session, name: str, email: str, industries: list[str]) -> Reader:
    """A reader who receives by email (site_rows' readers have no channel rows)."""
    reader = add_reader(session, name, email, industries=industries)
    reader.channel_rows.append(ReaderChannel(channel="email"))
    session.flush()
    return reader


def _clock_now(site: Site) -> datetime:
    """The site's clock as the tables store times (naive UTC)."""
    return datetime.fromtimestamp(site.clock.now, UTC).replace(tzinfo=None)


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, page
    return found.group(1)


# -- the list ----------------------------------------------------------------------------


def test_list_search_filters_and_pages(site: Site, editor: str) -> None:
    import_sample(site)
    with transaction(site.runtime.sessions) as s:
        for i in range(40):
            add_reader(s, f"读者{i:02d}", f"r{i:02d}@example.cn", industries=["food"])
        li = s.scalars(select(Reader).where(Reader.email == "lihongmei@example.gov.cn")).one()
        li.paused_until = _clock_now(site) + timedelta(days=3)
        han = s.scalars(select(Reader).where(Reader.name == "韩雪")).one()
        han.email_suspended_at, han.email_bounces = _clock_now(site), 3
    total = SAMPLE_ROWS + 40
    page = ok(site.get("/admin/readers", editor))
    assert f"全部读者共 {total} 位" in page and "第 1 页，共 2 页" in page
    first = listed_ids(page)
    assert len(first) == 50 and "全部" in page and "邮件、企业微信" in page
    second = ok(site.get("/admin/readers?page=2", editor))
    assert len(listed_ids(second)) == total - 50 and not set(listed_ids(second)) & set(first)
    assert listed_ids(ok(site.get("/admin/readers?page=99", editor))) == listed_ids(second)

    def names(query: str) -> set[str]:
        page = ok(site.get(f"/admin/readers?{query}", editor))
        return set(re.findall(r'<a href="/admin/readers/\d+">([^<]+)</a>', page))

    assert names("q=" + quote("李红")) == {"李红梅"}
    assert names("q=LIHONGMEI") == {"李红梅"}  # an address, any case
    assert "赵志强" in names("q=" + quote("许昌市人民政府"))
    with site.runtime.sessions() as s:
        expected = {r.state.name for r in list_readers(s)
                    if r.state.follows_all or "biomed" in r.state.industries}
    assert names("industry=biomed") == expected and "王建国" in expected  # 全部 counts
    leaders = names("group=" + quote("市领导"))
    assert "王建国" in leaders and "读者00" not in leaders
    assert "赵志强" in names("channel=wecom") and "读者00" not in names("channel=wecom")
    assert names("status=paused") == {"李红梅"}
    assert names("status=email_suspended") == {"韩雪"} == names("bounced=1")
    assert "李红梅" not in names("status=active") and "韩雪" not in names("status=active")
    assert names("status=active&group=" + quote("市领导") + "&channel=email") == (
        leaders - {"李红梅", "赵志强"})
    # The filters stay in the page links, and a value no choice has is ignored.
    page = ok(site.get("/admin/readers?status=active&unsubscribed=hide", editor))
    assert 'href="/admin/readers?status=active&amp;unsubscribed=hide&amp;page=2"' in page
    assert "符合条件的读者共" in page
    assert ok(site.get("/admin/readers?status=nonsense&industry=%3Cx%3E", editor)).count(
        "<tr>") == 51
    none = ok(site.get("/admin/readers?q=" + quote("没有这个人"), editor))
    assert "没有符合条件的读者" in none


# -- add, edit, stop and start ------------------------------------------------------------


def test_add_refuses_a_bad_email_then_adds(site: Site, editor: str) -> None:
    form = ok(site.get("/admin/readers/new", editor))
    assert form.count('type="checkbox" id="ind-') == 12 and "关注全部产业" in form
    token = form_token(form)
    fields = [("csrf", token), ("name", "周明"), ("organization", "许昌市科技局"),
              ("position", "科长"), ("group", "市直部门"), ("email", "zhouming@@example.cn"),
              ("wecom_userid", ""), ("industries", "biomed"), ("industries", "food"),
              ("channels", "email")]
    refused = site.post("/admin/readers/new", fields, editor)
    page = ok(refused)
    assert "没有保存" in page and "<li>邮箱“zhouming@@example.cn”格式不正确" in page
    assert 'value="周明"' in page and 'value="许昌市科技局"' in page  # what was typed is kept
    assert re.search(r'value="biomed" checked', page) and re.search(r'value="food" checked', page)
    assert readers_count(site) == 0
    # No address at all: named too.
    empty = ok(site.post("/admin/readers/new", [(k, "" if k == "email" else v)
                                                 for k, v in fields], editor))
    assert "没有邮箱，也没有企业微信账号" in empty and readers_count(site) == 0

    fields = [(k, "zhouming@example.cn" if k == "email" else v) for k, v in fields]
    added = site.post("/admin/readers/new", fields, editor)
    assert added.status == 303
    reader = reader_by_email(site, "zhouming@example.cn")
    assert added.headers["location"] == f"/admin/readers/{reader.id}?done=added"
    with site.runtime.sessions() as s:
        state = state_of(s.get(Reader, reader.id))
        change = s.scalars(select(ReaderChange).where(ReaderChange.reader_id == reader.id)).one()
    assert (state.name, state.group, state.industries, state.channels) == (
        "周明", "市直部门", ("biomed", "food"), ("email",))
    assert (change.field, change.source, change.staff_id) == ("created", "staff",
                                                               site.staff("li").id)
    page = ok(site.get(added.headers["location"], editor))
    assert "已添加读者" in page and "加入名单" in page and "工作人员（李四）" in page
    # The same address again is refused, naming the reader it belongs to.
    again = ok(site.post("/admin/readers/new", fields, editor))
    assert "已属于" in again and readers_count(site) == 1


def test_edit_industries_by_checkboxes_is_logged_with_who(site: Site, editor: str) -> None:
    with transaction(site.runtime.sessions) as s:
        reader_id = by_email(s, "孙丽", "sunli@example.cn", ["biomed"]).id
    form = ok(site.get(f"/admin/readers/{reader_id}/edit", editor))
    assert re.search(r'value="biomed" checked', form) and not re.search(r'value="nev" checked', form)
    assert 'value="sunli@example.cn"' in form
    base = [("csrf", form_token(form)), ("name", "孙丽"), ("organization", ""),
            ("position", ""), ("group", ""), ("email", "sunli@example.cn"), ("wecom_userid", "")]
    # Nothing ticked and not 全部: refused, the field named, nothing changed.
    refused = ok(site.post(f"/admin/readers/{reader_id}/edit", base, editor))
    assert "关注产业" in refused and "为空" in refused
    saved = site.post(f"/admin/readers/{reader_id}/edit",
                      [*base, ("industries", "biomed"), ("industries", "nev")], editor)
    assert saved.status == 303 and saved.headers["location"].endswith("done=saved")
    with site.runtime.sessions() as s:
        assert state_of(s.get(Reader, reader_id)).industries == ("biomed", "nev")
        changes = s.execute(select(ReaderChange.field, ReaderChange.old, ReaderChange.new,
                                   ReaderChange.source, ReaderChange.staff_id)
                            .where(ReaderChange.reader_id == reader_id)).all()
    assert [tuple(c) for c in changes] == [
        ("industries", "biomed", "biomed,nev", "staff", site.staff("li").id)]
    page = ok(site.get(f"/admin/readers/{reader_id}?done=saved", editor))
    assert "已保存修改" in page and "关注产业：生物医药 → 生物医药、新能源汽车" in page
    assert "工作人员（李四）" in page
    follows_all = site.post(f"/admin/readers/{reader_id}/edit",
                            [*base, ("follows_all", "1"), ("industries", "biomed")], editor)
    assert follows_all.status == 303
    with site.runtime.sessions() as s:
        assert state_of(s.get(Reader, reader_id)).follows_all
    unchanged = site.post(f"/admin/readers/{reader_id}/edit", [*base, ("follows_all", "1")],
                          editor)
    assert unchanged.headers["location"].endswith("done=unchanged")
    assert site.get("/admin/readers/999999/edit", editor).status == 404
    assert site.get("/admin/readers/99999999999999999999", editor).status == 404


def test_deactivate_and_activate_ask_first(site: Site, editor: str) -> None:
    with transaction(site.runtime.sessions) as s:
        reader_id = add_reader(s, "钱伟", "qianwei@example.cn", industries=["food"]).id
        gone_id = add_reader(s, "吴芳", "wufang@example.cn", industries=["food"]).id
        s.get(Reader, gone_id).status = "unsubscribed"
    ask = ok(site.get(f"/admin/readers/{reader_id}/deactivate", editor))
    assert "确定停用" in ask and _status(site, reader_id) == "active"
    done = site.post(f"/admin/readers/{reader_id}/deactivate", {"csrf": form_token(ask)}, editor)
    assert done.status == 303 and _status(site, reader_id) == "inactive"
    page = ok(site.get(done.headers["location"], editor))
    assert "已停用" in page and "状态：正常 → 停用" in page and "工作人员（李四）" in page
    assert "停用" in ok(site.get("/admin/readers?status=inactive", editor))

    ask = ok(site.get(f"/admin/readers/{reader_id}/activate", editor))
    assert "确定恢复发送" in ask
    back = site.post(f"/admin/readers/{reader_id}/activate", {"csrf": form_token(ask)}, editor)
    assert back.status == 303 and _status(site, reader_id) == "active"
    assert "已恢复发送（状态改为正常）" in ok(site.get(back.headers["location"], editor))
    with site.runtime.sessions() as s:
        staff = s.scalars(select(ReaderChange.staff_id).where(
            ReaderChange.reader_id == reader_id)).all()
    assert staff == [site.staff("li").id] * 2

    # One who unsubscribed comes back only when they asked for it.
    ask = ok(site.get(f"/admin/readers/{gone_id}/activate", editor))
    assert "读者本人要求重新接收" in ask
    refused = site.post(f"/admin/readers/{gone_id}/activate", {"csrf": form_token(ask)}, editor)
    assert "只有读者本人要求重新接收时" in ok(refused) and _status(site, gone_id) == "unsubscribed"
    asked = site.post(f"/admin/readers/{gone_id}/activate",
                      {"csrf": form_token(ask), "resubscribe": "1"}, editor)
    assert asked.status == 303 and _status(site, gone_id) == "active"


def _status(site: Site, reader_id: int) -> str:
    with site.runtime.sessions() as s:
        return s.get(Reader, reader_id).status


# -- import ---------------------------------------------------------------------------------

LIST_BAD = (HEADER
            + "刘洋,许昌市工信局,科长,,liuyang@example.cn,,生物医药,\n"
            + "马丽,许昌市商务局,,,mali@example,,食品,\n"
            + "胡军,许昌市发改委,,,hujun@example.cn,,火箭,\n")
LIST_GOOD = (HEADER
             + "刘洋,许昌市工信局,科长,,liuyang@example.cn,,生物医药,\n"
             + "马丽,许昌市商务局,,,mali@example.cn,,食品,\n"
             + "胡军,许昌市发改委,,,hujun@example.cn,,新材料,\n")


def _upload(site: Site, cookie: str, filename: str, data: bytes) -> Answer:
    token = form_token(site.get("/admin/readers/import", cookie).text)
    return site.post_file("/admin/readers/import", {"csrf": token}, "file", filename, data,
                          cookie)


def _confirm(site: Site, cookie: str, preview: str) -> Answer:
    return site.post("/admin/readers/import/confirm", {
        "csrf": form_token(preview), "held": hidden(preview, "held"),
        "name": hidden(preview, "name"), "token": hidden(preview, "token"),
        "digest": hidden(preview, "digest")}, cookie)


def test_import_csv_errors_first_then_preview_then_confirm(
    site: Site, editor: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    page = ok(site.get("/admin/readers/import", editor))
    assert "检查名单" in page and "关注产业" in page
    bad = ok(_upload(site, editor, "名单.csv", LIST_BAD.encode()))
    assert "2 处错误，没有导入任何内容" in bad
    rows = re.findall(r"<tr><td>([^<]*)</td><td class=\"num\">(\d*)</td><td>([^<]*)</td>"
                      r"<td>([^<]*)</td></tr>", bad)
    assert [(f, r, c) for f, r, c, _ in rows] == [("名单.csv", "3", "邮箱"),
                                                  ("名单.csv", "4", "关注产业")]
    assert "未知产业“火箭”" in rows[1][3]
    assert readers_count(site) == 0 and held_files(site) == []

    preview = ok(_upload(site, editor, "名单.csv", LIST_GOOD.encode()))
    assert "确认导入" in preview and "共 3 行，没有错误" in preview
    assert re.search(r'<td class="num">3</td><td class="num">0</td><td class="num">0</td>',
                     preview)
    assert all(name in preview for name in ("刘洋", "马丽", "胡军"))
    assert readers_count(site) == 0  # nothing before 确认导入
    (held,) = held_files(site)
    assert held.suffix == ".csv" and "名单" not in held.name
    assert held.parent == site.runtime.config.base_dir / "var" / "uploads"
    # Another session cannot confirm it.
    other = site.signed_in("zhang")
    stolen = ok(site.post("/admin/readers/import/confirm", {
        "csrf": form_token(site.get("/admin", other).text), "held": hidden(preview, "held"),
        "name": hidden(preview, "name"), "token": hidden(preview, "token"),
        "digest": hidden(preview, "digest")}, other))
    assert "已经过期" in stolen and readers_count(site) == 0

    done = _confirm(site, editor, preview)
    assert done.status == 303 and readers_count(site) == 3 and held_files(site) == []
    assert "导入完成：新增 3 位读者，更新 0 位，0 位没有变化" in ok(
        site.get(done.headers["location"], editor))
    assert "已经导入过了" in ok(_confirm(site, editor, preview)) and readers_count(site) == 3

    # The same list changed: one reader updated, two unchanged; logged with who.
    changed = LIST_GOOD.replace("胡军,许昌市发改委,,,hujun@example.cn,,新材料,",
                                "胡军,许昌市发改委,,,hujun@example.cn,,新材料、食品,")
    preview = ok(_upload(site, editor, "名单2.csv", changed.encode()))
    assert re.search(r'<td class="num">0</td><td class="num">1</td><td class="num">2</td>',
                     preview)
    assert "关注产业" in preview.split("将更新的读者")[1].split("没有变化的读者")[0]
    assert _confirm(site, editor, preview).status == 303
    hu = reader_by_email(site, "hujun@example.cn")
    with site.runtime.sessions() as s:
        change = s.scalars(select(ReaderChange).where(ReaderChange.reader_id == hu.id)).one()
    assert (change.source, change.field, change.staff_id) == ("import", "industries",
                                                              site.staff("li").id)
    assert "导入（李四）" in ok(site.get(f"/admin/readers/{hu.id}", editor))
    # The log says what was done and by whom, never to whom.
    assert f"reader import by staff {site.staff('li').id}: 0 added, 1 updated" in caplog.text
    assert not any(word in caplog.text for word in ("胡军", "hujun", "名单2"))


def test_an_upload_the_server_cannot_keep_is_refused_in_chinese(site: Site, editor: str) -> None:
    var = site.runtime.config.base_dir / "var"
    var.mkdir(parents=True)
    (var / "uploads").write_text("")  # where the folder should be
    page = ok(_upload(site, editor, "名单.csv", LIST_GOOD.encode()))
    assert "无法在服务器上暂存上传的文件" in page and readers_count(site) == 0


def test_confirm_checks_again_and_expires(site: Site, editor: str) -> None:
    preview = ok(_upload(site, editor, "名单.csv", LIST_GOOD.encode()))
    # Someone else imports one of its readers meanwhile: the preview is out of date.
    with transaction(site.runtime.sessions) as s:
        add_reader(s, "马丽", "mali@example.cn", industries=["food"])
    again = ok(_confirm(site, editor, preview))
    assert "被改动过" in again and readers_count(site) == 1
    assert re.search(r'<td class="num">2</td><td class="num">1</td><td class="num">0</td>', again)
    assert _confirm(site, editor, again).status == 303 and readers_count(site) == 3

    preview = ok(_upload(site, editor, "名单.csv", LIST_GOOD.encode()))
    assert len(held_files(site)) == 1
    site.clock.now += MAX_AGE + 1
    late = ok(_confirm(site, editor, preview))
    assert "已经过期" in late and held_files(site) == []
    cancel = ok(_upload(site, editor, "名单.csv", LIST_GOOD.encode()))
    assert len(held_files(site)) == 1
    assert 'formaction="/admin/readers/import/cancel"' in cancel
    gone = site.post("/admin/readers/import/cancel", {
        "csrf": form_token(cancel), "held": hidden(cancel, "held"),
        "name": hidden(cancel, "name"), "token": hidden(cancel, "token"),
        "digest": hidden(cancel, "digest")}, editor)
    assert gone.status == 303 and held_files(site) == []


def _xlsx(text: str) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for line in text.splitlines():
        ws.append(line.split(","))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_import_xlsx_error_then_fixed(site: Site, editor: str) -> None:
    bad = ok(_upload(site, editor, "读者.xlsx", _xlsx(LIST_BAD)))
    assert "没有导入任何内容" in bad and "<td>读者.xlsx</td><td class=\"num\">3</td><td>邮箱</td>" in bad
    assert readers_count(site) == 0 and held_files(site) == []
    preview = ok(_upload(site, editor, "读者.xlsx", _xlsx(LIST_GOOD)))
    assert held_files(site)[0].suffix == ".xlsx"
    assert _confirm(site, editor, preview).status == 303 and readers_count(site) == 3
    assert reader_by_email(site, "hujun@example.cn").name == "胡军"
    # Not a list at all: said so, nothing kept.
    odd = ok(_upload(site, editor, "名单.xls", b"\xd0\xcf\x11\xe0"))
    assert "只接受 CSV 和 XLSX 文件" in odd and held_files(site) == []
    nothing = ok(site.post_file("/admin/readers/import", {"csrf": form_token(odd)}, "other",
                                "x.csv", b"", editor))
    assert "请选择要导入的名单文件" in nothing


# -- export -----------------------------------------------------------------------------------


def test_export_csv_and_xlsx_of_the_filtered_list(site: Site, editor: str) -> None:
    import_sample(site)
    with site.runtime.sessions() as s:
        every = [r.state for r in list_readers(s)]
    answer = site.get("/admin/readers/export?format=csv", editor)
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv")
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert f"filename*=UTF-8''{quote('读者名单')}-" in disposition and disposition.endswith(".csv")
    assert answer.body == csv_bytes(every)

    leaders = [s for s in every if s.group == "市领导"]
    answer = site.get("/admin/readers/export?format=xlsx&group=" + quote("市领导"), editor)
    assert answer.status == 200 and "spreadsheetml" in answer.headers["content-type"]
    assert f"filename*=UTF-8''{quote('读者名单（筛选）')}-" in answer.headers["content-disposition"]
    ws = load_workbook(io.BytesIO(answer.body)).active
    assert ws is not None
    rows = [[c or "" for c in row] for row in ws.iter_rows(values_only=True)]
    expected = list(csv.reader(io.StringIO(csv_bytes(leaders).decode("utf-8-sig"))))
    assert rows == expected and len(rows) == len(leaders) + 1 > 2
    assert site.get("/admin/readers/export?format=pdf", editor).status == 400


# -- a reader's page --------------------------------------------------------------------------


def test_reader_page_shows_deliveries_opens_clicks_feedback_and_changes(
    site: Site, editor: str,
) -> None:
    # Times as the tables keep them: the change made below is stamped with the real time.
    sent_at = utcnow() - timedelta(days=1)
    with transaction(site.runtime.sessions) as s:
        issue = s.scalars(select(Issue)).one()
        article = s.scalars(select(Article)).first()
        assert article is not None
        reader = by_email(s, "郑凯", "zhengkai@example.cn", ["biomed"])
        token = add_delivery(s, issue.id, reader, state="sent", sent_at=sent_at)
        delivery_id = s.scalar(select(Delivery.id).where(Delivery.token == token))
        s.add_all([
            Event(issue_id=issue.id, delivery_id=delivery_id, kind="open",
                  at=sent_at + timedelta(hours=1)),
            Event(issue_id=issue.id, delivery_id=delivery_id, kind="click", n=2,
                  article_id=article.id, at=sent_at + timedelta(hours=2)),
            Feedback(reader_id=reader.id, issue_id=issue.id, delivery_id=delivery_id,
                     article_id=article.id, channel="web", kind="comment",
                     text="这篇很有参考价值", received_at=sent_at + timedelta(hours=3)),
            ReaderChange(reader_id=reader.id, source="page", field="channels", old="email",
                         new="email", at=sent_at + timedelta(hours=4)),
        ])
        title, article_title, reader_id = issue.title, article.title, reader.id
    form = ok(site.get(f"/admin/readers/{reader_id}/edit", editor))
    site.post(f"/admin/readers/{reader_id}/edit", [
        ("csrf", form_token(form)), ("name", "郑凯"), ("email", "zhengkai@example.cn"),
        ("industries", "biomed"), ("industries", "food")], editor)
    page = ok(site.get(f"/admin/readers/{reader_id}", editor))
    assert "zhengkai@example.cn" in page and "郑凯" in page
    deliveries = page.split("收到的快报（1）")[1].split("打开和点击")[0]
    assert title in deliveries and "已发送" in deliveries and cn_time(sent_at) in deliveries
    events = page.split("打开和点击（2）")[1].split("反馈（1）")[0]
    assert "打开邮件" in events and "点击链接（第 2 个链接）" in events
    assert article_title in events and cn_time(sent_at + timedelta(hours=2)) in events
    said = page.split("反馈（1）")[1].split("修改记录")[0]
    assert "这篇很有参考价值" in said and "留言" in said and "网页" in said
    changes = page.split("修改记录（2）")[1]
    # Newest first: the editor's change, then the reader's own on their page.
    assert changes.index("工作人员（李四）") < changes.index("网页")
    assert "关注产业：生物医药 → 生物医药、食品" in changes
    assert "接收方式：邮件 → 邮件" in changes
    assert site.get("/admin/readers/424242", editor).status == 404
