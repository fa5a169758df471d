"""A reader's digest as a WeChat Work (企业微信) application message. Pure.

The result is exactly the JSON body of ``POST /cgi-bin/message/send``, in one of four
forms (``[wecom] message_type``):

- ``news``: up to 8 linked articles, most relevant to the reader first; each opens the
  article through the click redirect (``/c/TOKEN/N``) so the click is recorded;
- ``markdown``: WeChat Work's markdown subset (headings, bold, links, ``<font color>``),
  the recommended titles with short leads, ending with a link to the whole issue;
- ``textcard``: one card (title, a short list of titles, one button to the web view);
- ``template_card``: a ``button_interaction`` card: the masthead, the date, the greeting,
  up to 6 recommended titles (each through the click redirect), links to the whole issue
  and to 调整关注, and the buttons 有用 / 没用. ``task_id`` is the delivery's token, so
  a press comes back on the callback (``template_card_event``: TaskId, EventKey
  ``useful`` / ``not_useful``) as the reader's vote on the issue
  (dispatch.feedback.wecom_inbound).

有用 / 没用: the template card has the buttons; the markdown form puts the same vote links
as the email (``Links.vote``: ``/f/TOKEN/ID/VALUE``) under the recommended articles while
room is left in its 2048 bytes; news and textcard lead to the web view, whose article
pages carry the vote links under each article.

Limits (developer.work.weixin.qq.com/document/path/90236, 发送应用消息): news 1–8
articles, title ≤ 128 bytes, description ≤ 512 bytes, url ≤ 2048 bytes; markdown
content ≤ 2048 bytes UTF-8; textcard title ≤ 128 bytes, description ≤ 512 bytes,
btntxt ≤ 4 characters. template_card (按钮交互型): task_id ≤ 128 bytes of digits,
letters and ``_-@``; horizontal_content_list ≤ 6 items, jump_list ≤ 3, button_list ≤ 6;
button key ≤ 1024 bytes; and suggested lengths in characters (main_title.title 36,
main_title.desc 44, sub_title_text 160, keyname 5, value 30, jump title 13, button text
10), which we keep as limits. The server cuts silently past them, at any byte, so we cut
first, at a character boundary (``truncate_utf8``, ``truncate_chars``).

Without personal links (``[wecom] personal_links = false``, links as
`track.links.IssueLinks`): no token and no greeting, so every reader of a variant gets
the same body apart from ``touser`` and the channel sends them in shared calls. Articles
link to the issue's own pages (``/i/KEY/a/ID``, no click redirect), the markdown form
has no vote links, and ``template_card`` is refused (its task_id is the token; the
configuration refuses it first: deliver.wecom.check_links).

Work is split like the email: ``render_variant`` lays a variant out once, with the
slot markers of ``dispatch.render.slots`` where the token and greeting go, and keeps it
as JSON text; ``WecomVariant.fill_json`` splices one reader in (a few µs). Every byte
limit is checked at variant time on the *filled* size (``_filled_bytes``: a token
marker counts as a whole token, a greeting marker as the most a greeting may take), and
``fill`` only accepts a real token and cuts the greeting to its reserve, so the limits
hold for every reader.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NotRequired, TypedDict

from dispatch.masthead import BULLETIN
from dispatch.render import slots
from dispatch.render.views import ArticleView, Digest, IssueView
from dispatch.track.links import VOTES, IssueLinks, Links
from dispatch.track.tokens import TOKEN_LENGTH, is_token

NEWS = "news"
MARKDOWN = "markdown"
TEXTCARD = "textcard"
TEMPLATE_CARD = "template_card"
MSGTYPES = (NEWS, MARKDOWN, TEXTCARD, TEMPLATE_CARD)

# The API's limits (message/send).
NEWS_MAX_ARTICLES = 8
TITLE_MAX_BYTES = 128
DESCRIPTION_MAX_BYTES = 512
URL_MAX_BYTES = 2048
MARKDOWN_MAX_BYTES = 2048
BTNTXT_MAX_CHARS = 4
# template_card, button_interaction (characters where the documentation counts 字).
TC_CARD_TYPE = "button_interaction"
TC_TASK_ID_MAX_BYTES = 128
TC_TASK_ID_CHARS = re.compile(r"[0-9A-Za-z_\-@]+")
TC_MAIN_TITLE_MAX_CHARS = 36
TC_MAIN_DESC_MAX_CHARS = 44
TC_SUB_TITLE_MAX_CHARS = 160
TC_HORIZONTAL_MAX_ITEMS = 6
TC_KEYNAME_MAX_CHARS = 5
TC_VALUE_MAX_CHARS = 30
TC_JUMP_MAX_ITEMS = 3
TC_JUMP_TITLE_MAX_CHARS = 13
TC_BUTTON_MAX_ITEMS = 6
TC_BUTTON_TEXT_MAX_CHARS = 10
TC_BUTTON_KEY_MAX_BYTES = 1024

# Our choices within them.
GREETING_MAX_BYTES = 60  # 20 hanzi: 尊敬的某某某副局长，您好！ is 13
MD_TITLE_MAX_BYTES = 150  # one title line of the markdown, before its link
MD_LEAD_MAX_BYTES = 180  # ~60 hanzi under a recommended title
MD_LEAD_MIN_BYTES = 45  # a shorter lead is not worth its line
CARD_TITLE_MAX_BYTES = 84  # one title in the textcard's list (28 hanzi)
BTNTXT = "阅读全文"
# The card's buttons: EventKey is the vote as Feedback.kind stores it (track.links.VOTES).
VOTE_BUTTONS = (("useful", "有用", 1), ("not_useful", "没用", 2))  # key, text, style

# A re-send of the same delivery (a crash after the call, before the outcome was
# recorded) is byte-identical JSON: same touser, token, content. With the check on,
# the server drops it within the interval; different readers or issues never match.
# 14400 s (4 h) is the longest interval the API allows.
ENABLE_DUPLICATE_CHECK = 1
DUPLICATE_CHECK_INTERVAL = 14400

# A variant's links: a delivery's (the token as its slot marker), or the issue's own.
AnyLinks = Links | IssueLinks

ELLIPSIS = "…"
ZWJ = "\u200d"


# ---------------------------------------------------------------------------------------
# Bytes


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _extends(ch: str) -> bool:
    """A code point that belongs with the one before it (so a cut must not precede it)."""
    cp = ord(ch)
    return (
        ch == ZWJ
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors (❤️)
        or 0x1F3FB <= cp <= 0x1F3FF  # skin tones
        or 0xE0020 <= cp <= 0xE007F  # tag sequences (subdivision flags)
        or 0xE0100 <= cp <= 0xE01EF
        or unicodedata.category(ch) in ("Mn", "Me", "Mc")
    )


def _is_regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _clean_cut(text: str, i: int) -> int:
    """Move a cut at character index i back so no visible character is split."""
    while 0 < i < len(text) and (_extends(text[i]) or text[i - 1] == ZWJ):
        i -= 1
    if 0 < i < len(text) and _is_regional(text[i]):
        run = 0
        while run < i and _is_regional(text[i - 1 - run]):
            run += 1
        if run % 2:  # half a flag
            i -= 1
    return i


def truncate_utf8(text: str, max_bytes: int, ellipsis: str = ELLIPSIS) -> str:
    """The longest start of `text` that fits in `max_bytes` of UTF-8, ending in `ellipsis`
    when cut: never mid-character (nor mid emoji sequence or flag), with the ellipsis
    inside the limit. If not even the ellipsis fits, a plain cut.

    The one place for this rule: every byte-limited field goes through it (or `fit`).
    """
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    room = max_bytes - utf8_len(ellipsis)
    if room < 0:
        ellipsis, room = "", max(max_bytes, 0)
    # Only the trailing partial sequence is invalid, so "ignore" drops exactly it.
    kept = len(data[:room].decode("utf-8", "ignore"))
    kept = _clean_cut(text, kept)
    head = text[:kept]
    if ellipsis:
        head = head.rstrip(" \t\r\n，、；：,;:")
    return head + ellipsis


def fit(text: str, max_bytes: int, escape: Callable[[str], str] = lambda s: s) -> str:
    """`escape(truncate_utf8(text, n))` for the largest n whose result fits `max_bytes`.

    For fields whose markup makes the escaped text longer than the text (an `&` becomes
    `&amp;`): the cut happens in the text, never inside an escape.
    """
    out = escape(text)
    over = utf8_len(out) - max_bytes
    budget = utf8_len(text)
    while over > 0:
        budget -= over
        out = escape(truncate_utf8(text, budget))
        over = utf8_len(out) - max_bytes
    return out


def truncate_chars(text: str, max_chars: int, ellipsis: str = ELLIPSIS) -> str:
    """`truncate_utf8`'s rule for a limit in characters (the template card's 字)."""
    if len(text) <= max_chars:
        return text
    kept = _clean_cut(text, max(max_chars - len(ellipsis), 0))
    return text[:kept].rstrip(" \t\r\n，、；：,;:") + ellipsis


def _filled_bytes(text: str, greeting_reserve: int = 0) -> int:
    """UTF-8 length of `text` once a reader is filled in: the one place that knows how
    much longer a slot gets, so no limit can be checked on the marker's length."""
    return (
        utf8_len(text)
        + text.count(slots.TOKEN) * (TOKEN_LENGTH - len(slots.TOKEN))
        + text.count(slots.GREETING) * (greeting_reserve - len(slots.GREETING))
    )


