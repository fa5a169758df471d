"""The staff web's last CLI abilities over real HTTP on SQLite (issue 12: "everything they
do in the CLI"): re-run the keyword rules on a draft (`dispatch issues retag`) and who
would get what (`dispatch send --dry-run`). All as 李四, an editor. (The feedback export,
`dispatch feedback export`, is tested with the inbox: tests/test_admin_feedback.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
from admin_site import Site, admin_site, form_token, visible
from cli_language import english_words
from conftest import SAMPLE_ISSUE
from site_rows import add_reader
from sqlalchemy import delete, func, select, update

from dispatch import clock, editorial
from dispatch.db.models import Article, ArticleTag, Issue, IssueChange, Reader, ReaderChannel
from dispatch.db.session import transaction
from dispatch.plan import dry_run, fanout
from dispatch.tagging.rules import load_rules
from dispatch.tagging.tagger import tag_article


@pytest.fixture
def site(sqlite_url) -> Iterator[Site]:
    with admin_site(sqlite_url) as served:
        yield served


def chinese(page: str) -> None:
    assert english_words(visible(page)) == [], english_words(visible(page))


def the_issue(site: Site) -> int:
    with site.runtime.sessions() as s:
        return s.scalars(select(Issue.id)).one()


def auto_tags(site: Site) -> dict[int, list[str]]:
    """Each article's automatic tags, by id."""
    with site.runtime.sessions() as s:
        return {a.id: a.tag_codes("auto") for a in s.scalars(select(Article))}


def tags_of(site: Site, article: int, origin: str) -> list[str]:
    with site.runtime.sessions() as s:
        return sorted(s.scalars(select(ArticleTag.industry).where(
            ArticleTag.article_id == article, ArticleTag.origin == origin)))


# admin_site stores the sample issue as the CLI does: its log opens with that ingest, by
# no staff member. `changes` is what came after it.
SETUP = ("ingested", None, None, None, "issue-sample.txt")


def changes(site: Site, issue: int) -> list[tuple[str, int | None, int | None, str | None, str | None]]:
    with site.runtime.sessions() as s:
        rows = [(c.field, c.staff_id, c.article_id, c.old, c.new) for c in s.scalars(
            select(IssueChange).where(IssueChange.issue_id == issue).order_by(IssueChange.id))]
    return rows[1:] if rows[:1] == [SETUP] else rows


def wrong_auto_tags(site: Site, article: int, code: str = "hair") -> None:
    """What the rules never said: the article's automatic tags replaced by `code`."""
    with transaction(site.runtime.sessions) as s:
        s.execute(delete(ArticleTag).where(ArticleTag.article_id == article,
                                           ArticleTag.origin == "auto"))
        s.add(ArticleTag(article_id=article, industry=code, origin="auto", score=9.0))


# -- retag -------------------------------------------------------------------------------


