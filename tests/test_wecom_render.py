"""The WeChat Work form of a digest: limits, order, links and the per-reader fill."""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace
from datetime import date

import pytest

from dispatch.render import slots
from dispatch.render.views import ArticleView, Block, Digest, IssueView
from dispatch.render.wecom import (
    BTNTXT_MAX_CHARS,
    DESCRIPTION_MAX_BYTES,
    MARKDOWN_MAX_BYTES,
    NEWS_MAX_ARTICLES,
    TC_BUTTON_MAX_ITEMS,
    TC_HORIZONTAL_MAX_ITEMS,
    TC_JUMP_MAX_ITEMS,
    TC_JUMP_TITLE_MAX_CHARS,
    TC_KEYNAME_MAX_CHARS,
    TC_MAIN_DESC_MAX_CHARS,
    TC_MAIN_TITLE_MAX_CHARS,
    TC_SUB_TITLE_MAX_CHARS,
    TC_TASK_ID_MAX_BYTES,
    TC_VALUE_MAX_CHARS,
    TITLE_MAX_BYTES,
    fit,
    md_escape,
    render_variant,
    truncate_utf8,
)
from dispatch.track.links import Links
from dispatch.track.tokens import new_token

BASE = "https://qbkd.xcsti.example.cn"
TOKEN = "abcdefghijklmnopqrstuvwxyz234567"
LINKS = Links(BASE, "reply.example.cn", TOKEN)
USER = "ZhangWei"
AGENT = 1000002
GREETING = "张局长，您好！"

# Realistic titles; some far over 128 bytes, one with 4-byte characters where a cut falls.
TITLES = [
    "许昌市发制品产业集群入选国家级中小企业特色产业集群",
    "未来产业是培育新质生产力的重要引擎：从完善发展生态、创新发展模式、突出应用牵引、"
    "坚持开放合作等方面进一步加快未来产业创新发展的步伐",
    "让知识产权更好护航前沿科技创新",
    "上海国际科技创新中心：从“建框架”向“强功能”跃升",
    "🚗🔋新能源汽车产业链🔋🚗" * 6,
    "瑞贝卡、森源电气、许继集团等12家企业入选河南省制造业头雁企业名单，"
    "许昌市智能装备与装备制造产业链“链长制”工作推进会召开并部署下一阶段重点任务",
    "新材料：超硬材料产业园二期项目签约落地长葛",
    "生物医药产业高质量发展三年行动方案（2024—2026年）印发",
    "节能环保装备企业“出海”记：从许昌到东南亚",
    "食品产业：休闲食品线上销售同比增长37.5%",
]
LEAD_LONG = (
    "未来产业代表着新一轮科技革命和产业变革的重要方向。布局建设未来产业，正是提升制造业发展效能、"
    "推动制造业高质量发展的应有之义。习近平总书记在中共中央政治局第十一次集体学习时强调，发展新质生产力"
    "是推动高质量发展的内在要求和重要着力点，必须继续做好创新这篇大文章，推动新质生产力加快发展。"
    "新质生产力与未来产业的内涵高度统一。一是都高度依赖创新驱动。"
)


def art(n: int, title: str, lead: str, industries=("materials",), kind="article") -> ArticleView:
    return ArticleView(
        id=100 + n,
        n=n,
        kind=kind,
        title=title,
        section="行业动态",
        industries=tuple(industries),
        badges=(),
        lead=lead,
        blocks=(Block("paragraph", lead),),
        source=None,
    )


def lead_of(i: int) -> str:
    # Leads > 512 bytes; one with an emoji exactly where 512 bytes fall.
    if i == 1:
        return LEAD_LONG
    if i == 4:
        return "产" * 170 + "😀" * 10  # 510 bytes of hanzi, then 4-byte characters
    return f"第{i}篇导语。" + "许昌市科技情报研究所持续跟踪产业动态，" * (i % 3 + 1)