def _filled_chars(text: str, greeting_reserve: int = 0) -> int:
    """`_filled_bytes` in characters: a greeting of `greeting_reserve` bytes has at most as
    many characters."""
    return (
        len(text)
        + text.count(slots.TOKEN) * (TOKEN_LENGTH - len(slots.TOKEN))
        + text.count(slots.GREETING) * (greeting_reserve - len(slots.GREETING))
    )


# ---------------------------------------------------------------------------------------
# Markup


def _one_line(text: str) -> str:
    return " ".join(text.split())


_MD_SAFE = str.maketrans(
    {"[": "［", "]": "］", "*": "＊", "`": "｀", "<": "＜", ">": "＞", "#": "＃", "\\": "＼"}
)


def md_escape(text: str) -> str:
    """Text that WeChat Work's markdown shows as written: no link, bold, code, heading
    or tag can start inside it (it has no backslash escapes, so full-width look-alikes)."""
    return _one_line(text).translate(_MD_SAFE)


def card_escape(text: str) -> str:
    """Text for a textcard description, which is read as HTML (div, br)."""
    return html.escape(_one_line(text), quote=False)


# ---------------------------------------------------------------------------------------
# Content


def masthead(issue: IssueView) -> str:
    """《许昌竞争情报快递》2024年第3期 (or the date when the issue has no number)."""
    name = issue.title.strip().strip("《》").strip() or BULLETIN
    return f"《{name}》{issue.number or issue.date_text}"


