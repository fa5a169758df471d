"""有用 / 没用 under each article: the links in the email and on the web pages, and what
following them stores, served by the real app on a loopback uvicorn server."""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from urllib.parse import urlencode, urlsplit

import pytest
from conftest import REPO, SAMPLE_ISSUE
from served import listening_socket, serve
from site_rows import add_delivery, add_reader, runtime_at
from sqlalchemy import select, text

from dispatch import editorial
from dispatch.db.models import VOTE_KINDS, Delivery, Feedback
from dispatch.db.session import transaction
from dispatch.ingest import parse_file
from dispatch.render.pipeline import IssueRenderer, ReaderView
from dispatch.render.templates import make_environment
from dispatch.runtime import Runtime
from dispatch.track.links import VOTES
from dispatch.track.signing import sign
from dispatch.track.tokens import new_token
from dispatch.web.app import create_app
from dispatch.web.votes import MAX_COMMENT_CHARS, VOTE_WORDS

BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel link scanner)"
SHANGHAI = "上海国际科技创新中心：从“建框架”向“强功能”跃升"


@dataclass
class Site:
    base_url: str
    runtime: Runtime
    issue_id: int
    token: str  # a 生物医药 reader's email delivery
    other_token: str  # another reader's delivery of the same issue
    articles: dict[str, int]  # title → id, this issue's articles
    note_id: int  # the editor's note
    other_issue_article: int

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        if path.startswith("http"):
            assert path.startswith(self.base_url), path
            path = path[len(self.base_url):]
        u = urlsplit(self.base_url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={"User-Agent": BROWSER, **(headers or {})})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode("utf-8")
        finally:
            conn.close()

    def get(self, path: str, agent: str = BROWSER) -> tuple[int, dict[str, str], str]:
        return self.request("GET", path, headers={"User-Agent": agent})

    def post(self, path: str, fields: dict[str, str], origin: str | None = "",
             headers: dict[str, str] | None = None) -> tuple[int, str]:
        """A form post as a browser on our own page sends it (Origin: ours, unless given)."""
        extra = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        if origin is not None:
            extra["Origin"] = origin or self.base_url
        status, _, page = self.request("POST", path, urlencode(fields).encode(), extra)
        return status, page

    def feedback(self) -> list[tuple[str, str, int | None, int | None, str]]:
        """(kind, channel, delivery, article, text) of every feedback row, in order."""
        with self.runtime.sessions() as s:
            rows = s.execute(
                select(Feedback.kind, Feedback.channel, Feedback.delivery_id,
                       Feedback.article_id, Feedback.text).order_by(Feedback.id)
            ).all()
            return [tuple(r) for r in rows]

    def delivery_id(self, token: str) -> int:
        with self.runtime.sessions() as s:
            return s.scalar(select(Delivery.id).where(Delivery.token == token))


@pytest.fixture
def site(db_url) -> Iterator[Site]:
    sock = listening_socket()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runtime = runtime_at(db_url, base_url)
    with transaction(runtime.sessions) as s:
        issue = editorial.store_issue(s, parse_file(SAMPLE_ISSUE), str(SAMPLE_ISSUE), runtime.rules)
        other = editorial.store_issue(s, parse_file(SAMPLE_ISSUE), "again", runtime.rules, again=True)
        token = add_delivery(s, issue.id, add_reader(s, "王五", "a@example.cn", industries=["biomed"]))
        other_token = add_delivery(s, issue.id, add_reader(s, "赵六", "b@example.cn", industries=["hair"]))
        articles = {a.title: a.id for a in issue.articles if a.kind == "article"}
        note_id = next(a.id for a in issue.articles if a.kind == "note")
        issue_id, other_article = issue.id, other.articles[-1].id
    try:
        with serve(create_app(runtime), sock):
            yield Site(base_url, runtime, issue_id, token, other_token, articles, note_id, other_article)
    finally:
        runtime.engine.dispose()