def make_issue(count: int) -> IssueView:
    note = art(1, "编者的话", "许昌市科学技术情报研究所是隶属于市科技局的财政全额供给事业单位。", (), "note")
    arts = tuple(
        art(i + 2, TITLES[i % len(TITLES)] + (f"（{i}）" if i >= len(TITLES) else ""), lead_of(i))
        for i in range(count)
    )
    return IssueView(
        id=7,
        title="许昌竞争情报快递",
        number="2024年第3期",
        date=date(2024, 5, 10),
        sections=(("编者的话", (note,)), ("行业动态", arts)),
    )


def reader_digest(issue: IssueView, recommended_idx: list[int]) -> Digest:
    body = [a for a in issue.articles if a.kind != "note"]
    rec = tuple(body[i] for i in recommended_idx)
    others = tuple(a for a in body if a not in rec)
    notes = tuple(a for a in issue.articles if a.kind == "note")
    return Digest(issue, notes, rec, others, False, "新材料、生物医药")


def whole_digest(issue: IssueView) -> Digest:
    body = tuple(a for a in issue.articles if a.kind != "note")
    notes = tuple(a for a in issue.articles if a.kind == "note")
    return Digest(issue, notes, body, (), True, "全部")


def wecom_body(
    digest: Digest, links: Links, *, msgtype: str, touser: str, agentid: int, greeting: str = ""
) -> dict:
    """One reader's message/send body (`links` carries the reader's token), by delivery's
    own path: the variant, then the reader's fill."""
    variant = render_variant(digest, replace(links, token=slots.TOKEN), msgtype=msgtype, agentid=agentid)
    return json.loads(variant.fill_json(touser=touser, token=links.token, greeting=greeting))


def to_json(body: dict) -> str:
    """The canonical text of a body, as `dispatch preview --format wecom` prints it."""
    return json.dumps(body, ensure_ascii=False)


def body_of(digest: Digest, msgtype: str, greeting: str = GREETING) -> dict:
    return wecom_body(digest, LINKS, msgtype=msgtype, touser=USER, agentid=AGENT, greeting=greeting)


def nbytes(s: str) -> int:
    return len(s.encode("utf-8"))


def assert_cut_of(got: str, original: str, limit: int) -> None:
    """Within the limit, valid UTF-8, and the original or a prefix of it plus '…'."""
    assert nbytes(got) <= limit
    assert got.encode("utf-8").decode("utf-8") == got
    if got != original:
        assert got.endswith("…")
        assert original.startswith(got[:-1])


def assert_reader_filled(text: str) -> None:
    assert TOKEN in text
    for marker in slots.SLOTS:
        assert marker not in text


# ---------------------------------------------------------------------------------------
# truncate_utf8


def test_truncate_keeps_text_that_fits():
    assert truncate_utf8("许昌", 6) == "许昌"
    assert truncate_utf8("", 0) == ""


@pytest.mark.parametrize("limit", range(0, 40))
def test_truncate_never_cuts_a_character(limit):
    text = "许昌😀a发制品🇨🇳产业👨‍👩‍👧集群é̂"
    got = truncate_utf8(text, limit)
    assert nbytes(got) <= limit
    got.encode("utf-8").decode("utf-8")
    if got != text and limit >= 3:
        assert got.endswith("…") and text.startswith(got[:-1])


def test_truncate_does_not_split_emoji_sequences_or_flags():
    family = "👨‍👩‍👧"
    for limit in range(3, nbytes("许" + family) + 3):
        got = truncate_utf8("许" + family + "昌", limit)
        kept = got.removesuffix("…")
        assert kept in ("", "许", "许" + family, "许" + family + "昌")
    flags = "🇨🇳🇨🇳"
    for limit in range(3, nbytes(flags) + 3):
        kept = truncate_utf8(flags + "许", limit).removesuffix("…")
        assert kept in ("", "🇨🇳", flags, flags + "许")


