"""The reader's web pages, served by the real app on a loopback uvicorn server."""

from __future__ import annotations

import dataclasses
import http.client
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import uvicorn
from conftest import SAMPLE_ISSUE
from served import listening_socket, serve
from site_rows import add_delivery, add_reader, runtime_at
from smtp_servers import free_port
from sqlalchemy import select

from dispatch import editorial
from dispatch.db.models import Delivery, Reader, ReaderChange
from dispatch.db.session import transaction
from dispatch.health import Health
from dispatch.ingest import parse_file
from dispatch.render.views import article_views, link_targets
from dispatch.runtime import Runtime
from dispatch.service import web_config
from dispatch.track.tokens import new_token
from dispatch.web.app import PageEvent, create_app
from dispatch.web.pages import PAGE_ARTICLES
from dispatch.web.views_cache import IssueViews

FUTURE = "未来产业是培育新质生产力的重要引擎"
PATENTS = "让知识产权更好护航前沿科技创新"
SHANGHAI = "上海国际科技创新中心：从“建框架”向“强功能”跃升"


@dataclass
class Site:
    base_url: str
    runtime: Runtime
    events: list[PageEvent]
    issue_id: int
    token: str  # a 生物医药 reader's delivery
    token_all: str  # a 全部 reader's delivery
    other_issue_article: int  # an article of another issue
    health: Health  # what `dispatch run`'s parts report
    now: list[float]  # the health clock: now[0] seconds
    views: IssueViews  # the app's kept views and their counters

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        return self.request("GET", path)

    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, dict[str, str], str]:
        return self.request("POST", path, body, {"Content-Type": content_type})

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        u = urlsplit(self.base_url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            body = resp.read().decode("utf-8")
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
        finally:
            conn.close()


@pytest.fixture
def site(db_url) -> Iterator[Site]:
    sock = listening_socket()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runtime = runtime_at(db_url, base_url)
    rules = runtime.rules
    with transaction(runtime.sessions) as s:
        issue = editorial.store_issue(s, parse_file(SAMPLE_ISSUE), str(SAMPLE_ISSUE), rules)
        other = editorial.store_issue(s, parse_file(SAMPLE_ISSUE), "again", rules, again=True)
        biomed = add_reader(s, "<script>alert(1)</script>", "a@example.cn", industries=["biomed"])
        everyone = add_reader(s, "李四", "b@example.cn", follows_all=True)
        token, token_all = add_delivery(s, issue.id, biomed), add_delivery(s, issue.id, everyone)
        issue_id, other_article = issue.id, other.articles[-1].id

    events: list[PageEvent] = []
    now = [1000.0]
    health = Health(clock=lambda: now[0])
    health.part("scheduler", max_silence=90)
    health.part("worker")
    app = create_app(runtime, on_event=events.append, health=health)
    try:
        with serve(app, sock):
            yield Site(base_url, runtime, events, issue_id, token, token_all, other_article,
                       health, now, app.state.pages.views)
    finally:
        runtime.engine.dispose()


def _view(site: Site):
    with site.runtime.sessions() as s:
        return article_views(editorial.get_issue(s, site.issue_id))


def _text(html: str) -> str:
    """The page's visible text, tags dropped and entities left as they are."""
    return re.sub(r"<[^>]+>", "", html)


def test_issue_page_has_every_article_in_full(site):
    status, headers, html = site.get(f"/w/{site.token}")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    text = _text(html)
    view = _view(site)
    for section, articles in view.sections:
        assert section in text
        for a in articles:
            assert a.title in text
            for block in a.blocks:
                assert block.text in text, f"{a.title}: missing {block.text[:20]}…"
    # Subheadings are headings, in order, and the issue keeps its own order.
    for sub in ("超前布局提升战略科技力量", "瞄准风口培育高端产业集群", "不断改革完善创新生态环境"):
        assert re.search(rf"<h4 class=\"subheading\">{sub}</h4>", html)
    body = html[html.index("</nav>"):]
    p = [body.index(t) for t in ("编者的话", FUTURE, PATENTS, SHANGHAI)]
    assert p == sorted(p)
    # The articles about the reader's industry are marked, and every title has its page.
    toc = html[html.index('id="toc"'):html.index("</nav>")]
    assert re.search(re.escape(PATENTS) + r"</a><span class=\"mark\">推荐", toc)
    assert re.search(re.escape(SHANGHAI) + r"</a><span class=\"mark\">推荐", toc)
    for a in view.articles:
        if a.kind != "note":
            assert f'href="{site.base_url}/w/{site.token}/a/{a.id}"' in html
    assert "您收到本刊，是因为您关注：生物医药。" in text
    assert f'href="{site.base_url}/u/{site.token}"' in html


def test_whole_issue_reader_page_marks_nothing(site):
    status, _, html = site.get(f"/w/{site.token_all}")
    assert status == 200
    assert 'class="mark"' not in html
    assert "您收到本刊，是因为您关注：全部产业。" in _text(html)


def test_article_page(site):
    view = _view(site)
    shanghai = next(a for a in view.articles if a.title == SHANGHAI)
    status, headers, html = site.get(f"/w/{site.token}/a/{shanghai.id}")
    assert status == 200
    text = _text(html)
    assert f'<h1 class="article-title">{SHANGHAI}</h1>' in html
    for block in shanghai.blocks:
        assert block.text in text
    # Its badges: the reader's own industry (生物医药) filled and marked ✓, the others not.
    for code, badge in shanghai.badge_items:
        if code == "biomed":
            assert f'<span class="badge badge-own">✓ {badge}</span>' in html
        else:
            assert f'<span class="badge">{badge}</span>' in html
    # Only this article in full; the others are at most named in the pager.
    patents = next(a for a in view.articles if a.title == PATENTS)
    assert patents.blocks[1].text not in text
    assert f'href="{site.base_url}/w/{site.token}/a/{patents.id}"' in html  # 上一篇
    assert f'href="{site.base_url}/w/{site.token}"' in html  # back to the issue


def test_click_redirects_to_the_article_of_link_n(site):
    view = _view(site)
    for n, article_id in link_targets(view).items():
        status, headers, _ = site.get(f"/c/{site.token}/{n}")
        assert status == 302
        assert headers["location"] == f"{site.base_url}/w/{site.token}/a/{article_id}"
        assert "no-store" in headers["cache-control"]


def test_events_reach_the_hook(site):
    view = _view(site)
    site.events.clear()
    site.get(f"/w/{site.token}")
    site.get(f"/c/{site.token}/3")
    site.get(f"/w/{site.token}/a/{link_targets(view)[3]}")
    site.get(f"/c/{site.token}/999")  # not a link: nothing to record
    kinds = [(e.kind, e.article_id, e.n) for e in site.events]
    target = link_targets(view)[3]
    assert kinds == [("web_view", None, None), ("click", target, 3), ("article_view", target, None)]
    assert len({e.delivery_id for e in site.events}) == 1


@contextmanager
def _served(site: Site, trusted: list[str]) -> Iterator[tuple[int, list[PageEvent]]]:
    """The site's app served as `dispatch run` serves it (service.web_config), on a port
    of its own, with these trusted proxies."""
    port = free_port()
    web = dataclasses.replace(
        site.runtime.config.web, listen=f"127.0.0.1:{port}", trusted_proxies=trusted
    )
    config = dataclasses.replace(site.runtime.config, web=web)
    events: list[PageEvent] = []
    server = uvicorn.Server(web_config(config, create_app(site.runtime, on_event=events.append)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port, events
    finally:
        server.should_exit = True
        thread.join(30)


def _client_seen(port: int, events: list[PageEvent], token: str, peer: str) -> str | None:
    """The client address the app records for a page asked for from `peer` (a loopback
    address), through a proxy that says the reader is at 203.0.113.7."""
    events.clear()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(peer, 0))
    try:
        conn.request("GET", f"/w/{token}", headers={
            "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
        })
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    (event,) = events
    return event.client_ip


def test_forwarded_address_is_believed_only_from_a_trusted_proxy(site):
    with _served(site, ["127.0.0.1"]) as (port, events):
        assert _client_seen(port, events, site.token, "127.0.0.1") == "203.0.113.7"
        # Any other peer may be a reader posing as someone else: its own address stands.
        assert _client_seen(port, events, site.token, "127.0.0.2") == "127.0.0.2"
    with _served(site, ["127.0.0.0/30"]) as (port, events):
        assert _client_seen(port, events, site.token, "127.0.0.2") == "203.0.113.7"
    with _served(site, []) as (port, events):  # the default: nobody is trusted
        assert _client_seen(port, events, site.token, "127.0.0.1") == "127.0.0.1"


@pytest.mark.parametrize(
    "path",
    [
        "/w/{bad}",
        "/w/not-a-token",
        "/w/{bad}/a/{article}",
        "/w/{token}/a/{other}",  # an article, but of another issue
        "/w/{token}/a/999999",
        "/w/{token}/a/abc",
        "/c/{bad}/1",
        "/c/{token}/0",
        "/c/{token}/999",
        "/c/{token}/-1",
        "/nothing-here",
    ],
)
def test_unknown_things_are_404_in_chinese(site, path):
    view = _view(site)
    url = path.format(
        bad=new_token(), token=site.token, article=view.articles[1].id, other=site.other_issue_article
    )
    status, headers, html = site.get(url)
    assert status == 404
    assert headers["content-type"].startswith("text/html")
    assert "页面不存在" in html and 'lang="zh-CN"' in html
    assert "<script" not in html.lower()


def test_pages_have_no_script_and_escape_reader_data(site):
    view = _view(site)
    paths = [f"/w/{site.token}", f"/w/{site.token_all}", f"/w/{site.token}/a/{view.articles[0].id}"]
    for path in paths:
        status, headers, html = site.get(path)
        assert status == 200
        assert "<script" not in html.lower() and "javascript:" not in html.lower()
        assert "<link" not in html.lower()
        assert "script-src" not in headers["content-security-policy"]
        assert "default-src 'none'" in headers["content-security-policy"]
        assert headers["referrer-policy"] == "no-referrer"
        assert "noindex" in html


def test_healthz(site):
    status, headers, body = site.get("/healthz")
    assert status == 200 and body.splitlines()[0] == "ok", body
    assert "database: ok" in body.splitlines()
    assert "scheduler: ok" in body.splitlines() and "worker: ok" in body.splitlines()
    assert headers["cache-control"] == "no-store"


def test_healthz_names_the_part_that_is_down(site):
    site.health.parts["worker"].down("OperationalError: connection refused (next try in 4s)")
    site.now[0] += 12
    status, _, body = site.get("/healthz")
    assert status == 503
    lines = body.splitlines()
    assert lines[0] == "unavailable: worker", body
    assert "worker: down for 12s: OperationalError: connection refused (next try in 4s)" in lines
    assert "scheduler: ok" in lines and "database: ok" in lines

    site.health.parts["worker"].ok()
    assert site.get("/healthz")[0] == 200

    # A scheduler that has not ticked for more than three ticks is down too.
    site.now[0] += 91
    status, _, body = site.get("/healthz")
    assert status == 503 and body.splitlines()[0] == "unavailable: scheduler", body
    assert "scheduler: down: not ticking for 103s" in body.splitlines()
    site.health.parts["scheduler"].ok()
    status, _, body = site.get("/healthz")
    assert status == 200 and body.startswith("ok\n"), body


# -- unsubscribe ------------------------------------------------------------------------


def _reader_state(site: Site, token: str) -> tuple[str, list[tuple[str, str, str | None, str | None]]]:
    with site.runtime.sessions() as s:
        delivery = s.scalar(select(Delivery).where(Delivery.token == token))
        reader = s.get(Reader, delivery.reader_id)
        changes = s.execute(
            select(ReaderChange.source, ReaderChange.field, ReaderChange.old, ReaderChange.new)
            .where(ReaderChange.reader_id == reader.id).order_by(ReaderChange.id)
        ).all()
        return reader.status, [tuple(c) for c in changes]


def test_unsubscribe_page_asks_once_and_its_button_unsubscribes(site):
    status, _, page = site.get(f"/u/{site.token_all}")
    assert status == 200 and "确认退订" in page and "李四" in page
    assert _reader_state(site, site.token_all) == ("active", [])  # a GET changes nothing
    form = re.search(r'<form method="post" action="([^"]+)">(.*?)</form>', page, re.S)
    assert form and form.group(1) == f"{site.base_url}/u/{site.token_all}"
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]+)"', form.group(2)))
    body = "&".join(f"{k}={v}" for k, v in fields.items()).encode()

    status, _, page = site.post(f"/u/{site.token_all}", body, "application/x-www-form-urlencoded")
    assert status == 200 and "已退订" in page
    assert _reader_state(site, site.token_all) == (
        "unsubscribed", [("page", "status", "active", "unsubscribed")]
    )
    # Again, or the page opened later: says so, changes nothing more.
    status, _, page = site.post(f"/u/{site.token_all}", body, "application/x-www-form-urlencoded")
    assert status == 200 and "此前已经退订" in page
    assert "此前已经退订" in site.get(f"/u/{site.token_all}")[2]
    assert len(_reader_state(site, site.token_all)[1]) == 1


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribe_as_a_mail_provider_posts_it(site, encoding):
    # RFC 8058: a POST to the List-Unsubscribe URL, no cookies, the body
    # List-Unsubscribe=One-Click in either form encoding.
    if encoding == "urlencoded":
        body, ctype = b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"
    else:
        body = (b"--xyz\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
                b"One-Click\r\n--xyz--\r\n")
        ctype = "multipart/form-data; boundary=xyz"
    status, _, _ = site.post(f"/u/{site.token.upper()}", body, ctype)
    assert status == 200
    assert _reader_state(site, site.token) == (
        "unsubscribed", [("one-click", "status", "active", "unsubscribed")]
    )