def test_retag_restores_the_rules_tags_keeps_the_editors_and_logs_who(site: Site) -> None:
    cookie = site.signed_in("li")
    li = site.staff("li").id
    issue = the_issue(site)
    right = auto_tags(site)
    with site.runtime.sessions() as s:
        titles = {a.title: a.id for a in s.scalars(select(Article))}
    ip, shanghai = titles["让知识产权更好护航前沿科技创新"], next(
        n for t, n in titles.items() if t.startswith("上海国际科技创新中心"))
    page = site.get(f"/admin/issues/{issue}", cookie)
    assert f'action="/admin/issues/{issue}/retag"' in page.text
    assert "按关键词规则重新打标签" in page.text and "编辑指定的标签保留" in page.text
    chinese(page.text)
    token = form_token(page.text)

    # The editor's tags on one article; wrong automatic tags on it and another.
    assert site.post(f"/admin/issues/{issue}/articles/{shanghai}/tags",
                     [("csrf", token), ("tag", "materials"), ("action", "save")],
                     cookie).status == 303
    wrong_auto_tags(site, ip)
    wrong_auto_tags(site, shanghai)
    logged = len(changes(site, issue))

    done = site.post(f"/admin/issues/{issue}/retag", {"csrf": token}, cookie)
    assert done.status == 303 and done.headers["location"] == f"/admin/issues/{issue}?done=retagged&n=2"
    assert auto_tags(site) == right
    assert tags_of(site, shanghai, "editor") == ["materials"]  # kept, and what readers get
    page = site.get(done.headers["location"], cookie)
    assert "2 篇文章的自动标签有变化" in page.text
    assert "新材料（编辑指定）" in page.text
    chinese(page.text)
    new = changes(site, issue)[logged:]
    assert new == [
        ("retagged", li, ip, "发制品（自动）", "新一代信息技术、生物医药（自动）"),
        ("retagged", li, shanghai, "发制品（自动）",
         "新一代信息技术、生物医药、新能源汽车（自动；编辑指定的标签保留）"),
        ("retagged", li, None, None, "2 篇文章的自动标签有变化（其中 1 篇由编辑指定标签，读者收到的不变）"),
    ]
    log = page.text.split('id="changes"')[1].split("</table>")[0]
    assert "按规则重新打标签：让知识产权更好护航前沿科技创新" in log and "李四" in log

    # Again: nothing changes, and that is said (and kept: who ran it, when).
    again = site.post(f"/admin/issues/{issue}/retag", {"csrf": token}, cookie)
    assert again.headers["location"].endswith("n=0")
    assert "自动标签都没有变化" in site.get(again.headers["location"], cookie).text
    assert changes(site, issue)[-1] == ("retagged", li, None, None, "自动标签都没有变化")
    assert site.post("/admin/issues/999/retag", {"csrf": token}, cookie).status == 404


def test_retag_reads_the_rules_file_as_it_is_now(site: Site, tmp_path: Path) -> None:
    """Staff edit the rules with the service running, then press the button."""
    cookie = site.signed_in("li")
    issue = the_issue(site)
    config = site.runtime.config
    edited = tmp_path / "industries.toml"
    text = config.path(config.tagging.rules).read_text(encoding="utf-8")
    edited.write_text(text.replace("threshold = 8", "threshold = 1000"), encoding="utf-8")
    config.tagging.rules = str(edited)
    rules = load_rules(edited)
    with site.runtime.sessions() as s:
        expected = {a.id: ["general"] if a.kind == "note" else
                    tag_article(a.title, [b["text"] for b in a.blocks], rules).codes
                    for a in s.scalars(select(Article))}
    before = auto_tags(site)
    assert before != expected
    token = site.token(cookie, f"/admin/issues/{issue}")
    done = site.post(f"/admin/issues/{issue}/retag", {"csrf": token}, cookie)
    assert done.status == 303
    assert auto_tags(site) == expected
    n = sum(1 for a in expected if expected[a] != before[a])
    assert done.headers["location"].endswith(f"n={n}")

    # A broken file: said, nothing changed, nothing logged.
    edited.write_text(text.replace("threshold = 8", "threshold = \"high\""), encoding="utf-8")
    logged = changes(site, issue)
    broken = site.post(f"/admin/issues/{issue}/retag", {"csrf": token}, cookie)
    assert broken.status == 500 and "关键词规则文件有错" in broken.text
    assert "没有重新打标签" in broken.text
    assert auto_tags(site) == expected and changes(site, issue) == logged

    # An upload meanwhile is tagged by the same file: refused alike, nothing stored.
    with site.runtime.sessions() as s:
        issues = s.scalar(select(func.count(Issue.id)))
    upload = site.post_file("/admin/issues/new", {"csrf": token, "again": "1"}, "file",
                            "issue.txt", SAMPLE_ISSUE.read_bytes(), cookie)
    assert upload.status == 500 and "关键词规则文件有错" in upload.text
    assert "期刊没有入库" in upload.text
    with site.runtime.sessions() as s:
        assert s.scalar(select(func.count(Issue.id))) == issues

    # Mended: the next upload follows the file as it is now (threshold 1000: few tags).
    edited.write_text(text.replace("threshold = 8", "threshold = 1000"), encoding="utf-8")
    stored = site.post_file("/admin/issues/new", {"csrf": token, "again": "1"}, "file",
                            "issue.txt", SAMPLE_ISSUE.read_bytes(), cookie)
    assert stored.status == 303
    new_id = int(stored.headers["location"].split("/")[3].split("?")[0])
    with site.runtime.sessions() as s:
        fresh = [sorted(t.industry for t in a.tags)
                 for a in editorial.get_issue(s, new_id).articles]
    assert fresh == [sorted(codes) for _, codes in sorted(expected.items())]