def test_truncate_at_a_four_byte_boundary():
    text = "产" * 170 + "😀" * 10  # 510 bytes, then 4-byte characters
    got = truncate_utf8(text, 512)
    assert got == "产" * 169 + "…"  # 507 + 3: the emoji cannot be split


def test_fit_cuts_before_escaping():
    text = "研发R&D投入" * 20
    for limit in range(0, 80):
        got = fit(text, limit, lambda s: html.escape(s, quote=False))
        assert nbytes(got) <= limit
        # Every & starts a whole entity: the cut fell in the text, not in an escape.
        assert got.count("&") == got.count("&amp;")
        assert text.startswith(html.unescape(got).removesuffix("…"))


# ---------------------------------------------------------------------------------------
# news


def test_news_at_most_eight_most_relevant_first():
    issue = make_issue(12)
    digest = reader_digest(issue, [6, 1, 7])
    body = body_of(digest, "news")
    items = body["news"]["articles"]
    assert len(items) == NEWS_MAX_ARTICLES
    expected = [*digest.recommended, *digest.others][: NEWS_MAX_ARTICLES - 1]
    for item, a in zip(items, expected, strict=False):
        assert item["url"] == LINKS.click(a.n)
        assert_cut_of(item["title"], a.title, TITLE_MAX_BYTES)
        assert_cut_of(item["description"], a.lead, DESCRIPTION_MAX_BYTES)
    # The last place leads to the whole issue.
    assert items[-1]["url"] == LINKS.web_view()
    assert "12" in items[-1]["title"]


def test_news_limits_and_links_for_every_item():
    for count in (1, 3, 7, 8, 30):
        digest = reader_digest(make_issue(count), [0])
        items = body_of(digest, "news")["news"]["articles"]
        assert 1 <= len(items) <= NEWS_MAX_ARTICLES
        for item in items:
            assert nbytes(item["title"]) <= TITLE_MAX_BYTES
            assert nbytes(item.get("description", "")) <= DESCRIPTION_MAX_BYTES
            item["title"].encode("utf-8").decode("utf-8")
            assert_reader_filled(item["url"])
            assert item["url"].startswith(BASE + "/")


def test_news_long_titles_and_leads_are_cut_cleanly():
    digest = reader_digest(make_issue(6), [1, 4, 5])
    items = body_of(digest, "news")["news"]["articles"]
    long_title = items[1]  # the emoji title, > 128 bytes
    assert nbytes(TITLES[4]) > TITLE_MAX_BYTES
    assert_cut_of(long_title["title"], TITLES[4], TITLE_MAX_BYTES)
    assert long_title["title"] != TITLES[4]
    assert nbytes(LEAD_LONG) > DESCRIPTION_MAX_BYTES
    assert_cut_of(items[0]["description"], LEAD_LONG, DESCRIPTION_MAX_BYTES)
    assert items[1]["description"] == "产" * 169 + "…"


def test_news_short_issue_includes_the_note_last():
    digest = reader_digest(make_issue(3), [2])
    items = body_of(digest, "news")["news"]["articles"]
    assert [i["url"] for i in items] == [LINKS.click(n) for n in (4, 2, 3, 1)]


def test_news_whole_issue_reader_gets_the_issue_order():
    issue = make_issue(6)
    items = body_of(whole_digest(issue), "news")["news"]["articles"]
    body_articles = [a for a in issue.articles if a.kind != "note"]
    assert [i["url"] for i in items[:6]] == [LINKS.click(a.n) for a in body_articles]


# ---------------------------------------------------------------------------------------
# markdown


def test_markdown_within_limit_even_with_thirty_articles():
    for digest in (reader_digest(make_issue(30), list(range(0, 30, 2))), whole_digest(make_issue(30))):
        body = body_of(digest, "markdown", greeting="尊" * 200)  # a greeting far too long
        content = body["markdown"]["content"]
        assert nbytes(content) <= MARKDOWN_MAX_BYTES
        content.encode("utf-8").decode("utf-8")
        assert_reader_filled(content)
        assert content.rstrip().endswith(f"[阅读本期全文 ›]({LINKS.web_view()})")
        assert "另有" in content  # what did not fit is counted, not silently dropped


