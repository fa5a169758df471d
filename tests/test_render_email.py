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
from dispatch.web import pages

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
    # Nothing about 发制品 this time, and the digest says so before the 综合 article.
    assert rec.index("本期暂无「发制品」相关文章，以下为综合内容。") < rec.index(FUTURE)
    text_rec = between(renderer.text_for(r, token), "【为您推荐】", "【本期其他内容】")
    assert text_rec.index("本期暂无「发制品」相关文章，以下为综合内容。") < text_rec.index(FUTURE)
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
    assert "本期暂无「发制品」相关文章，欢迎浏览下面的本期其他内容。" in html
    others = between(html, "本期其他内容", "对本期内容有意见")
    p = positions(others, ISSUE_ORDER)
    assert p == sorted(p)
    text = renderer.text_for(r, new_token())
    assert "本期暂无「发制品」相关文章，欢迎浏览下面的本期其他内容。" in text
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
        assert [name for _, name in badges_in(card)] == [
            ("✓ " if c == "biomed" else "") + name for c, name in a.badge_items
        ]
        assert a.lead and a.lead in card[card.index(a.title):]
    # A lead is a lead, not the article: the rest is on the web page.
    assert "浦江奔流，东方潮涌" not in html


_BADGE = re.compile(r'<span class="(badge[^"]*)"([^>]*)>([^<]*)</span>')


def badges_in(html: str) -> list[tuple[str, str]]:
    """(class, text) of each badge, in order."""
    return [(m.group(1), m.group(3)) for m in _BADGE.finditer(html)]


def card_of(html: str, title: str) -> str:
    at = html.index(f">{title}</a>")
    return html[html.rindex('class="card"', 0, at):html.index("阅读全文", at)]


def test_the_readers_own_industries_stand_out_among_the_badges(renderer):
    token = new_token()
    biomed = reader(industries={"biomed"})
    html, text = renderer.html_for(biomed, token), renderer.text_for(biomed, token)
    # Filled and marked ✓ (not by colour alone); the other industries outlined, unmarked.
    assert badges_in(card_of(html, SHANGHAI)) == [
        ("badge", "新一代信息技术"), ("badge badge-own", "✓ 生物医药"), ("badge", "新能源汽车"),
    ]
    styles = dict((m.group(3), m.group(2)) for m in _BADGE.finditer(card_of(html, SHANGHAI)))
    assert "font-weight:bold" in styles["✓ 生物医药"] and "background-color:#b4151c" in styles["✓ 生物医药"]
    assert "border:1px solid" in styles["新一代信息技术"] and "bold" not in styles["新一代信息技术"]
    assert badges_in(card_of(html, FUTURE)) == [("badge", "综合")]  # never anyone's own
    assert "标“✓”的是您关注的产业" in between(html, "为您推荐", SHANGHAI)
    assert "行业报告 · 新一代信息技术、✓生物医药、新能源汽车" in text
    assert "标“✓”的是您关注的产业" in text

    # Following 新能源汽车 too: the same articles in the same order, so the same rendering
    # of the selection, and both its industries marked.
    rendered = renderer.selections_rendered
    both = reader(industries={"biomed", "nev"}, id=2)
    html2, text2 = renderer.html_for(both, token), renderer.text_for(both, token)
    assert renderer.selections_rendered == rendered
    assert badges_in(card_of(html2, SHANGHAI)) == [
        ("badge", "新一代信息技术"), ("badge badge-own", "✓ 生物医药"), ("badge badge-own", "✓ 新能源汽车"),
    ]
    assert "新一代信息技术、✓生物医药、✓新能源汽车" in text2
    assert "✓ 生物医药" in renderer.html_for(biomed, token)  # the first reader's stays theirs

    # A 全部 reader follows everything: nothing singled out.
    everyone = reader(follows_all=True, id=3)
    html3, text3 = renderer.html_for(everyone, token), renderer.text_for(everyone, token)
    assert "✓" not in html3 and "badge-own" not in html3.split("</head>")[1] and "✓" not in text3

    # The web pages mark them alike.
    page = pages.issue_page(renderer.env, renderer.digest_for(biomed), renderer.links(token))
    assert ("badge badge-own", "✓ 生物医药") in badges_in(page)
    assert ("badge", "新能源汽车") in badges_in(page)


