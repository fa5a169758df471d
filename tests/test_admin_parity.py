"""The staff web's last CLI abilities over real HTTP on SQLite (issue 12: "everything they
do in the CLI"): re-run the keyword rules on a draft (`dispatch issues retag`). All as
李四, an editor. (The feedback export,
`dispatch feedback export`, is tested with the inbox: tests/test_admin_feedback.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from admin_site import Site, admin_site, form_token, visible
from cli_language import english_words
from sqlalchemy import delete, select

from dispatch import clock, editorial
from dispatch.db.models import Article, ArticleTag, Issue, IssueChange
from dispatch.db.session import transaction
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


def changes(site: Site, issue: int) -> list[tuple[str, int | None, int | None, str | None, str | None]]:
    with site.runtime.sessions() as s:
        return [(c.field, c.staff_id, c.article_id, c.old, c.new) for c in s.scalars(
            select(IssueChange).where(IssueChange.issue_id == issue).order_by(IssueChange.id))]


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
    assert broken.status == 500 and "关键词规则文件有错，没有重新打标签" in broken.text
    assert auto_tags(site) == expected and changes(site, issue) == logged


def test_retag_is_refused_once_finalized(site: Site) -> None:
    cookie = site.signed_in("li")
    issue = the_issue(site)
    with transaction(site.runtime.sessions) as s:
        editorial.finalize(s, issue, clock.utcnow() + timedelta(days=1))
    article = next(iter(auto_tags(site)))
    wrong_auto_tags(site, article)
    page = site.get(f"/admin/issues/{issue}", cookie)
    assert "/retag" not in page.text and "内容已冻结" in page.text
    refused = site.post(f"/admin/issues/{issue}/retag", {"csrf": site.token(cookie)}, cookie)
    assert refused.status == 409
    assert "已定稿，内容已冻结，不能重新打标签" in refused.text
    assert "dispatch" not in visible(refused.text)  # no command line in the web
    chinese(refused.text)
    assert tags_of(site, article, "auto") == ["hair"] and changes(site, issue) == []