def _articles(digest: Digest) -> tuple[ArticleView, ...]:
    """The reader's articles, most relevant first (for a 全部 reader: the issue's order)."""
    return (*digest.recommended, *digest.others)


def _article_count(digest: Digest) -> int:
    return sum(1 for a in digest.issue.articles if a.kind != "note")


def _check_content(digest: Digest) -> None:
    where = f"issue {digest.issue.id}"
    slots.check_free_of_slots(digest.issue.title, f"{where}: title")
    slots.check_free_of_slots(digest.issue.number or "", f"{where}: number")
    slots.check_free_of_slots(digest.interests, f"{where}: interests")
    for a in (*_articles(digest), *digest.notes):
        slots.check_free_of_slots(a.title, f"{where}, article {a.id}: title")
        slots.check_free_of_slots(a.lead, f"{where}, article {a.id}: lead")


def _open(links: AnyLinks, a: ArticleView) -> str:
    """Where an article's entry leads: through the click redirect (recorded) with a
    delivery's links, straight to the article page with the issue's."""
    return links.click(a.n) if isinstance(links, Links) else links.article(a.id)


def _greeting_slot(links: AnyLinks) -> str:
    """The greeting's place: only in a reader's own message."""
    return slots.GREETING if links.personal else ""


def _meta(digest: Digest) -> str:
    bits = [digest.issue.date_text] if digest.issue.date_text and digest.issue.number else []
    if not digest.whole_issue and digest.interests:
        bits.append(f"您关注：{digest.interests}")
    return " · ".join(bits)


# ---------------------------------------------------------------------------------------
# news


class NewsArticle(TypedDict):
    title: str
    url: str
    description: NotRequired[str]


class NewsBody(TypedDict):
    articles: list[NewsArticle]