def test_a_post_without_the_one_click_marker_or_with_a_bad_token_changes_nothing(site):
    status, _, page = site.post(f"/u/{site.token}", b"x=1", "application/x-www-form-urlencoded")
    assert status == 200 and "确认退订" in page
    status, _, page = site.post(f"/u/{site.token}", b"a" * 20_000, "text/plain")
    assert status == 200 and "确认退订" in page
    assert _reader_state(site, site.token) == ("active", [])
    for token in ("a" * 26, "not-a-token", "%00"):
        status, _, page = site.post(f"/u/{token}", b"List-Unsubscribe=One-Click",
                                    "application/x-www-form-urlencoded")
        assert status == 404 and "链接无效" in page
        assert site.get(f"/u/{token}")[0] == 404


# -- a large issue, page by page -----------------------------------------------------------

SECTION_SIZES = (25, 25, 20)  # 70 articles; sections run across pages


def _sample_articles() -> list[tuple[str, list[str]]]:
    """(title, paragraphs) of the sample issue's articles (as bench/web.py reads them)."""
    articles: list[tuple[str, list[str]]] = []
    fresh = True
    for line in SAMPLE_ISSUE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("●"):
            fresh = True
            continue
        if fresh and len(line) <= 40 and not line.endswith("。"):
            articles.append((line, []))
        elif articles:
            articles[-1][1].append(line)
        fresh = False
    return [(t, ps) for t, ps in articles if ps and not t.isdigit()]