def test_markdown_never_cuts_a_link():
    content = body_of(reader_digest(make_issue(30), [1, 4, 5]), "markdown")["markdown"]["content"]
    links = re.findall(r"\[([^\]\n]*)\]\(([^)\n]*)\)", content)
    assert content.count("[") == content.count("]") == content.count("(" + BASE) == len(links)
    for _, url in links:
        assert url.startswith(BASE) and TOKEN in url


def test_markdown_most_relevant_first_with_leads():
    issue = make_issue(5)
    digest = reader_digest(issue, [3, 0])
    content = body_of(digest, "markdown")["markdown"]["content"]
    assert content.startswith("### 《许昌竞争情报快递》2024年第3期\n张局长，您好！\n")
    first, second = LINKS.click(digest.recommended[0].n), LINKS.click(digest.recommended[1].n)
    assert content.index(first) < content.index(second)
    assert content.index("**为您推荐**") < content.index(first)
    for a in digest.others:
        assert content.index(second) < content.index(LINKS.click(a.n))
    assert '<font color="comment">' + md_escape(digest.recommended[0].lead[:10]) in content


def test_markdown_escapes_markup_in_titles():
    issue = make_issue(1)
    a = issue.sections[1][1][0]
    tricky = ArticleView(**{**a.__dict__, "title": "[广告](http://evil) **粗** `码` <font>"})
    issue = IssueView(issue.id, issue.title, issue.number, issue.date, (("行业动态", (tricky,)),))
    content = body_of(reader_digest(issue, [0]), "markdown")["markdown"]["content"]
    assert "http://evil" in content  # shown as text …
    assert "](http://evil)" not in content and "**粗**" not in content and "<font>" not in content


def test_markdown_without_greeting_has_no_empty_line_for_it():
    content = body_of(reader_digest(make_issue(2), [0]), "markdown", greeting="")["markdown"]["content"]
    assert content.startswith("### 《许昌竞争情报快递》2024年第3期\n<font")


# ---------------------------------------------------------------------------------------
# textcard


def test_textcard_limits():
    for digest in (reader_digest(make_issue(30), list(range(30))), whole_digest(make_issue(3))):
        card = body_of(digest, "textcard", greeting="尊" * 200)["textcard"]
        assert nbytes(card["title"]) <= TITLE_MAX_BYTES
        assert nbytes(card["description"]) <= DESCRIPTION_MAX_BYTES
        card["description"].encode("utf-8").decode("utf-8")
        assert len(card["btntxt"]) <= BTNTXT_MAX_CHARS
        assert card["url"] == LINKS.web_view()
        assert_reader_filled(card["url"])
        for marker in slots.SLOTS:
            assert marker not in card["description"]


def test_textcard_lists_recommended_first_and_greets():
    digest = reader_digest(make_issue(5), [2, 0])
    card = body_of(digest, "textcard")["textcard"]
    d = card["description"]
    assert d.startswith('<div class="gray">2024年5月10日</div><div class="normal">张局长，您好！</div>')
    assert d.index("1. " + digest.recommended[0].title) < d.index("2. " + digest.recommended[1].title)
    assert "另有 3 篇" in d
    assert card["title"] == "《许昌竞争情报快递》2024年第3期"


def test_textcard_escapes_html_in_greeting():
    card = body_of(reader_digest(make_issue(2), [0]), "textcard", greeting="<b>王</b> & 李")["textcard"]
    assert "&lt;b&gt;王&lt;/b&gt; &amp; 李" in card["description"]


