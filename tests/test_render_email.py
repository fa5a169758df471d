"""The email bodies of the sample issue as readers with different industries get them."""

from __future__ import annotations

import email
import email.policy
import re
import shutil

import pytest
from conftest import REPO, SAMPLE_ISSUE

from dispatch import editorial
from dispatch.config import Config
from dispatch.db.session import transaction
from dispatch.ingest import parse_file
from dispatch.render import email as email_render
from dispatch.render import slots
from dispatch.render.pipeline import IssueRenderer, ReaderView
from dispatch.render.templates import make_environment
from dispatch.tagging.rules import load_rules
from dispatch.track.tokens import new_token

BASE_URL = "https://qb.example.cn"
REPLY_DOMAIN = "qb.example.cn"

FUTURE = "未来产业是培育新质生产力的重要引擎"
PATENTS = "让知识产权更好护航前沿科技创新"
SHANGHAI = "上海国际科技创新中心：从“建框架”向“强功能”跃升"
ISSUE_ORDER = [FUTURE, PATENTS, SHANGHAI]

NOTE_SECOND = "本刊每月出版两期，欢迎各单位来稿。"
MARKUP_IN_TEXT = "<b>粗体</b> & “引号”"


@pytest.fixture
def db_url(sqlite_url) -> str:
    """Rendering reads the database only to load an issue: SQLite is enough here."""
    return sqlite_url


@pytest.fixture(scope="module")
def env():
    return make_environment(REPO / "templates")


@pytest.fixture(scope="module")
def rules():
    return load_rules(REPO / "rules" / "industries.toml")


def _config() -> Config:
    cfg = Config(base_dir=REPO)
    cfg.web.base_url = BASE_URL
    cfg.smtp.reply_domain = REPLY_DOMAIN
    cfg.smtp.from_ = "许昌竞争情报快递 <bulletin@qb.example.cn>"
    return cfg


def _store(sessions, rules, path) -> int:
    with transaction(sessions) as s:
        return editorial.store_issue(s, parse_file(path), str(path), rules).id


def _renderer(sessions, env, issue_id: int) -> IssueRenderer:
    with sessions() as s:
        issue = editorial.get_issue(s, issue_id)
        return IssueRenderer.for_issue(issue, env, _config())


@pytest.fixture
def renderer(sessions, env, rules) -> IssueRenderer:
    return _renderer(sessions, env, _store(sessions, rules, SAMPLE_ISSUE))


@pytest.fixture
def edited_sample(tmp_path):
    """The sample with a second paragraph in the editor's note and markup-like text
    at the start of the first article."""
    text = SAMPLE_ISSUE.read_text(encoding="utf-8")
    lines = text.splitlines()
    note_at = next(i for i, line in enumerate(lines) if line.startswith("许昌市科学技术情报研究所是"))
    lines.insert(note_at + 1, NOTE_SECOND)
    first_para = next(i for i, line in enumerate(lines) if line.startswith("未来产业代表着"))
    lines[first_para] = MARKUP_IN_TEXT + lines[first_para]
    path = tmp_path / "issue-edited.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def reader(name="张三", position="局长", *, follows_all=False, industries=(), id=1) -> ReaderView:
    return ReaderView(
        id=id, name=name, position=position, email=f"r{id}@example.cn",
        follows_all=follows_all, industries=frozenset(industries),
    )


def positions(body: str, titles: list[str]) -> list[int]:
    found = [body.find(t) for t in titles]
    assert all(p >= 0 for p in found), f"missing titles: {[t for t, p in zip(titles, found, strict=True) if p < 0]}"
    return found


def between(body: str, start: str, end: str | None) -> str:
    """The part of body from the heading `start` to the heading `end`."""
    i = body.index(start)
    j = body.index(end, i) if end else len(body)
    return body[i:j]


# -- which articles, in which order ---------------------------------------------------


def test_biomed_reader_gets_biomed_articles_first_then_general(renderer):
    r = reader(industries={"biomed"})
    d = renderer.digest_for(r)
    titles = [a.title for a in d.recommended]
    # The report mostly about 生物医药 before the one where it sits beside a stronger
    # subject (新一代信息技术), then 综合.
    assert titles[:2] == [SHANGHAI, PATENTS]
    assert titles[2:] == [FUTURE]  # 综合 last
    assert d.others == ()
    html = renderer.html_for(r, new_token())
    rec = between(html, "为您推荐", "对本期内容有意见")
    p = positions(rec, titles)
    assert p == sorted(p)
    assert "本期其他内容" not in html