def _news(digest: Digest, links: AnyLinks) -> NewsBody:
    entries = [*_articles(digest), *digest.notes]
    items: list[NewsArticle] = []
    shown = entries if len(entries) <= NEWS_MAX_ARTICLES else entries[: NEWS_MAX_ARTICLES - 1]
    for a in shown:
        item: NewsArticle = {"title": truncate_utf8(_one_line(a.title), TITLE_MAX_BYTES), "url": _open(links, a)}
        if a.lead:
            item["description"] = truncate_utf8(_one_line(a.lead), DESCRIPTION_MAX_BYTES)
        items.append(item)
    if len(shown) < len(entries) or not items:
        # The last place leads to the whole issue, so nothing in it is out of reach.
        description = "，".join(x for x in (masthead(digest.issue), _meta(digest)) if x)
        items.append(
            {
                "title": truncate_utf8(f"阅读本期全部 {_article_count(digest)} 篇 ›", TITLE_MAX_BYTES),
                "description": truncate_utf8(description, DESCRIPTION_MAX_BYTES),
                "url": links.web_view(),
            }
        )
    for item in items:
        _check(item["title"], TITLE_MAX_BYTES, "news title")
        _check(item.get("description", ""), DESCRIPTION_MAX_BYTES, "news description")
        _check(item["url"], URL_MAX_BYTES, "news url")
    return {"articles": items}


# ---------------------------------------------------------------------------------------
# markdown

_MD_GREETING = "{}\n"
_MD_LEAD = '<font color="comment">{}</font>\n'
_MD_MORE = '<font color="comment">另有 {} 篇未列出，请阅读全文</font>\n'
_MD_VOTES = "[有用]({})　[没用]({})\n"  # in VOTES order


def _md_groups(digest: Digest) -> list[tuple[str, Sequence[ArticleView]]]:
    if digest.whole_issue:
        groups = [("本期要目", digest.recommended)]
    elif digest.recommended:
        groups = [("为您推荐", digest.recommended), ("本期其他内容", digest.others)]
    else:
        groups = [("本期内容", digest.others)]
    if digest.notes:
        groups.append(("", digest.notes))
    return [(label, arts) for label, arts in groups if arts]


class MarkdownBody(TypedDict):
    content: str


def _markdown(digest: Digest, links: AnyLinks) -> MarkdownBody:
    reserve = utf8_len(_MD_GREETING.format("")) + GREETING_MAX_BYTES
    head = f"### {fit(masthead(digest.issue), TITLE_MAX_BYTES, md_escape)}\n{_greeting_slot(links)}"
    meta = _meta(digest)
    if meta:
        head += _MD_LEAD.format(md_escape(meta))
    foot = f"\n[阅读本期全文 ›]({links.web_view()})"
    used = _filled_bytes(head + foot, reserve)
    more_reserve = _filled_bytes(_MD_MORE.format(9999))

    # Pass 1: as many titles as fit, most relevant first; a title line is whole or absent.
    groups = _md_groups(digest)
    total = sum(len(arts) for _, arts in groups)
    listed: list[tuple[str, list[tuple[ArticleView, str]]]] = []
    count = 0
    full = False
    for label, arts in groups:
        lines: list[tuple[ArticleView, str]] = []
        label_line = f"\n**{label}**\n" if label else "\n"
        for a in arts:
            n = f"{count + 1}. " if a.kind != "note" else ""
            title = fit(a.title, MD_TITLE_MAX_BYTES, md_escape)
            line = f"{n}[{title}]({_open(links, a)})\n"
            cost = _filled_bytes(line) + (0 if lines else _filled_bytes(label_line))
            last = count + 1 == total
            if used + cost + (0 if last else more_reserve) > MARKDOWN_MAX_BYTES:
                full = True
                break
            lines.append((a, line))
            used += cost
            count += 1
        if lines:
            listed.append((label_line, lines))
        if full:
            break
    more = _MD_MORE.format(total - count) if count < total else ""
    used += _filled_bytes(more)

    # Pass 2: 有用 / 没用 under the recommended titles, in order, while room is left (the
    # same links as the email's; none without a delivery); pass 3: their leads, with
    # what room is left then.
    lead_ids = {a.id for a in digest.recommended}  # for a 全部 reader: the whole issue
    votes: dict[int, str] = {}
    for _, lines in listed:
        for a, _line in lines:
            if a.id not in lead_ids or not isinstance(links, Links):
                continue
            vote_line = _MD_VOTES.format(*(links.vote(a.id, v) for v in VOTES))
            if used + _filled_bytes(vote_line) > MARKDOWN_MAX_BYTES:
                break
            votes[a.id] = vote_line
            used += _filled_bytes(vote_line)
    leads: dict[int, str] = {}
    wrapper = utf8_len(_MD_LEAD.format(""))
    for _, lines in listed:
        for a, _line in lines:
            if a.id not in lead_ids or not a.lead:
                continue
            room = min(MD_LEAD_MAX_BYTES, MARKDOWN_MAX_BYTES - used - wrapper)
            if room < MD_LEAD_MIN_BYTES:
                break
            text = fit(a.lead, room, md_escape)
            leads[a.id] = _MD_LEAD.format(text)
            used += _filled_bytes(leads[a.id])

    body = [head]
    for label_line, lines in listed:
        body.append(label_line)
        for a, line in lines:
            body.append(line)
            body.append(leads.get(a.id, ""))
            body.append(votes.get(a.id, ""))
    body.append(more)
    body.append(foot)
    content = "".join(body)
    _check(content, MARKDOWN_MAX_BYTES, "markdown content", reserve)
    return {"content": content}