def test_no_match_line_names_the_readers_industries_and_only_when_nothing_matches(renderer):
    token = new_token()
    hair = reader(industries={"hair", "textile"})
    for body in (renderer.html_for(hair, token), renderer.text_for(hair, token)):
        assert "本期暂无「发制品、轻纺」相关文章，以下为综合内容。" in body
    for r in (reader(industries={"biomed", "hair"}, id=2), reader(follows_all=True, id=3)):
        for body in (renderer.html_for(r, token), renderer.text_for(r, token)):
            assert "本期暂无" not in body


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


def test_a_long_note_shows_its_opening_and_links_to_the_page_where_it_is_whole(renderer):
    """The sample's note is one paragraph of ~430 characters: on a phone it would fill
    the first screen before any article."""
    r = reader(industries={"biomed"})
    d = renderer.digest_for(r)
    note = d.notes[0]
    whole = note.paragraphs[0]
    assert d.note_lead == "许昌市科学技术情报研究所是隶属于市科技局的财政全额供给事业单位。为适应新时期科技信息工作的需要，更好地服务政府决策和企业发展，推动企业转型升级，决定升级改版《许昌竞争情报快递》这一内部交流刊物。"
    assert whole.startswith(d.note_lead) and d.note_has_more
    token = new_token()
    html, text = renderer.html_for(r, token), renderer.text_for(r, token)
    rest = whole[len(d.note_lead):][:20]  # 该刊物立足许昌市现有工业基础…
    for body in (html, text):
        assert d.note_lead in body and rest not in body
    link = f"{BASE_URL}/c/{token}/{note.n}"
    box = between(html, "编者的话", "为您推荐")
    assert f'href="{link}"' in box and "阅读全文" in box
    assert f"阅读全文：{link}" in text
    # Behind the link (the click redirect goes to the note's page): the whole note.
    page = pages.article_page(renderer.env, d, renderer.links(token), note.id)
    assert page is not None and whole in page


def test_a_short_note_is_shown_whole_without_read_more(sessions, env, rules, tmp_path):
    lines = SAMPLE_ISSUE.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("许昌市科学技术情报研究所是"))
    lines[at] = "本期聚焦未来产业与知识产权。"
    path = tmp_path / "short-note.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    renderer = _renderer(sessions, env, _store(sessions, rules, path))
    r = reader(industries={"biomed"})
    d = renderer.digest_for(r)
    assert d.note_lead == "本期聚焦未来产业与知识产权。" and not d.note_has_more
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


def test_every_card_has_its_votes_with_the_readers_token(renderer):
    for r in (reader(industries={"hair"}), reader(follows_all=True, id=2)):
        token = new_token()
        html, text = renderer.html_for(r, token), renderer.text_for(r, token)
        d = renderer.digest_for(r)
        for a in d.recommended:
            useful = f"{BASE_URL}/f/{token}/{a.id}/useful"
            not_useful = f"{BASE_URL}/f/{token}/{a.id}/not_useful"
            # Under the card's 阅读全文, before the next article.
            card = html[html.index(f">{a.title}</a>"):]
            card = card[:card.find('class="card"') if 'class="card"' in card else None]
            vote = re.search(r'<p class="vote"[^>]*>(.*?)</p>', card, re.S)
            assert vote, f"no votes under {a.title}"
            assert re.findall(r'href="([^"]+)"[^>]*>(有用|没用)</a>', vote.group(1)) == [
                (useful, "有用"), (not_useful, "没用"),
            ]
            item = text[text.index(f". {a.title}\n"):]
            item = item[:item.index("\n\n")]
            assert item.endswith(f"阅读全文：{BASE_URL}/c/{token}/{a.n}\n   有用：{useful}\n   没用：{not_useful}")
        # The rest of the issue is a list of titles, and the editor's note no article:
        # neither has votes.
        voted = {int(i) for i in re.findall(rf"/f/{token}/(\d+)/useful", html)}
        assert voted == {a.id for a in d.recommended}
        assert voted == {int(i) for i in re.findall(rf"/f/{token}/(\d+)/useful", text)}


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


def test_a_template_that_mangles_a_badge_marker_is_refused(renderer, tmp_path):
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    page = tmp_path / "templates" / "email.html.j2"
    source = page.read_text(encoding="utf-8")
    assert "{{ m.badges(a, own) }}" in source
    page.write_text(source.replace("{{ m.badges(a, own) }}", "{{ m.badges(a, own) | upper }}"), encoding="utf-8")
    d = renderer.digest_for(reader(industries={"biomed"}))
    env = make_environment(tmp_path / "templates")
    with pytest.raises(ValueError, match="email.html.j2: a per-reader marker was changed"):
        email_render.render_bodies(env, d, renderer.variant_links(), renderer.subject)