def test_retag_is_refused_once_finalized(site: Site) -> None:
    cookie = site.signed_in("li")
    issue = the_issue(site)
    with transaction(site.runtime.sessions) as s:
        editorial.finalize(s, issue, clock.utcnow() + timedelta(days=1))
    article = next(iter(auto_tags(site)))
    wrong_auto_tags(site, article)
    logged = changes(site, issue)
    assert [c[:2] for c in logged] == [("finalized", None)]  # as the CLI does it
    page = site.get(f"/admin/issues/{issue}", cookie)
    assert "/retag" not in page.text and "内容已冻结" in page.text
    refused = site.post(f"/admin/issues/{issue}/retag", {"csrf": site.token(cookie)}, cookie)
    assert refused.status == 409
    assert "已定稿，内容已冻结，不能重新打标签" in refused.text
    assert "dispatch" not in visible(refused.text)  # no command line in the web
    chinese(refused.text)
    assert tags_of(site, article, "auto") == ["hair"] and changes(site, issue) == logged


# -- who would get what ------------------------------------------------------------------


def readers(site: Site, extra: int = 0) -> dict[str, int]:
    """Readers of every kind that decides who gets the issue, and `extra` plain ones."""
    with transaction(site.runtime.sessions) as s:
        def reader(name: str, channels: tuple[str, ...] = ("email",), **kw: object) -> Reader:
            r = add_reader(s, name, **kw)  # type: ignore[arg-type]
            for c in channels:
                s.add(ReaderChannel(reader_id=r.id, channel=c))
            return r

        all_ = reader("丙三", ("email", "wecom"), follows_all=True)
        all_.wecom_userid = "c3wx"
        bio = reader("甲一", industries=["biomed"])
        hair = reader("丁四", industries=["hair"])
        off = reader("停用者", industries=["biomed"])
        off.status = "inactive"
        paused = reader("暂停者", industries=["biomed"])
        paused.paused_until = clock.utcnow() + timedelta(days=30)
        bounced = reader("退信者", ("email", "wecom"), industries=["biomed"])
        bounced.wecom_userid = "bxwx"
        bounced.email_suspended_at = clock.utcnow()
        reader("无渠道", (), industries=["biomed"])
        for i in range(extra):
            reader(f"读者{i:03d}", industries=["it"] if i % 2 else ["hair"])
        return {r.name: r.id for r in (all_, bio, hair, off, paused, bounced)}


def reader_rows(page: str) -> list[tuple[int, str]]:
    """(id, the row's text) of each reader on an audience page."""
    body = page.split('id="readers"')[1].split("</table>")[0]
    return [(int(n), unescape(re.sub(r"<[^>]+>", " ", row)))
            for n, row in re.findall(r'<tr><td class="num">(\d+)</td>(.*?)</tr>', body, re.S)]