def test_it_reader_gets_the_patents_article_first(renderer):
    d = renderer.digest_for(reader(industries={"it"}))
    assert [a.title for a in d.recommended] == [PATENTS, SHANGHAI, FUTURE]


def test_nev_reader_gets_the_shanghai_report_first(renderer):
    r = reader(industries={"nev"})
    html = renderer.html_for(r, new_token())
    rec = between(html, "为您推荐", "本期其他内容")
    assert positions(rec, [SHANGHAI, FUTURE]) == sorted(positions(rec, [SHANGHAI, FUTURE]))
    assert PATENTS not in rec
    assert PATENTS in between(html, "本期其他内容", "对本期内容有意见")
    text = renderer.text_for(r, new_token())
    rec_text = between(text, "【为您推荐】", "【本期其他内容】")
    assert rec_text.index(SHANGHAI) < rec_text.index(FUTURE)


def test_hair_reader_gets_general_recommended_and_the_rest_listed(renderer):
    r = reader(industries={"hair"})
    token = new_token()
    html = renderer.html_for(r, token)
    rec = between(html, "为您推荐", "本期其他内容")
    assert FUTURE in rec and PATENTS not in rec and SHANGHAI not in rec
    others = between(html, "本期其他内容", "对本期内容有意见")
    p = positions(others, [PATENTS, SHANGHAI])
    assert p == sorted(p)  # the rest in the issue's order
    d = renderer.digest_for(r)
    for a in d.others:  # each linked, so nothing in the issue is hidden
        assert f'href="{BASE_URL}/c/{token}/{a.n}"' in others


def test_whole_issue_reader_gets_everything_in_issue_order_by_section(renderer):
    r = reader(follows_all=True)
    html = renderer.html_for(r, new_token())
    assert "为您推荐" not in html and "本期其他内容" not in html
    body = between(html, "本期内容", "对本期内容有意见")
    p = positions(body, ["行业动态", FUTURE, "行业趋势", PATENTS, "行业报告", SHANGHAI])
    assert p == sorted(p)
    text = renderer.text_for(r, new_token())
    tp = positions(between(text, "【本期内容】", "对本期内容有意见"), ISSUE_ORDER)
    assert tp == sorted(tp)
    assert "您收到本刊，是因为您关注：全部产业" in html


def test_reader_with_no_matching_article(sessions, env, rules):
    issue_id = _store(sessions, rules, SAMPLE_ISSUE)
    with transaction(sessions) as s:
        issue = editorial.get_issue(s, issue_id)
        future = next(a for a in issue.articles if a.title == FUTURE)
        editorial.set_tags(s, future.id, ["it"])  # no 综合 article left
    renderer = _renderer(sessions, env, issue_id)
    r = reader(industries={"hair"})
    assert renderer.digest_for(r).recommended == ()
    html = renderer.html_for(r, new_token())
    assert "本期没有与您关注的产业直接相关的文章" in html
    others = between(html, "本期其他内容", "对本期内容有意见")
    p = positions(others, ISSUE_ORDER)
    assert p == sorted(p)
    text = renderer.text_for(r, new_token())
    assert "本期没有与您关注的产业直接相关的文章" in text
    positions(between(text, "【本期其他内容】", "退订"), ISSUE_ORDER)


# -- what each part says ---------------------------------------------------------------


def test_masthead_badges_and_leads(renderer):
    r = reader(industries={"biomed"})
    html = renderer.html_for(r, new_token())
    assert "许昌竞争情报快递</h1>" in html and "许昌市科学技术情报研究所" in html
    d = renderer.digest_for(r)
    for a in d.recommended:
        # Each card: section and badges above the linked title, the lead below it.
        at = html.index(f">{a.title}</a>")
        card = html[html.rindex('class="card"', 0, at):html.index("阅读全文", at)]
        assert a.section in card[: card.index(a.title)]
        for badge in a.badges:
            assert f">{badge}</span>" in card
        assert a.lead and a.lead in card[card.index(a.title):]
    # A lead is a lead, not the article: the rest is on the web page.
    assert "浦江奔流，东方潮涌" not in html