def _form(page: str) -> tuple[str, dict[str, str]]:
    """The page's form: where it posts, and its hidden fields."""
    form = re.search(r'<form class="vote-form" method="post" action="([^"]+)">(.*?)</form>', page, re.S)
    assert form, "the page has no form"
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(2)))
    return unescape(form.group(1)), fields


def _vote_links(page: str, article_id: int) -> dict[str, str]:
    """有用 / 没用 → URL, for the links of one article on a page or in an email."""
    found = {}
    for value in VOTES:
        m = re.search(rf'href="([^"]*/f/[a-z2-7]+/{article_id}/{value}(?:\?[^"]*)?)"[^>]*>{VOTE_WORDS[value]}<', page)
        if m:
            found[VOTE_WORDS[value]] = unescape(m.group(1))
    return found


# -- clicking ---------------------------------------------------------------------------


def test_first_click_stores_the_vote_and_a_second_click_changes_it(site):
    article = site.articles[SHANGHAI]
    delivery = site.delivery_id(site.token)
    status, headers, page = site.get(f"/f/{site.token}/{article}/useful")
    assert status == 200 and "谢谢您的反馈" in page
    assert SHANGHAI in unescape(page) and "有用" in page
    assert "no-store" in headers["cache-control"]
    assert site.feedback() == [("useful", "email", delivery, article, "")]

    # Changed their mind: the page offers the other vote, which replaces the first.
    change = re.search(r'<a href="([^"]+)">改为“没用”</a>', page)
    assert change and unescape(change.group(1)).endswith(f"/f/{site.token}/{article}/not_useful")
    status, _, page = site.get(change.group(1))
    assert status == 200 and "谢谢您的反馈" in page
    assert site.feedback() == [("not_useful", "email", delivery, article, "")]

    # Clicking again the same way changes nothing; a token in upper case is the same token.
    site.get(f"/f/{site.token.upper()}/{article}/not_useful")
    assert site.feedback() == [("not_useful", "email", delivery, article, "")]

    # Another article, another reader: votes of their own.
    patents = site.articles["让知识产权更好护航前沿科技创新"]
    site.get(f"/f/{site.token}/{patents}/useful")
    site.get(f"/f/{site.other_token}/{article}/useful")
    assert sorted(site.feedback()) == sorted([
        ("not_useful", "email", delivery, article, ""),
        ("useful", "email", delivery, patents, ""),
        ("useful", "email", site.delivery_id(site.other_token), article, ""),
    ])


def test_link_scanners_and_head_requests_store_nothing_and_get_a_confirm_button(site):
    article = site.articles[SHANGHAI]
    path = f"/f/{site.token}/{article}/not_useful"
    for agent in (SCANNER, "Mozilla/5.0", ""):  # a scanner; Apple's proxy; no agent at all
        status, _, page = site.get(path, agent=agent)
        assert status == 200 and "请确认您的反馈" in page and "确认</button>" in page
    status, _, _ = site.request("HEAD", path)
    assert status == 200
    assert site.feedback() == []

    # A person behind the scanner presses 确认: that records the vote.
    action, fields = _form(page)
    assert action == f"{site.base_url}{path}" and fields["vote"] == "1"
    status, page = site.post(action, {**fields, "comment": ""})
    assert status == 200 and "谢谢您的反馈" in page
    assert site.feedback() == [("not_useful", "email", site.delivery_id(site.token), article, "")]


def test_votes_from_the_web_pages_say_so(site):
    article = site.articles[SHANGHAI]
    for path in (f"/w/{site.token}", f"/w/{site.token}/a/{article}"):
        status, _, page = site.get(path)
        assert status == 200
        links = _vote_links(page, article)
        assert links == {
            "有用": f"{site.base_url}/f/{site.token}/{article}/useful?from=web",
            "没用": f"{site.base_url}/f/{site.token}/{article}/not_useful?from=web",
        }
    # Every article on the issue page has its pair; the editor's note has none.
    status, _, page = site.get(f"/w/{site.token}")
    for title, article_id in site.articles.items():
        assert len(_vote_links(page, article_id)) == 2, title
    assert f"/{site.note_id}/useful" not in page
    assert "/useful" not in site.get(f"/w/{site.token}/a/{site.note_id}")[2]

    status, _, page = site.get(links["有用"])
    assert status == 200
    assert site.feedback() == [("useful", "web", site.delivery_id(site.token), article, "")]
    # The comment form posts back with the same origin of the vote.
    action, _ = _form(page)
    assert action.endswith("?from=web")