# ---------------------------------------------------------------------------------------
# textcard

_CARD_GREETING = '<div class="normal">{}</div>'
_CARD_MORE = '<div class="gray">另有 {} 篇，请阅读全文</div>'


class TextCardBody(TypedDict):
    title: str
    description: str
    url: str
    btntxt: str


def _textcard(digest: Digest, links: AnyLinks) -> TextCardBody:
    reserve = utf8_len(_CARD_GREETING.format("")) + GREETING_MAX_BYTES
    arts = _articles(digest)
    if digest.whole_issue:
        label = f"本期共 {len(arts)} 篇"
    elif digest.recommended:
        label = f"为您推荐 {len(digest.recommended)} 篇"
    else:
        label = f"本期共 {len(arts)} 篇"
    # A teaser: the date (when the title has the number), the greeting, a few titles.
    head = ""
    if digest.issue.number and digest.issue.date_text:
        head += f'<div class="gray">{card_escape(digest.issue.date_text)}</div>'
    head += _greeting_slot(links) + f'<div class="highlight">{card_escape(label)}</div>'
    used = _filled_bytes(head, reserve)
    more_reserve = utf8_len(_CARD_MORE.format(9999))
    # The recommended first; the rest only for a reader with none (or the whole issue).
    listed = digest.recommended if digest.recommended else digest.others
    lines = []
    for i, a in enumerate(listed):
        line = f'<div class="normal">{i + 1}. {fit(a.title, CARD_TITLE_MAX_BYTES, card_escape)}</div>'
        last = i + 1 == len(arts)  # nothing left for a "more" line to mention
        if used + utf8_len(line) + (0 if last else more_reserve) > DESCRIPTION_MAX_BYTES:
            break
        lines.append(line)
        used += utf8_len(line)
    if len(lines) < len(arts):
        lines.append(_CARD_MORE.format(len(arts) - len(lines)))
    description = head + "".join(lines)
    card: TextCardBody = {
        "title": truncate_utf8(masthead(digest.issue), TITLE_MAX_BYTES),
        "description": description,
        "url": links.web_view(),
        "btntxt": BTNTXT,
    }
    _check(card["title"], TITLE_MAX_BYTES, "textcard title")
    _check(description, DESCRIPTION_MAX_BYTES, "textcard description", reserve)
    _check(card["url"], URL_MAX_BYTES, "textcard url")
    assert len(BTNTXT) <= BTNTXT_MAX_CHARS
    return card


# ---------------------------------------------------------------------------------------
# template_card (button_interaction)

_TC_GREETING = "{} "


class TemplateCardBody(TypedDict):
    card_type: str
    main_title: dict[str, str]
    sub_title_text: str
    horizontal_content_list: list[dict[str, object]]
    jump_list: list[dict[str, object]]
    card_action: dict[str, object]
    task_id: str
    button_list: list[dict[str, object]]