def _big_issue_file(path, sizes=SECTION_SIZES) -> None:
    """Sections of `sizes` articles, each a sample article numbered, its first two
    paragraphs cut short (how bench/web.py builds its 8,495-article issue)."""
    base = _sample_articles()
    lines = ["许昌竞争情报快递 2024年第1期"]
    i = 0
    for number, size in enumerate(sizes, 1):
        lines.append(f"●专题{number}")
        for _ in range(size):
            title, paragraphs = base[i % len(base)]
            lines.append(f"{i + 1}.{title}"[:40].rstrip("：:，,"))
            lines.extend(p[:150] + ("。" if len(p) > 150 else "") for p in paragraphs[:2])
            lines.append("")
            i += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def big(site, tmp_path):
    """A finalized 70-article issue delivered to a 生物医药 reader: (token, its view)."""
    source = tmp_path / "big.txt"
    _big_issue_file(source)
    with transaction(site.runtime.sessions) as s:
        issue = editorial.store_issue(s, parse_file(source), str(source), site.runtime.rules)
        editorial.finalize(s, issue.id, None)
        reader = add_reader(s, "王五", "c@example.cn", industries=["biomed"])
        token, issue_id = add_delivery(s, issue.id, reader), issue.id
    with site.runtime.sessions() as s:
        view = article_views(editorial.get_issue(s, issue_id))
    return token, view