def test_who_would_get_what_as_the_dry_run_says(site: Site) -> None:
    cookie = site.signed_in("li")
    issue = the_issue(site)
    ids = readers(site)
    page = site.get(f"/admin/issues/{issue}", cookie)
    assert f'href="/admin/issues/{issue}/audience"' in page.text and "谁会收到什么" in page.text

    answer = site.get(f"/admin/issues/{issue}/audience", cookie)
    assert answer.status == 200
    chinese(answer.text)
    with site.runtime.sessions() as s:
        published = fanout.publication_time(s, issue)
        counts = fanout.audience_by_channel(s, published)
        cli = dry_run.audience(s, issue)  # what `dispatch send --dry-run` prints
    # 丙三 by both; 甲一, 丁四 by email; 退信者 by WeChat Work only (email suspended);
    # not 停用者, 暂停者 (paused past the time) nor 无渠道.
    assert counts == {"email": 3, "wecom": 2}
    by_channel = answer.text.split('id="by-channel"')[1].split("</table>")[0]
    assert re.findall(r"<td>(\S+)</td><td class=\"num\">(\d+)</td>", by_channel) == [
        ("邮件", "3"), ("企业微信", "2")]
    assert "共 4 位读者，5 个投递" in answer.text
    rows = dict(reader_rows(answer.text))
    assert list(rows) == [r.reader for r in cli.rows] == sorted(
        ids[n] for n in ("丙三", "甲一", "丁四", "退信者"))
    assert "全部内容" in rows[ids["丙三"]] and "邮件、企业微信" in rows[ids["丙三"]]
    [bio] = [r for r in cli.rows if r.reader == ids["甲一"]]
    assert bio.recommended and all(t in rows[ids["甲一"]] for t in bio.recommended)
    assert "没有推荐的文章" not in rows[ids["甲一"]]
    assert "企业微信" in rows[ids["退信者"]] and "邮件" not in rows[ids["退信者"]]
    for n in rows:
        assert f'href="/admin/readers/{n}"' in answer.text
        assert f'href="/admin/issues/{issue}/preview?reader={n}"' in answer.text
    assert "本期还是草稿" in answer.text

    # Finalized for later: worked out for that time, when a reader paused till before
    # then gets it (`dispatch send --dry-run` is for sending now: not them).
    with transaction(site.runtime.sessions) as s:
        editorial.finalize(s, issue, clock.utcnow() + timedelta(days=40))
    later = site.get(f"/admin/issues/{issue}/audience", cookie)
    assert "按发布时间" in later.text and ids["暂停者"] in dict(reader_rows(later.text))
    with site.runtime.sessions() as s:
        assert ids["暂停者"] not in [r.reader for r in dry_run.audience(s, issue).rows]
    chinese(later.text)
    with transaction(site.runtime.sessions) as s:
        s.execute(update(Issue).where(Issue.id == issue).values(
            status="sent", fanned_out_at=clock.utcnow()))
    sent = site.get(f"/admin/issues/{issue}/audience", cookie)
    assert "本期已开始发送" in sent.text
    chinese(sent.text)
    assert site.get("/admin/issues/999/audience", cookie).status == 404


def test_who_would_get_what_fifty_a_page(site: Site) -> None:
    cookie = site.signed_in("li")
    issue = the_issue(site)
    readers(site, extra=116)  # 120 reached
    path = f"/admin/issues/{issue}/audience"
    first = site.get(path, cookie).text
    assert "共 120 位读者" in first and "第 1 页，共 3 页" in first
    one = [n for n, _ in reader_rows(first)]
    assert len(one) == 50 and one == sorted(one)
    assert f'href="{path}?page=2"' in first
    second = [n for n, _ in reader_rows(site.get(f"{path}?page=2", cookie).text)]
    last = site.get(f"{path}?page=3", cookie).text
    third = [n for n, _ in reader_rows(last)]
    assert len(second) == 50 and len(third) == 20 and "第 101–120 位" in last
    assert one[-1] < second[0] and second[-1] < third[0]
    with site.runtime.sessions() as s:
        assert one + second + third == [r.reader for r in dry_run.audience(s, issue).rows]
    assert reader_rows(site.get(f"{path}?page=99", cookie).text) == reader_rows(last)
    for odd in ("0", "-1", "x", "9" * 50):
        assert site.get(f"{path}?page={odd}", cookie).status == 200
    chinese(last)