def test_preheader_is_hidden_text_naming_the_recommended(renderer):
    r = reader(industries={"biomed"})
    html = renderer.html_for(r, new_token())
    pre = re.search(r'<div class="preheader" style="([^"]*)">([^<]*)</div>', html)
    assert pre, "preheader missing"
    assert "display:none" in pre.group(1)
    assert pre.group(2).startswith(renderer.digest_for(r).preheader)
    assert html.index('class="preheader"') < html.index("为您推荐")


def test_note_shows_its_first_paragraph_only_with_a_link_to_the_rest(sessions, env, rules, edited_sample):
    renderer = _renderer(sessions, env, _store(sessions, rules, edited_sample))
    r = reader(industries={"biomed"})
    d = renderer.digest_for(r)
    assert d.note_has_more
    token = new_token()
    html = renderer.html_for(r, token)
    text = renderer.text_for(r, token)
    assert d.note_lead.startswith("许昌市科学技术情报研究所是")
    for body in (html, text):
        assert d.note_lead in body
        assert NOTE_SECOND not in body
    note_link = f"{BASE_URL}/c/{token}/{d.notes[0].n}"
    assert f'href="{note_link}"' in between(html, "编者的话", "为您推荐")
    assert f"阅读全文：{note_link}" in text


def test_one_paragraph_note_has_no_read_more(renderer):
    r = reader(industries={"biomed"})
    d = renderer.digest_for(r)
    assert d.note_lead and not d.note_has_more
    token = new_token()
    html = renderer.html_for(r, token)
    assert d.note_lead in html
    assert f"/c/{token}/{d.notes[0].n}" not in html


def test_footer_names_the_interests_and_links(renderer):
    token = new_token()
    html = renderer.html_for(reader(industries={"biomed", "nev"}), token)
    footer = html[html.index("由许昌市科学技术情报研究所编印"):]
    assert "您收到本刊，是因为您关注：生物医药、新能源汽车" in footer
    for url in (f"{BASE_URL}/p/{token}", f"{BASE_URL}/u/{token}", f"{BASE_URL}/w/{token}"):
        assert f'href="{url}"' in footer
    assert "调整关注的产业" in footer and "退订" in footer and "在浏览器中查看" in footer
    pixel = re.search(r"<img [^>]*src=\"" + re.escape(f"{BASE_URL}/o/{token}.gif") + r"\"[^>]*>", html)
    assert pixel, "open pixel missing"
    assert 'alt=""' in pixel.group(0) and 'width="1"' in pixel.group(0) and 'height="1"' in pixel.group(0)


# -- safety and email hygiene ----------------------------------------------------------


def test_reader_data_is_escaped(renderer):
    evil = reader(name="<script>alert(1)</script>", position="")
    html = renderer.html_for(evil, new_token())
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    # The plain-text part is text: the name as written.
    assert "尊敬的<script>alert(1)</script>：" in renderer.text_for(evil, new_token())


def test_issue_text_is_escaped(sessions, env, rules, edited_sample):
    renderer = _renderer(sessions, env, _store(sessions, rules, edited_sample))
    html = renderer.html_for(reader(follows_all=True), new_token())
    assert "&lt;b&gt;粗体&lt;/b&gt; &amp; “引号”" in html
    assert "<b>粗体" not in html
    assert MARKUP_IN_TEXT in renderer.text_for(reader(follows_all=True), new_token())


def test_html_is_a_self_contained_email(renderer):
    html = renderer.html_for(reader(industries={"biomed"}), new_token())
    lower = html.lower()
    assert "<script" not in lower
    assert "<link" not in lower and "@import" not in lower
    assert "javascript:" not in lower
    # CSS inlined onto the elements …
    assert re.search(r'<td class="content" style=[^>]*font-family:[^>]*PingFang SC[^>]*Microsoft YaHei', html)
    assert re.search(r'class="container"[^>]*style=[^>]*max-width:680px', html)
    assert re.search(r'<a class="title-link" href="[^"]+" style="[^"]*color:', html)
    # … the phone rules kept in <head>, and still winning over the inlined styles.
    media = re.search(r"@media only screen and \(max-width: 480px\)\s*\{(.*?)\}\s*\}", html, re.S)
    assert media, "the phone media query was dropped"
    assert "!important" in media.group(1)
    dark = re.search(r"@media \(prefers-color-scheme: dark\)\s*\{(.*?)\}\s*\}", html, re.S)
    assert dark and "!important" in dark.group(1)
    # Client-specific rules untouched, Outlook's conditional comments kept.
    assert "[data-ogsc] .title-link" in html
    assert "data-premailer" not in html
    assert "<!--[if mso]>" in html
    assert 'lang="zh-CN"' in html