def _article_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<article id="a-(\d+)">', html)]


def test_a_large_issue_is_read_page_by_page_every_article_once_in_order(site, big):
    token, view = big
    assert [len(arts) for _, arts in view.sections] == list(SECTION_SIZES)
    ids = [a.id for a in view.articles]
    pages = {}
    for n in (1, 2, 3):
        status, _, html = site.get(f"/w/{token}?page={n}")
        assert status == 200
        pages[n] = html
        assert _article_ids(html) == ids[(n - 1) * PAGE_ARTICLES:n * PAGE_ARTICLES]
        text = _text(html)
        assert f"第 {n} 页，共 3 页" in text
        assert text.count(f"第 {n} 页，共 3 页") == 2  # above and below the articles
        # This page's contents, not the whole issue's: its titles and nothing else.
        toc = html[html.index('id="toc"'):html.index("</nav>", html.index('id="toc"'))]
        assert "本页目录" in toc and "本期共 70 篇文章，分 3 页" in _text(toc)
        assert [int(i) for i in re.findall(r'href="#a-(\d+)"', toc)] == _article_ids(html)
        for a in view.articles:
            if a.id in _article_ids(html):
                assert f'href="{site.base_url}/w/{token}/a/{a.id}"' in html
                assert f">{a.title}<" in html and a.blocks[0].text in text
            else:
                assert f">{a.title}<" not in html
    # Every article on exactly one page, in the issue's order.
    assert sum((_article_ids(pages[n]) for n in (1, 2, 3)), []) == ids
    assert site.get(f"/w/{token}")[2] == pages[1]  # no ?page: the first page

    base = f"{site.base_url}/w/{token}"
    assert "上一页" not in _text(pages[1]) and f'href="{base}?page=2">下一页' in pages[1]
    assert f'href="{base}">‹ 上一页' in pages[2] and f'href="{base}?page=3">下一页' in pages[2]
    assert f'href="{base}?page=2">‹ 上一页' in pages[3] and "下一页" not in _text(pages[3])
    # Section headings stay; a section begun on an earlier page says it goes on.
    headings = {n: re.findall(r'<h2 class="section-title">([^<]+)</h2>', pages[n]) for n in pages}
    assert headings == {1: ["专题1", "专题2"], 2: ["专题2（续）", "专题3"], 3: ["专题3（续）"]}
    # A page's article and vote links work as on a one-page issue.
    second = _article_ids(pages[2])[0]
    status, _, article = site.get(f"/w/{token}/a/{second}")
    assert status == 200 and f'href="{base}?page=2">本期全文' in article  # back to its page
    assert f'href="{base}">本期全文' in site.get(f"/w/{token}/a/{ids[0]}")[2]
    vote = re.search(rf'href="{re.escape(site.base_url)}(/f/{token}/{second}/useful[^"]*)"', pages[2])
    assert vote is not None
    assert site.get(vote.group(1).replace("&amp;", "&"))[0] == 200