def _template_card(digest: Digest, links: AnyLinks) -> TemplateCardBody:
    if not isinstance(links, Links):
        raise ValueError("a template_card needs personal links: its task_id is the delivery's token")
    reserve = utf8_len(_TC_GREETING.format("")) + GREETING_MAX_BYTES
    arts = _articles(digest)
    if digest.whole_issue:
        listed, word, label = digest.recommended, "要目", f"本期共 {len(arts)} 篇"
    elif digest.recommended:
        listed, word = digest.recommended, "推荐"
        label = f"为您推荐 {len(digest.recommended)} 篇，本期共 {len(arts)} 篇"
    else:
        listed, word, label = digest.others, "本期", f"本期共 {len(arts)} 篇"
    shown = listed[:TC_HORIZONTAL_MAX_ITEMS]
    if len(shown) < len(arts):
        label += f"，另有 {len(arts) - len(shown)} 篇请阅读全文"
    title = masthead(digest.issue)
    desc = _meta(digest) or digest.issue.date_text
    card: TemplateCardBody = {
        "card_type": TC_CARD_TYPE,
        "main_title": {
            "title": truncate_chars(title, TC_MAIN_TITLE_MAX_CHARS),
            "desc": truncate_chars(desc, TC_MAIN_DESC_MAX_CHARS),
        },
        "sub_title_text": slots.GREETING + truncate_chars(label, TC_SUB_TITLE_MAX_CHARS - reserve),
        "horizontal_content_list": [
            {
                "type": 1,
                "keyname": f"{word}{i + 1}",
                "value": truncate_chars(_one_line(a.title), TC_VALUE_MAX_CHARS),
                "url": _open(links, a),
            }
            for i, a in enumerate(shown)
        ],
        "jump_list": [
            {"type": 1, "title": "阅读本期全文", "url": links.web_view()},
            {"type": 1, "title": "调整关注", "url": links.preferences()},
        ],
        "card_action": {"type": 1, "url": links.web_view()},
        "task_id": links.token,
        "button_list": [
            {"type": 0, "text": text, "style": style, "key": key}
            for key, text, style in VOTE_BUTTONS
        ],
    }
    _check_template_card(card, reserve)
    return card


def _check_template_card(card: TemplateCardBody, reserve: int) -> None:
    """Every documented limit of the card, on its filled sizes (see `_check`)."""
    _check_chars(card["main_title"]["title"], TC_MAIN_TITLE_MAX_CHARS, "card main title")
    _check_chars(card["main_title"]["desc"], TC_MAIN_DESC_MAX_CHARS, "card main desc")
    _check_chars(card["sub_title_text"], TC_SUB_TITLE_MAX_CHARS, "card sub title", reserve)
    task_id = card["task_id"].replace(slots.TOKEN, "a" * TOKEN_LENGTH)
    if not TC_TASK_ID_CHARS.fullmatch(task_id) or utf8_len(task_id) > TC_TASK_ID_MAX_BYTES:
        raise AssertionError("wecom card task_id: not a valid task id once filled")
    lists = (
        ("horizontal_content_list", TC_HORIZONTAL_MAX_ITEMS, "keyname", TC_KEYNAME_MAX_CHARS),
        ("jump_list", TC_JUMP_MAX_ITEMS, "title", TC_JUMP_TITLE_MAX_CHARS),
        ("button_list", TC_BUTTON_MAX_ITEMS, "text", TC_BUTTON_TEXT_MAX_CHARS),
    )
    for name, max_items, text_key, max_chars in lists:
        items: list[dict[str, object]] = card[name]  # type: ignore[literal-required]
        if len(items) > max_items:
            raise AssertionError(f"wecom card {name}: {len(items)} items > {max_items}")
        for item in items:
            _check_chars(str(item[text_key]), max_chars, f"card {name} {text_key}")
            _check(str(item.get("url", "")), URL_MAX_BYTES, f"card {name} url")
            _check(str(item.get("key", "")), TC_BUTTON_KEY_MAX_BYTES, f"card {name} key")
    for item in card["horizontal_content_list"]:
        _check_chars(str(item["value"]), TC_VALUE_MAX_CHARS, "card value")
    _check(str(card["card_action"]["url"]), URL_MAX_BYTES, "card action url")