def test_markdown_offers_votes_under_recommended_while_room_is_left():
    digest = reader_digest(make_issue(4), [2, 1])
    content = body_of(digest, "markdown")["markdown"]["content"]
    for a in digest.recommended:  # the email's vote links, under the title
        useful, not_useful = LINKS.vote(a.id, "useful"), LINKS.vote(a.id, "not_useful")
        assert f"[有用]({useful})　[没用]({not_useful})" in content
        assert content.index(LINKS.click(a.n)) < content.index(useful)
    for a in digest.others:
        assert f"/f/{TOKEN}/{a.id}/" not in content
    # A long issue: titles come first; votes only where they fit, never a cut link.
    crowded = body_of(reader_digest(make_issue(30), list(range(30))), "markdown")["markdown"]["content"]
    assert nbytes(crowded) <= MARKDOWN_MAX_BYTES
    assert crowded.count("[有用](") == crowded.count("[没用](")


# ---------------------------------------------------------------------------------------
# template_card


def test_template_card_limits():
    for digest in (reader_digest(make_issue(30), list(range(30))), whole_digest(make_issue(3)),
                   reader_digest(make_issue(12), [])):
        card = body_of(digest, "template_card", greeting="尊" * 200)["template_card"]
        assert card["card_type"] == "button_interaction"
        assert len(card["main_title"]["title"]) <= TC_MAIN_TITLE_MAX_CHARS
        assert len(card["main_title"]["desc"]) <= TC_MAIN_DESC_MAX_CHARS
        assert len(card["sub_title_text"]) <= TC_SUB_TITLE_MAX_CHARS
        assert 1 <= len(card["horizontal_content_list"]) <= TC_HORIZONTAL_MAX_ITEMS
        for item in card["horizontal_content_list"]:
            assert len(item["keyname"]) <= TC_KEYNAME_MAX_CHARS
            assert len(item["value"]) <= TC_VALUE_MAX_CHARS
            assert item["type"] == 1 and item["url"].startswith(f"{BASE}/c/{TOKEN}/")
        assert len(card["jump_list"]) <= TC_JUMP_MAX_ITEMS
        assert all(len(j["title"]) <= TC_JUMP_TITLE_MAX_CHARS for j in card["jump_list"])
        assert len(card["button_list"]) <= TC_BUTTON_MAX_ITEMS
        # The task id is the delivery's token: the documented charset, ≤ 128 bytes.
        assert card["task_id"] == TOKEN
        assert re.fullmatch(r"[0-9A-Za-z_\-@]+", card["task_id"]) and nbytes(TOKEN) <= TC_TASK_ID_MAX_BYTES
        for marker in slots.SLOTS:
            assert marker not in to_json(card)


def test_template_card_content():
    digest = reader_digest(make_issue(12), [6, 1, 7])
    card = body_of(digest, "template_card")["template_card"]
    assert card["main_title"] == {"title": "《许昌竞争情报快递》2024年第3期",
                                  "desc": "2024年5月10日 · 您关注：新材料、生物医药"}
    assert card["sub_title_text"].startswith("张局长，您好！ 为您推荐 3 篇，本期共 12 篇")
    items = card["horizontal_content_list"]
    assert [i["url"] for i in items] == [LINKS.click(a.n) for a in digest.recommended]
    assert [i["keyname"] for i in items] == ["推荐1", "推荐2", "推荐3"]
    assert_cut_of(items[1]["value"], digest.recommended[1].title, 3 * TC_VALUE_MAX_CHARS)
    assert [(j["title"], j["url"]) for j in card["jump_list"]] == [
        ("阅读本期全文", LINKS.web_view()), ("调整关注", LINKS.preferences())]
    assert card["card_action"] == {"type": 1, "url": LINKS.web_view()}
    assert [(b["text"], b["key"], b["type"]) for b in card["button_list"]] == [
        ("有用", "useful", 0), ("没用", "not_useful", 0)]


# ---------------------------------------------------------------------------------------
# The body and the per-reader fill


