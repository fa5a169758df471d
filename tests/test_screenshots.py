"""The sample issue's email (and web pages) in a real browser: nothing may overflow a
phone's 375 px or the email's 680 px. Headless Chromium measures the page and takes
screenshots (kept in the test's tmp dir, for people to look at)."""

from __future__ import annotations

import re
import shutil
import subprocess
from html import escape
from pathlib import Path

import pytest
from conftest import REPO, SAMPLE_ISSUE

from dispatch import editorial
from dispatch.config import Config
from dispatch.db.session import make_engine, migrate, session_factory, transaction
from dispatch.ingest import parse_file
from dispatch.render.pipeline import IssueRenderer, ReaderView
from dispatch.render.templates import make_environment
from dispatch.tagging.rules import load_rules
from dispatch.track.tokens import new_token
from dispatch.web import pages

pytestmark = pytest.mark.browser

# Port 9 (discard) on loopback: the page's pixel and links go nowhere, at once.
BASE_URL = "http://127.0.0.1:9"
WIDTHS = (375, 680)
INSTALL = "apt-get update && apt-get install -y chromium fonts-noto-cjk"

# Headless Chromium lays a window out at least 500 px wide whatever --window-size says,
# so the page goes into an iframe of exactly the width under test (srcdoc: same origin,
# so the frame can be measured; the page itself is unchanged). The test-only script is
# the wrapper's: it writes the frame's layout into the DOM, which --dump-dom prints.
WRAPPER = """<!DOCTYPE html><html><head><meta charset="utf-8">
<style>html,body{{margin:0;padding:0;background:#fff}}iframe{{display:block;border:0}}</style>
</head><body><iframe id="f" width="{width}" height="{height}" srcdoc="{srcdoc}"></iframe>
{script}</body></html>"""
MEASURE = """<script>(function(){
var f = document.getElementById('f');
function measure() {
  var d = f.contentDocument.documentElement;
  var first = f.contentDocument.querySelector('.title, .article-title');
  document.documentElement.setAttribute('data-measure', [d.scrollWidth,
    f.contentWindow.innerWidth, Math.ceil(d.getBoundingClientRect().height),
    first ? Math.floor(first.getBoundingClientRect().top) : -1].join(' '));
}
var doc = f.contentDocument;  // the initial about:blank is 'complete' too: not that one
if (doc && doc.URL === 'about:srcdoc' && doc.readyState === 'complete') measure();
else f.addEventListener('load', measure);
})();</script>"""
_MEASURED = re.compile(r'data-measure="(\d+) (\d+) (\d+) (-?\d+)"')
# A phone's first screen (375 × 667), less the mail app's own header over the message.
FIRST_SCREEN = 560


def framed(html: str, width: int, height: int, script: str = "") -> str:
    return WRAPPER.format(width=width, height=height, srcdoc=escape(html, quote=True), script=script)


def chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        pytest.fail(f"headless Chromium is needed for this test; install it with: {INSTALL}")
    return path


def run_chromium(tmp_path: Path, width: int, height: int, *args: str) -> str:
    cmd = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--window-size={width},{height}",
        *args,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


def measure(tmp_path: Path, html: str, name: str, width: int) -> tuple[int, int, int, int]:
    """(scrollWidth, innerWidth, content height, top of the first article's title) of the
    page in a frame this wide."""
    page = tmp_path / f"{name}-{width}-measure.html"
    page.write_text(framed(html, width, 900, MEASURE), encoding="utf-8")
    dom = run_chromium(tmp_path, max(width, 500), 900, "--dump-dom", page.as_uri())
    m = _MEASURED.search(dom)
    assert m, f"no measurement in the dumped DOM of {page}"
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4))


def screenshot(tmp_path: Path, html: str, name: str, width: int, height: int) -> Path:
    """The whole page at this width (the window is cut to the frame's width)."""
    height = min(height, 8000)
    page = tmp_path / f"{name}-{width}.html"
    page.write_text(framed(html, width, height), encoding="utf-8")
    png = tmp_path / f"{name}-{width}.png"
    run_chromium(tmp_path, width, height, f"--screenshot={png}", page.as_uri())
    assert png.exists() and png.stat().st_size > 10_000, f"no screenshot at {png}"
    return png


@pytest.fixture(scope="module")
def renderer(tmp_path_factory) -> IssueRenderer:
    db = tmp_path_factory.mktemp("db") / "dispatch.db"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    sessions = session_factory(engine)
    rules = load_rules(REPO / "rules" / "industries.toml")
    config = Config(base_dir=REPO)
    config.web.base_url = BASE_URL
    with transaction(sessions) as s:
        issue = editorial.store_issue(s, parse_file(SAMPLE_ISSUE), str(SAMPLE_ISSUE), rules)
        renderer = IssueRenderer.for_issue(issue, make_environment(REPO / "templates"), config)
    engine.dispose()
    return renderer


READERS = {
    "all": ReaderView(id=1, name="张三", position="副市长", email="a@example.cn", follows_all=True),
    "biomed": ReaderView(
        id=2, name="欧阳明远", position="总经理", email="b@example.cn", industries=frozenset({"biomed"})
    ),
    # Nothing in the sample is about 发制品 or 轻纺: the 本期暂无 line, then 综合.
    "none": ReaderView(
        id=3, name="李四", position="董事长", email="c@example.cn", industries=frozenset({"hair", "textile"})
    ),
}


@pytest.mark.parametrize("who", sorted(READERS))
def test_email_fits_phone_and_desktop(renderer, tmp_path, who):
    html = renderer.html_for(READERS[who], new_token())
    assert "<script" not in html
    for width in WIDTHS:
        scroll_width, inner_width, scroll_height, first_title = measure(tmp_path, html, f"email-{who}", width)
        assert inner_width == width, f"the browser's viewport is {inner_width}, not {width}"
        assert scroll_width <= width, f"email for {who} overflows at {width}px: {scroll_width}px wide"
        if width == 375:
            # The editor's note is cut short enough that an article shows on the first screen.
            assert 0 < first_title < FIRST_SCREEN, f"email for {who}: first article at {first_title}px"
        png = screenshot(tmp_path, html, f"email-{who}", width, scroll_height)
        print(f"screenshot: {png}")


@pytest.mark.parametrize("page", ["issue", "article", "vote"])
def test_web_pages_fit_a_phone(renderer, tmp_path, page):
    reader = READERS["biomed"]
    digest = renderer.digest_for(reader)
    links = renderer.links(new_token())
    env = renderer.env
    article = digest.issue.articles[-1]
    if page == "issue":
        html = pages.issue_page(env, digest, links)
    elif page == "article":
        html = pages.article_page(env, digest, links, article.id)
    else:  # what a reader sees after clicking 有用 (web.votes renders it with these)
        html = env.get_template("web_vote.html.j2").render(
            page_title="谢谢您的反馈", state="thanks", article_title=article.title,
            vote_word="有用", other_word="没用", other_url=links.vote(article.id, "not_useful"),
            action=links.vote(article.id, "useful"), csrf="x", max_chars=2000,
            article_url=links.article(article.id), issue_url=links.web_view(),
        )
    for width in (375, 1024):
        scroll_width, inner_width, scroll_height, _ = measure(tmp_path, html, f"web-{page}", width)
        assert inner_width == width
        assert scroll_width <= width, f"web {page} page overflows at {width}px: {scroll_width}px"
        print(f"screenshot: {screenshot(tmp_path, html, f'web-{page}', width, scroll_height)}")