def test_the_email_links_lead_to_the_readers_vote(site):
    """Render the reader's email as the worker does and follow its links."""
    with site.runtime.sessions() as s:
        issue = editorial.get_issue(s, site.issue_id)
        renderer = IssueRenderer.for_issue(issue, make_environment(REPO / "templates"), site.runtime.config)
    reader = ReaderView(id=1, name="王五", email="a@example.cn", industries=frozenset({"biomed"}))
    html = renderer.html_for(reader, site.token)
    digest = renderer.digest_for(reader)
    assert digest.recommended
    for a in digest.recommended:
        assert _vote_links(html, a.id) == {
            "有用": f"{site.base_url}/f/{site.token}/{a.id}/useful",
            "没用": f"{site.base_url}/f/{site.token}/{a.id}/not_useful",
        }
    status, _, page = site.get(_vote_links(html, digest.recommended[0].id)["没用"])
    assert status == 200 and "谢谢您的反馈" in page
    assert site.feedback() == [
        ("not_useful", "email", site.delivery_id(site.token), digest.recommended[0].id, "")
    ]


# -- comments ---------------------------------------------------------------------------


def test_a_comment_is_stored_with_the_article_once_per_submission(site):
    article = site.articles[SHANGHAI]
    delivery = site.delivery_id(site.token)
    _, _, page = site.get(f"/f/{site.token}/{article}/useful")
    action, fields = _form(page)
    assert "vote" not in fields  # the vote is in already: the box only adds words
    comment = "希望多刊登一些生物医药产业的\r\n政策解读。\x00"
    status, page = site.post(action, {**fields, "comment": comment})
    assert status == 200 and "您的意见已收到" in page
    status, page = site.post(action, {**fields, "comment": "第二条意见"})
    assert status == 200
    assert site.feedback() == [
        ("useful", "email", delivery, article, ""),
        ("comment", "email", delivery, article, "希望多刊登一些生物医药产业的\n政策解读。"),
        ("comment", "email", delivery, article, "第二条意见"),
    ]
    # An empty box stores nothing more.
    assert site.post(action, {**fields, "comment": "  \n "})[0] == 200
    assert len(site.feedback()) == 3