@pytest.mark.parametrize("msgtype", ["news", "markdown", "textcard", "template_card"])
def test_body_fields(msgtype):
    body = body_of(reader_digest(make_issue(4), [1]), msgtype)
    assert body["touser"] == USER
    assert body["agentid"] == AGENT
    assert body["msgtype"] == msgtype
    assert msgtype in body
    assert body["safe"] == 0
    assert body["enable_duplicate_check"] == 1
    assert 0 < body["duplicate_check_interval"] <= 4 * 3600
    text = to_json(body)
    assert_reader_filled(text)
    assert list(body)[0] == "touser"


@pytest.mark.parametrize("msgtype", ["news", "markdown", "textcard", "template_card"])
def test_fill_json_is_the_canonical_form(msgtype):
    digest = reader_digest(make_issue(9), [4, 2])
    variant = render_variant(digest, Links(BASE, "reply.example.cn", slots.TOKEN), msgtype=msgtype, agentid=AGENT)
    for user, token, greeting in (("ZhangWei", new_token(), "张局长，您好！"), ('a"b\\c', new_token(), '引号"\\')):
        text = variant.fill_json(touser=user, token=token, greeting=greeting)
        body = json.loads(text)
        assert to_json(body) == text
        assert body["touser"] == user
        assert token in text


def test_same_delivery_gives_identical_json():
    digest = reader_digest(make_issue(4), [1])
    a = to_json(body_of(digest, "markdown"))
    b = to_json(body_of(digest, "markdown"))
    assert a == b  # what the server's duplicate check compares


def test_readers_of_one_variant_differ_only_in_their_slots():
    digest = reader_digest(make_issue(4), [1])
    variant = render_variant(digest, Links(BASE, "r.example.cn", slots.TOKEN), msgtype="news", agentid=AGENT)
    t1, t2 = new_token(), new_token()
    one = variant.fill_json(touser="u1", token=t1)
    two = variant.fill_json(touser="u2", token=t2)
    assert one.replace(t1, t2).replace('"u1"', '"u2"') == two


@pytest.mark.parametrize("touser", ["", "a|b", "@all", " zhang", "x" * 65])
def test_touser_must_be_one_member(touser):
    digest = reader_digest(make_issue(2), [0])
    with pytest.raises(ValueError):
        wecom_body(digest, LINKS, msgtype="news", touser=touser, agentid=AGENT, greeting="")


def test_fill_wants_a_real_token():
    digest = reader_digest(make_issue(2), [0])
    variant = render_variant(digest, Links(BASE, "r", slots.TOKEN), msgtype="markdown", agentid=AGENT)
    for token in (slots.TOKEN, "short", TOKEN.upper(), TOKEN + "a"):
        with pytest.raises(ValueError):
            variant.fill_json(touser=USER, token=token)


def test_refuses_bad_arguments():
    digest = reader_digest(make_issue(2), [0])
    with pytest.raises(ValueError):
        wecom_body(digest, LINKS, msgtype="mpnews", touser=USER, agentid=AGENT, greeting="")
    with pytest.raises(ValueError):
        wecom_body(digest, Links(BASE, "r", slots.TOKEN), msgtype="news", touser=USER, agentid=AGENT, greeting="")
    with pytest.raises(ValueError):
        wecom_body(digest, LINKS, msgtype="news", touser=USER, agentid="1000002", greeting="")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        render_variant(digest, LINKS, msgtype="news", agentid=AGENT)  # a reader's links


def test_content_with_a_slot_marker_is_refused():
    issue = make_issue(1)
    a = issue.sections[1][1][0]
    bad = ArticleView(**{**a.__dict__, "title": "标题" + slots.TOKEN})
    issue = IssueView(issue.id, issue.title, issue.number, issue.date, (("行业动态", (bad,)),))
    with pytest.raises(ValueError, match="reserved marker"):
        body_of(reader_digest(issue, [0]), "news")