# Our tokens (track.tokens: 32 of a-z, 2-7) are task ids as they are.
assert TC_TASK_ID_CHARS.fullmatch("abcdefghijklmnopqrstuvwxyz234567")
assert TOKEN_LENGTH <= TC_TASK_ID_MAX_BYTES and {k for k, _, _ in VOTE_BUTTONS} == set(VOTES)


# ---------------------------------------------------------------------------------------
# Variant and reader


def _check(text: str, limit: int, what: str, greeting_reserve: int = 0) -> None:
    size = _filled_bytes(text, greeting_reserve)
    if size > limit:  # a bug in the layout above, never the content's fault
        raise AssertionError(f"wecom {what}: {size} bytes > {limit} once filled")


def _check_chars(text: str, limit: int, what: str, greeting_reserve: int = 0) -> None:
    size = _filled_chars(text, greeting_reserve)
    if size > limit:
        raise AssertionError(f"wecom {what}: {size} characters > {limit} once filled")


_GREETING_FORM: dict[str, tuple[str, Callable[[str], str]]] = {
    MARKDOWN: (_MD_GREETING, md_escape),
    TEXTCARD: (_CARD_GREETING, card_escape),
    TEMPLATE_CARD: (_TC_GREETING, _one_line),
}
_LAYOUT: dict[str, Callable[[Digest, AnyLinks], Mapping[str, object]]] = {
    NEWS: _news, MARKDOWN: _markdown, TEXTCARD: _textcard, TEMPLATE_CARD: _template_card,
}


def check_touser(touser: str) -> None:
    """One member's userid: never a list (`a|b`) or @all, which would hand one reader's
    token to others."""
    if not touser or touser != touser.strip() or "|" in touser or touser.lower() == "@all":
        raise ValueError(f"not a single WeChat Work userid: {touser!r}")
    if utf8_len(touser) > 64:
        raise ValueError(f"WeChat Work userid longer than 64 bytes: {touser!r}")


@dataclass(frozen=True)
class WecomVariant:
    """One variant's message body as JSON text, with the reader's slots still open."""

    msgtype: str
    spliced: slots.Spliced  # the body without "touser", canonical JSON, cut at its slots

    def fill_json(self, *, touser: str, token: str, greeting: str = "") -> str:
        """The reader's body as sent: canonical JSON (``json.dumps(…, ensure_ascii=False)``)."""
        check_touser(touser)
        if not is_token(token):
            raise ValueError("not a delivery token")
        values = {slots.TOKEN: token}
        if self.msgtype in _GREETING_FORM:
            form, escape = _GREETING_FORM[self.msgtype]
            text = fit(greeting, GREETING_MAX_BYTES, escape)
            value = form.format(text) if text else ""
            # Inside a JSON string: escape as json.dumps would.
            values[slots.GREETING] = json.dumps(value, ensure_ascii=False)[1:-1]
        rest = self.spliced.fill(values)
        return '{"touser": ' + json.dumps(touser, ensure_ascii=False) + ", " + rest[1:]


def render_variant(digest: Digest, links: AnyLinks, *, msgtype: str, agentid: int) -> WecomVariant:
    """Lay the digest out once for every reader of the variant.

    `links`: a delivery's, with the slot marker as its token (`Links(base, domain,
    slots.TOKEN)`), or the issue's own (`IssueLinks`: no personal links).
    """
    if msgtype not in _LAYOUT:
        raise ValueError(f"unknown WeChat Work message type {msgtype!r}; one of {', '.join(MSGTYPES)}")
    if isinstance(agentid, bool) or not isinstance(agentid, int):
        raise ValueError(f"agentid must be an integer, not {agentid!r}")
    if isinstance(links, Links) and links.token != slots.TOKEN:
        raise ValueError("render_variant needs the variant's links (token = slots.TOKEN)")
    _check_content(digest)
    body = {
        "msgtype": msgtype,
        "agentid": agentid,
        msgtype: _LAYOUT[msgtype](digest, links),
        "safe": 0,
        "enable_duplicate_check": ENABLE_DUPLICATE_CHECK,
        "duplicate_check_interval": DUPLICATE_CHECK_INTERVAL,
    }
    return WecomVariant(msgtype, slots.splice(json.dumps(body, ensure_ascii=False)))