def test_comment_forms_that_are_not_ours_are_refused_and_store_nothing(site):
    article = site.articles[SHANGHAI]
    path = f"/f/{site.token}/{article}/useful"
    key = site.runtime.signing_key
    _, _, page = site.get(path, agent=SCANNER)  # the confirm page: nothing stored yet
    _, fields = _form(page)
    tries = [
        ({"vote": "1", "comment": "无签名"}, ""),  # no signed value
        ({"csrf": "1abc.forgedforgedforgedforged", "vote": "1", "comment": "伪造"}, ""),
        ({"csrf": sign(key, "vote", site.other_token), "vote": "1", "comment": "别人的"}, ""),
        ({"csrf": sign(key, "prefs", site.token), "vote": "1", "comment": "别的表单"}, ""),
        ({**fields, "comment": "别的网站"}, "https://evil.example.com"),
        ({**fields, "comment": "来源不明"}, "null"),
    ]
    for form, origin in tries:
        status, page = site.post(path, form, origin=origin)
        assert status == 403, form
        assert "无法提交" in page and 'lang="zh-CN"' in page
    status, page = site.post(path, {**fields, "comment": "跨站"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    assert site.feedback() == []
    # The same form from our page, without an Origin (not a browser): the signature decides.
    status, page = site.post(path, {**fields, "comment": "好"}, origin=None)
    assert status == 200
    assert [k for k, *_ in site.feedback()] == ["useful", "comment"]


def test_a_comment_over_the_limit_is_refused_in_chinese_and_nothing_is_stored(site):
    article = site.articles[SHANGHAI]
    path = f"/f/{site.token}/{article}/not_useful"
    _, _, page = site.get(path, agent=SCANNER)
    _, fields = _form(page)
    status, page = site.post(path, {**fields, "comment": "长" * (MAX_COMMENT_CHARS + 1)})
    assert status == 400 and "意见过长" in page and str(MAX_COMMENT_CHARS) in page
    status, page = site.post(path, {**fields, "comment": "😀" * 20_000})  # over the body limit
    assert status == 400 and "意见过长" in page
    assert site.feedback() == []  # neither the comment nor the vote of that form
    status, page = site.post(path, {**fields, "comment": "长" * MAX_COMMENT_CHARS})
    assert status == 200
    assert [(k, len(t)) for k, _, _, _, t in site.feedback()] == [
        ("not_useful", 0), ("comment", MAX_COMMENT_CHARS)
    ]


# -- what is not a vote ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/f/{bad}/{article}/useful",  # no such delivery
        "/f/not-a-token/{article}/useful",
        "/f/{token}/{other}/useful",  # an article, but of another issue
        "/f/{token}/{note}/useful",  # the editor's note takes no votes
        "/f/{token}/999999/useful",
        "/f/{token}/99999999999999999999999/useful",  # beyond any integer column
        "/f/{token}/{article}/useful/more",
        "/f/{token}/abc/useful",
        "/f/{token}/{article}/great",
        "/f/{token}/{article}/Useful",
        "/f/{token}/{article}",
    ],
)
def test_unknown_votes_are_the_404_page(site, path):
    url = path.format(bad=new_token(), token=site.token, article=site.articles[SHANGHAI],
                      other=site.other_issue_article, note=site.note_id)
    for method in ("GET", "POST"):
        status, headers, page = site.request(method, url, b"vote=1", {
            "Content-Type": "application/x-www-form-urlencoded", "Origin": site.base_url,
        })
        assert status == 404, (method, url)
        assert headers["content-type"].startswith("text/html")
        assert "页面不存在" in page
    assert site.feedback() == []


def test_vote_words_are_the_feedback_kinds():
    assert set(VOTES) == set(VOTE_KINDS) == set(VOTE_WORDS)


# -- two first clicks at once -------------------------------------------------------------


def _waiting_inserts(site: Site) -> int:
    """Feedback inserts waiting for a lock (pg_stat_activity is read once per transaction:
    a new one each time)."""
    with site.runtime.engine.connect() as conn:
        return conn.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO feedback%'"
        ))


# PostgreSQL shows the waiting click in pg_stat_activity; SQLite has no such view.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_first_clicks_at_once_leave_one_vote(site):
    """The other click inserts its vote between this click's look and its insert: this
    one waits on the unique index, fails it, and changes the row instead."""
    article = site.articles[SHANGHAI]
    delivery = site.delivery_id(site.token)
    with site.runtime.sessions() as s:
        reader_id = s.scalar(select(Delivery.reader_id).where(Delivery.id == delivery))
    first = site.runtime.sessions()
    first.begin()
    first.add(Feedback(reader_id=reader_id, issue_id=site.issue_id, delivery_id=delivery,
                       article_id=article, channel="email", kind="useful"))
    first.flush()  # the row holds the unique index, uncommitted
    result: list[int] = []
    click = threading.Thread(target=lambda: result.append(
        site.get(f"/f/{site.token}/{article}/not_useful")[0]))
    click.start()
    try:
        deadline = time.monotonic() + 30
        while not _waiting_inserts(site):
            assert time.monotonic() < deadline and click.is_alive(), "the click never waited"
            time.sleep(0.01)
        first.commit()
    finally:
        first.close()
    click.join(30)
    assert result == [200]
    assert site.feedback() == [("not_useful", "email", delivery, article, "")]