def test_each_page_of_a_large_issue_is_rendered_once_and_recorded_per_request(site, big):
    token, _ = big
    site.events.clear()
    renders = site.views.renders
    for n in (1, 2, 3, 2, 1):
        assert site.get(f"/w/{token}?page={n}")[0] == 200
    assert site.get(f"/w/{token}")[0] == 200  # the first page, kept as such
    assert site.views.renders == renders + 3
    assert [e.kind for e in site.events] == ["web_view"] * 6
    assert site.get(f"/w/{token}?page=4")[0] == 404
    assert len(site.events) == 6  # no page, no view


@pytest.mark.parametrize(
    "query",
    ["page=0", "page=4", "page=-1", "page=abc", f"page={10**30}", "page=", "page=1.5",
     "page=2&page=3", "page=1&page=1", "page=%EF%BC%92", "page=+2", "page=02", "page=2%00",
     "page=%FF", "page=1%", "page=" + "9" * 500],
)
def test_a_page_the_issue_has_not_is_the_404_page(site, big, query):
    token, _ = big
    status, headers, html = site.get(f"/w/{token}?{query}")
    assert status == 404
    assert headers["content-type"].startswith("text/html")
    assert "页面不存在" in html and 'lang="zh-CN"' in html


def test_a_one_page_issue_shows_no_pager(site):
    status, _, html = site.get(f"/w/{site.token}")
    assert status == 200
    assert "本期目录" in html and "本页目录" not in html
    assert 'class="pager"' not in html and "?page=" not in html and "下一页" not in html
    assert len(_article_ids(html)) == len(_view(site).articles)
    assert site.get(f"/w/{site.token}?page=1")[2] == html
    assert site.get(f"/w/{site.token}?page=2")[0] == 404