def test_plain_text_reads_on_its_own(renderer):
    r = reader(industries={"hair"})
    token = new_token()
    text = renderer.text_for(r, token)
    assert text.startswith("《许昌竞争情报快递》")
    assert "尊敬的张三局长：" in text
    assert "<" not in text and "&gt;" not in text and "&amp;" not in text
    d = renderer.digest_for(r)
    for a in d.recommended:
        assert a.title in text and a.lead in text
        assert f"阅读全文：{BASE_URL}/c/{token}/{a.n}" in text
    for a in d.others:
        assert a.title in text and f"{BASE_URL}/c/{token}/{a.n}" in text
    for url in (f"{BASE_URL}/w/{token}", f"{BASE_URL}/p/{token}", f"{BASE_URL}/u/{token}"):
        assert url in text
    assert "您收到本刊，是因为您关注：发制品。" in text
    assert "\n\n\n" not in text


def test_slot_markers_never_reach_a_reader(renderer):
    readers = [
        reader(industries={"biomed"}),
        reader(name="李四", follows_all=True, id=2),
        reader(name="王五", industries={"hair"}, id=3),
    ]
    for r in readers:
        token = new_token()
        html, text = renderer.html_for(r, token), renderer.text_for(r, token)
        message = renderer.email_message(r, token)
        for body in (html, text, message.decode("ascii")):
            for marker in slots.SLOTS:
                assert marker not in body
        assert html.count(f"/c/{token}/") >= 2 and text.count(f"/c/{token}/") >= 2
        assert r.greeting in html and r.greeting in text
        parsed = email.message_from_bytes(message, policy=email.policy.default)
        html_part = parsed.get_body(("html",)).get_content()
        text_part = parsed.get_body(("plain",)).get_content()
        assert r.greeting in html_part and f"{BASE_URL}/w/{token}" in html_part
        assert r.greeting in text_part


def test_render_bodies_keeps_the_slots(renderer, env):
    d = renderer.digest_for(reader(industries={"biomed"}))
    html, text = email_render.render_bodies(env, d, renderer.variant_links(), renderer.subject)
    for body in (html, text):
        assert body.count(slots.GREETING) == 1
        assert f"/c/{slots.TOKEN}/" in body
    assert f"<title>{renderer.subject}</title>" in html


def test_one_variant_per_distinct_digest(renderer):
    readers = [
        reader("甲", industries={"biomed"}, id=1),
        reader("乙", industries={"biomed"}, id=2),  # same as 甲
        reader("丙", industries={"hair"}, id=3),
        reader("丁", follows_all=True, id=4),
        reader("戊", follows_all=True, id=5),  # same as 丁
        reader("己", industries={"hair"}, id=6),  # same as 丙
    ]
    bodies = {r.name: renderer.html_for(r, new_token()) for r in readers}
    assert renderer.variants_built == 3
    assert "尊敬的甲局长：" in bodies["甲"] and "尊敬的乙局长：" in bodies["乙"]
    # Same articles in the same order as 生物医药 alone: the same variant, while the
    # footer still names this reader's own industries (a per-reader slot).
    both = renderer.html_for(reader("庚", industries={"biomed", "hair"}, id=7), new_token())
    assert renderer.variants_built == 3
    assert "您关注：生物医药、发制品" in both and "您关注：生物医药。" in bodies["甲"]
    # 新一代信息技术 ranks the two matching articles the other way round: a new variant.
    renderer.html_for(reader("辛", industries={"it"}, id=8), new_token())
    assert renderer.variants_built == 4


def test_a_template_that_mangles_a_marker_is_refused(renderer, tmp_path):
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    page = tmp_path / "templates" / "email.html.j2"
    page.write_text(
        page.read_text(encoding="utf-8").replace("{{ greeting }}", "{{ greeting | upper }}"),
        encoding="utf-8",
    )
    d = renderer.digest_for(reader(industries={"biomed"}))
    env = make_environment(tmp_path / "templates")
    with pytest.raises(ValueError, match="email.html.j2: a per-reader marker was changed"):
        email_render.render_bodies(env, d, renderer.variant_links(), renderer.subject)
