"""Per-reader MIME splicing: the fast bytes must parse to what EmailMessage builds.

Everything is checked through the stdlib parser (policy.default) and, for display
names, also through the RFC 2047 decoder of email.header, because CPython 3.11's
address parser adds a space between adjacent encoded words (gh-128110)."""

from __future__ import annotations

import base64
import email
import email.policy
import html
import itertools
import random
import re
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header

import pytest
from mime_reference import build_slow

from dispatch.render.message import MessageTemplate
from dispatch.render.slots import GREETING, INTERESTS, TOKEN
from dispatch.track.links import Links
from dispatch.track.tokens import new_token

BASE_URL = "https://bulletin.example.gov.cn"
DOMAIN = "example.gov.cn"
FROM = "许昌竞争情报快递 <bulletin@example.gov.cn>"
SUBJECT = "《许昌竞争情报快递》2024年第3期：未来产业是培育新质生产力的重要引擎"
DATE = datetime(2024, 3, 1, 1, 30)  # naive UTC: 09:30 in Xuchang
LINKS = Links(BASE_URL, DOMAIN, TOKEN)

SAME_HEADERS = (
    "From",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "MIME-Version",
)


def sample_html(n_links: int = 12, filler: str = "许昌市科技创新") -> str:
    rows = "".join(
        f'<tr><td><a href="{LINKS.click(i)}">第{i}篇：{filler * (i % 5 + 1)}</a>'
        f'<a href="{LINKS.article(i)}">阅读全文</a></td></tr>\n'
        for i in range(1, n_links + 1)
    )
    return (
        f'<html><head><meta charset="utf-8"></head><body><img src="{LINKS.pixel()}">'
        f"<p>{GREETING}</p><p>您关注的产业：{INTERESTS}</p><table>\n{rows}</table>"
        f'<a href="{LINKS.web_view()}">在浏览器中查看</a> <a href="{LINKS.preferences()}">偏好</a>'
        f' <a href="{LINKS.unsubscribe()}">退订</a><p>{GREETING}{INTERESTS}</p></body></html>'
    )


def sample_text(n_links: int = 12) -> str:
    lines = [f"{GREETING}", f"您关注的产业：{INTERESTS}", ""]
    lines += [f"第{i}篇 阅读全文：{LINKS.article(i)}" for i in range(1, n_links + 1)]
    lines += ["", f"退订：{LINKS.unsubscribe()}", f"（{INTERESTS}）{INTERESTS}"]
    return "\n".join(lines)


def variant(**overrides) -> dict:
    kw = dict(
        subject=SUBJECT,
        from_addr=FROM,
        html=sample_html(),
        text=sample_text(),
        reply_domain=DOMAIN,
        base_url=BASE_URL,
    )
    kw.update(overrides)
    return kw


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def raw_header(data: bytes, name: str) -> str:
    """A header as sent, unfolded (CRLF + WSP → WSP), not decoded."""
    value = email.message_from_bytes(data, policy=email.policy.compat32)[name]
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def rfc2047_display_name(data: bytes) -> str:
    """To's display name decoded strictly by RFC 2047 (whitespace between adjacent
    encoded words dropped), for names sent as encoded words."""
    phrase = raw_header(data, "To").rpartition(" <")[0]
    return str(make_header(decode_header(phrase)))


def check_wire(data: bytes) -> None:
    """SMTP wire form: 7-bit, CRLF only, header lines ≤ 78 where they can be folded,
    body lines ≤ 76 and whole base64 quanta, every line ≤ 998."""
    assert data.isascii()
    assert data.endswith(b"\r\n")
    assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        assert len(line) <= 998
        if len(line) > 78:  # only when there is no whitespace to fold at
            rest = line[1:] if line[:1] in b" \t" else line.partition(b": ")[2]
            assert b" " not in rest, line
    in_part_head = False
    for line in body.split(b"\r\n")[:-1]:
        assert len(line) <= 76, line
        if line.startswith(b"--"):
            in_part_head = True
        elif in_part_head:
            in_part_head = line != b""
        else:
            assert len(line) % 4 == 0 and re.fullmatch(rb"[A-Za-z0-9+/]*={0,2}", line), line


def render_both(template_kw: dict, reader: dict) -> tuple[bytes, bytes]:
    # One instant for both (each would take "now" on its own, a second apart at times).
    reader = {"date": datetime.now(UTC), **reader}
    template = MessageTemplate.build(**template_kw)
    fast = template.render(**reader)
    slow = build_slow(**template_kw, **reader)
    return fast, slow


def expected_bodies(template_kw: dict, reader: dict) -> tuple[str, str]:
    def canonical(s: str) -> str:  # MIME canonical form: CRLF line ends, one at the end
        return (b"\r\n".join(s.encode().splitlines()) + b"\r\n").decode()

    def fill(body: str, escape) -> str:  # one pass: a value holding a marker stays as is
        values = {
            TOKEN: reader["token"],
            GREETING: escape(reader["greeting"]),
            INTERESTS: escape(reader.get("interests", "")),
        }
        return re.sub("|".join(values), lambda m: values[m.group()], body)

    return canonical(fill(template_kw["text"], str)), canonical(
        fill(template_kw["html"], html.escape)
    )


def assert_same_message(
    template_kw: dict, reader: dict, *, slow_to_is_right: bool = True
) -> email.message.EmailMessage:
    fast_b, slow_b = render_both(template_kw, reader)
    check_wire(fast_b)
    fast, slow = parse(fast_b), parse(slow_b)
    assert not fast.defects
    for name in SAME_HEADERS:
        # (strip: EmailMessage may fold right after the colon, leaving a leading space)
        assert str(fast[name]) == str(slow[name]).strip(), name
        assert len(fast.get_all(name) or []) == (name in fast)
    # To: the address and the display name, read two ways.
    (address,) = fast["To"].addresses
    assert address.addr_spec == reader["to_addr"]
    name = reader["to_name"]
    if "=?" in raw_header(fast_b, "To").rpartition(" <")[0]:
        assert rfc2047_display_name(fast_b) == name
        # CPython 3.11 inserts a space between adjacent encoded words (gh-128110).
        assert address.display_name.replace(" ", "") == name.replace(" ", "")
    else:
        assert address.display_name == name
    if slow_to_is_right:  # (whitespace aside: see gh-128110 above)
        assert [("".join(a.display_name.split()), a.addr_spec) for a in slow["To"].addresses] == [
            ("".join(name.split()), address.addr_spec)
        ]
    # Structure and bodies.
    structure = [(p.get_content_type(), p.get_content_charset()) for p in fast.walk()]
    assert structure == [
        ("multipart/alternative", None),
        ("text/plain", "utf-8"),
        ("text/html", "utf-8"),
    ]
    assert structure == [(p.get_content_type(), p.get_content_charset()) for p in slow.walk()]
    text, page = expected_bodies(template_kw, reader)
    fast_parts = [p.get_content() for p in fast.iter_parts()]
    assert fast_parts == [p.get_content() for p in slow.iter_parts()]
    assert fast_parts == [text, page]
    for part in fast.iter_parts():
        assert part["Content-Transfer-Encoding"] == "base64"
    return fast


def slow_gets_to_right(name: str) -> bool:
    """Where EmailMessage (CPython 3.11) is no reference for To: its folder drops the
    quotes of a long display name with commas, splitting it into several addresses
    (gh-80222); a name that looks like an encoded word is sent as is and then decoded."""
    return not ("," in name and len(name) > 60) and "=?" not in name


NAMES = [
    "张三",
    "",
    "Zhang San",
    "欧阳修文",
    "Li 李四",
    'O\'Brien, Patrick "Pat" <boss@evil.example>',
    "<script>alert(1)</script>",
    "许昌市发展和改革委员会工业发展科科长张三丰先生（代）",  # several encoded words
    "Smith, John Jacob Jingleheimer Schmidt, Third of the Xuchang Municipal Office",
    "A" * 90,  # one word too long for a line
    "=?utf-8?b?5byg5LiJ?=",  # looks encoded: must come out literally
    " 王  五 ",  # odd spacing kept
    "张三😀",
    "Émile Zola",
    "a\\b",
]


# Interests as the digest words them, and values of every length and escape.
INTERESTS_VALUES = [
    "新材料、装备制造",
    "全部产业",
    "",
    "（尚未选择产业）",
    "新材料、装备制造、电子信息、节能环保、汽车及零部件、生物医药、现代农业",
    "<b>新材料</b> & 装备",
    "A",
    "AB",
    "x&",
    '"q"',
    "、" * 50,
    "R&D 研发",
    f"含{GREETING}与{TOKEN}",  # a marker in a value is text, not a slot
]


@pytest.mark.parametrize("to_name", NAMES)
def test_matches_emailmessage_for_names(to_name):
    reader = dict(
        to_name=to_name,
        to_addr="reader.one+x@xuchang.example.cn",
        token=new_token(),
        greeting=f"尊敬的{to_name}：",
        interests=INTERESTS_VALUES[NAMES.index(to_name) % len(INTERESTS_VALUES)],
        date=DATE,
    )
    slow_right = slow_gets_to_right(to_name)
    fast = assert_same_message(variant(), reader, slow_to_is_right=slow_right)
    assert str(fast["Date"]) == "Fri, 01 Mar 2024 09:30:00 +0800"


@pytest.mark.parametrize(
    "greeting",
    ["", "尊", "尊敬", "Dear Li,", '<b>Bold</b> & "quoted" \'', "您好，" * 40, "x" * 200],
)
def test_greetings_are_text_in_both_parts(greeting):
    reader = dict(to_name="李四", to_addr="li@example.cn", token=new_token(), greeting=greeting)
    fast = assert_same_message(variant(), reader)
    page = fast.get_body(("html",)).get_content()
    if "<b>" in greeting:
        assert "<b>Bold</b>" not in page and "&lt;b&gt;Bold&lt;/b&gt;" in page
        assert "<b>Bold</b>" in fast.get_body(("plain",)).get_content()


@pytest.mark.parametrize("interests", INTERESTS_VALUES)
@pytest.mark.parametrize("greeting", ["尊敬的李四：", "", "Dear Li,", "<i>&"])
def test_interests_are_text_in_both_parts(interests, greeting):
    reader = dict(
        to_name="李四",
        to_addr="li@example.cn",
        token=new_token(),
        greeting=greeting,
        interests=interests,
    )
    fast = assert_same_message(variant(), reader)
    page = fast.get_body(("html",)).get_content()
    text = fast.get_body(("plain",)).get_content()
    assert INTERESTS not in page and INTERESTS not in text
    assert f"您关注的产业：{html.escape(interests)}</p>" in page
    assert f"您关注的产业：{interests}\r\n" in text
    assert text.count(interests) >= 3
    if "<b>" in interests:
        assert "<b>新材料</b> & 装备" not in page
        assert page.count("&lt;b&gt;新材料&lt;/b&gt; &amp; 装备") == 2
        assert text.count("<b>新材料</b> & 装备") == 3


def test_script_name_is_text_in_html():
    reader = dict(
        to_name="<script>alert(1)</script>",
        to_addr="x@example.cn",
        token=new_token(),
        greeting="尊敬的<script>alert(1)</script>：",
    )
    fast = assert_same_message(variant(), reader)
    page = fast.get_body(("html",)).get_content()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


SLOT_RUNS = [TOKEN, TOKEN, GREETING, TOKEN + TOKEN, TOKEN + "/" + TOKEN]
SLOT_RUNS_WITH_INTERESTS = [
    *SLOT_RUNS,
    INTERESTS,
    INTERESTS,
    INTERESTS + INTERESTS,
    GREETING + INTERESTS,
    INTERESTS + GREETING,
    INTERESTS + TOKEN,
    TOKEN + INTERESTS,
    INTERESTS + "、" + INTERESTS,
    GREETING + TOKEN + INTERESTS,
]


def random_body(rng: random.Random, html_like: bool, slot_runs: list[str] = SLOT_RUNS) -> str:
    alphabet = ["许", "昌", "情", "报", "a", "b", "<", "&", " ", "\n", "。", "😀", "é", "/"]
    pieces = []
    for _ in range(rng.randint(0, 12)):
        pieces.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9))))
        pieces.append(rng.choice(slot_runs))
    pieces.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200))))
    body = "".join(pieces)
    return f"<p>{body}</p>" if html_like else body


def test_random_bodies_and_values():
    """Slots anywhere (adjacent, at either end, in short and long runs), values of
    every length mod 3: every alignment case of the splicing."""
    rng = random.Random(20240301)
    for _ in range(80):
        kw = variant(html=random_body(rng, True), text=random_body(rng, False))
        greeting = "".join(rng.choice("尊敬的ab😀&<") for _ in range(rng.randint(0, 30)))
        reader = dict(
            to_name=rng.choice(NAMES),
            to_addr="r@example.cn",
            token=new_token(),
            greeting=greeting,
            date=DATE,
        )
        assert_same_message(kw, reader, slow_to_is_right=slow_gets_to_right(reader["to_name"]))


def test_random_bodies_and_values_with_interests():
    """The same with INTERESTS too: alone, repeated, next to the other slots, at either
    end; greetings and interests of every length (empty included) and escape."""
    rng = random.Random(20240302)
    values = "新材料装备ab😀&<>\"'、 "
    for _ in range(100):
        kw = variant(
            html=random_body(rng, True, SLOT_RUNS_WITH_INTERESTS),
            text=random_body(rng, False, SLOT_RUNS_WITH_INTERESTS),
        )
        reader = dict(
            to_name=rng.choice(NAMES),
            to_addr="r@example.cn",
            token=new_token(),
            greeting="".join(rng.choice(values) for _ in range(rng.randint(0, 30))),
            interests="".join(rng.choice(values) for _ in range(rng.randint(0, 30))),
            date=DATE,
        )
        assert_same_message(kw, reader, slow_to_is_right=slow_gets_to_right(reader["to_name"]))


def decoded_bodies(data: bytes, boundary: str) -> list[str]:
    """The two parts' bodies, base64-decoded strictly (quicker than the parser)."""
    parts = data.split(f"--{boundary}".encode())[1:-1]
    return [
        base64.b64decode(p.partition(b"\r\n\r\n")[2].replace(b"\r\n", b""), validate=True).decode()
        for p in parts
    ]


def test_every_alignment_exhaustively():
    """Static parts of 0–5 bytes around two slots, greetings of 0–5 bytes."""
    token = new_token()
    for a in range(6):
        for b in range(6):
            for c in range(4):
                for slots in ((TOKEN, GREETING), (GREETING, TOKEN), (TOKEN, TOKEN)):
                    body = "A" * a + slots[0] + "B" * b + slots[1] + "C" * c
                    template = MessageTemplate.build(**variant(html=body, text=body))
                    for n in range(6):
                        greeting = "g" * n
                        data = template.render(
                            to_name="", to_addr="r@example.cn", token=token, greeting=greeting
                        )
                        check_wire(data)
                        want = body.replace(TOKEN, token).replace(GREETING, greeting) + "\r\n"
                        assert decoded_bodies(data, template.boundary) == [want, want]
    # and once through the parser
    msg = parse(data)
    assert [p.get_content() for p in msg.iter_parts()] == [want, want]


def with_residues(text_residue: int, html_residue: int, prefix: str = "") -> str:
    """A value whose UTF-8 length is ≡ text_residue (mod 3) as text and ≡ html_residue
    once HTML-escaped ('&' is 1 byte, '&amp;' 5): every one of the 9 combinations."""
    amps = (html_residue - text_residue) % 3
    return prefix + "a" * ((text_residue - amps) % 3) + "&" * amps


RESIDUES = list(itertools.product(range(3), repeat=2))


def test_every_alignment_with_interests_exhaustively():
    """Static parts of 0–3 bytes around three slots (INTERESTS alone, repeated, next to
    each other slot, first and last), greeting and interests of every residue in each
    part: the text part sees one pair of residues, the HTML part another."""
    token = new_token()
    orders = [
        *itertools.permutations((TOKEN, GREETING, INTERESTS)),
        (INTERESTS, INTERESTS, INTERESTS),
        (INTERESTS, TOKEN, INTERESTS),
        (GREETING, INTERESTS, INTERESTS),
    ]
    # the HTML residues of the values, shifted from their text residues
    combos = [
        (with_residues(g, (g + 1) % 3), with_residues(i, (i + 2) % 3, "产业" * (g == i)))
        for g, i in RESIDUES
    ]
    for slots in orders:
        for a, b, c, d in itertools.product(range(3), range(4), range(4), range(3)):
            body = "A" * a + slots[0] + "B" * b + slots[1] + "C" * c + slots[2] + "D" * d
            template = MessageTemplate.build(**variant(html=body, text=body))
            for greeting, interests in combos:
                data = template.render(
                    to_name="",
                    to_addr="r@example.cn",
                    token=token,
                    greeting=greeting,
                    interests=interests,
                )
                check_wire(data)
                reader = dict(token=token, greeting=greeting, interests=interests)
                text, page = expected_bodies(dict(text=body, html=body), reader)
                assert decoded_bodies(data, template.boundary) == [text, page]
    # and the last through the parser and build_slow
    kw = variant(html=body, text=body)
    reader = dict(to_name="", to_addr="r@example.cn", token=token, greeting=greeting)
    assert_same_message(kw, {**reader, "interests": interests})


def test_all_residue_combinations_share_static_chunks():
    """All 81 combinations of greeting/interests residues (text × HTML) on the sample
    variant match EmailMessage; whatever the number of layouts, each static stretch is
    encoded at most three ways (memory per variant stays bounded), and a variant
    without an INTERESTS slot keeps one layout whatever the interests."""
    kw = variant()
    template = MessageTemplate.build(**kw)
    token = new_token()
    for (gt, gh), (it, ih) in itertools.product(RESIDUES, RESIDUES):
        greeting, interests = with_residues(gt, gh, "尊敬的"), with_residues(it, ih, "新材料")
        reader = dict(
            to_name="张三",
            to_addr="zs@example.cn",
            token=token,
            greeting=greeting,
            interests=interests,
        )
        data = template.render(**reader)
        check_wire(data)
        assert decoded_bodies(data, template.boundary) == list(expected_bodies(kw, reader))
        if gt == it and gh == ih:
            assert_same_message(kw, reader)
    layouts = {id(layout) for layout in template._layouts.values()}
    assert len(layouts) == 81
    for body in (template._text, template._html):
        assert len(body._middles) <= 3 * len(body.parts)

    plain = MessageTemplate.build(
        **variant(html=kw["html"].replace(INTERESTS, "x"), text=kw["text"].replace(INTERESTS, ""))
    )
    for (it, ih), greeting in itertools.product(RESIDUES, ["尊敬的张三：", "Li"]):
        reader = dict(to_name="张三", to_addr="zs@example.cn", token=token, greeting=greeting)
        plain.render(**reader, interests=with_residues(it, ih))
    assert len({id(layout) for layout in plain._layouts.values()}) == 2


FRAGILE_BODIES = [
    f"第一行\n{INTERESTS}",
    f"第一行\n{GREETING}{INTERESTS}",
    f"第一行\r\n{INTERESTS}{GREETING}",
    f"\n{GREETING}\n{INTERESTS}",
    f"第一行\r{GREETING}\n第二行\r{INTERESTS}{INTERESTS}\n{INTERESTS}",
    f"第一行\n{INTERESTS}{TOKEN}",  # (the token is never empty)
    f"第一行\n{INTERESTS}\n",
    f"{INTERESTS}",
    f"{GREETING}{INTERESTS}",
    "",
]


@pytest.mark.parametrize("body", FRAGILE_BODIES)
def test_empty_values_that_change_the_lines(body):
    """Empty values alone on the last line (right after a line break), or between a
    bare CR and an LF: the message is that of the filled text, where there is no such
    line, as EmailMessage makes it, in both parts and for each value empty or not."""
    kw = variant(text=body, html=f"<p>{INTERESTS}</p>\n{body}")
    template = MessageTemplate.build(**kw)
    for greeting, interests in itertools.product(["", "尊敬的张三：", "A"], ["", "新材料", "&"]):
        reader = dict(
            to_name="张三",
            to_addr="zs@example.cn",
            token=new_token(),
            greeting=greeting,
            interests=interests,
        )
        data = template.render(**reader)
        check_wire(data)
        assert decoded_bodies(data, template.boundary) == list(expected_bodies(kw, reader))
        assert_same_message(kw, reader)


def test_lengths_sweep_with_long_lines():
    """Bodies of growing length, without and with line breaks, so static runs end at
    every offset of a 57-byte base64 line."""
    token = new_token()
    for n in range(0, 240, 7):
        for sep in ("", "\n"):
            body = (("情报" + sep) * n) + TOKEN + ("x" * (n % 5)) + GREETING + "尾"
            kw = variant(
                html=body,
                text=body[::-1].replace(TOKEN[::-1], TOKEN).replace(GREETING[::-1], GREETING),
            )
            reader = dict(
                to_name="王五", to_addr="w@example.cn", token=token, greeting="王" * (n % 4)
            )
            assert_same_message(kw, reader)


def test_lengths_sweep_with_interests_and_long_lines():
    """The same sweep with INTERESTS at the start, after a long run, next to the other
    slots and at the very end of both bodies."""
    token = new_token()
    for n in range(0, 240, 7):
        for sep in ("", "\n"):
            body = (
                INTERESTS
                + (("情报" + sep) * n)
                + TOKEN
                + INTERESTS
                + ("x" * (n % 5))
                + GREETING
                + INTERESTS
                + ("产业" + sep) * (n // 3)
                + INTERESTS
            )
            kw = variant(html=body, text=body[::-1])
            for marker in (TOKEN, GREETING, INTERESTS):
                kw["text"] = kw["text"].replace(marker[::-1], marker)
            reader = dict(
                to_name="王五",
                to_addr="w@example.cn",
                token=token,
                greeting="王" * (n % 4),
                interests=("新材料、" * (n % 7)) + "&" * (n % 3),
            )
            assert_same_message(kw, reader)


def test_headers_tracking_and_ids():
    template = MessageTemplate.build(**variant())
    token = new_token()
    reader = dict(
        to_name="张三", to_addr="zs@example.cn", token=token, greeting="张三：", interests="新材料"
    )
    first = template.render(**reader)
    msg = parse(first)
    links = Links(BASE_URL, DOMAIN, token)
    # Message-ID: derived from the delivery, short, on one line, stable on a re-send.
    mid_line = next(line for line in first.split(b"\r\n") if line.startswith(b"Message-ID:"))
    assert mid_line == f"Message-ID: {links.message_id}".encode()
    assert len(links.message_id) < 65
    again = parse(template.render(**reader))
    assert again["Message-ID"] == msg["Message-ID"] == links.message_id
    other = parse(MessageTemplate.build(**variant()).render(**reader))
    assert other["Message-ID"] == links.message_id  # another process, same delivery
    # Token in Reply-To, List-Unsubscribe and every link of the HTML.
    assert msg["Reply-To"] == f"feedback+{token}@{DOMAIN}"
    assert str(msg["List-Unsubscribe"]) == (
        f"<mailto:unsubscribe+{token}@{DOMAIN}>, <{BASE_URL}/u/{token}>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "OOF, AutoReply"
    assert msg["MIME-Version"] == "1.0"
    page = msg.get_body(("html",)).get_content()
    urls = re.findall(r'(?:href|src)="([^"]+)"', page)
    assert len(urls) == 2 * 12 + 4
    assert all(f"/{token}" in url and url.startswith(BASE_URL) for url in urls)
    assert TOKEN not in page and GREETING not in page
    assert INTERESTS not in page and page.count("新材料") == 2
    text = msg.get_body(("plain",)).get_content()
    assert TOKEN not in text and token in text
    assert INTERESTS not in text and text.count("新材料") == 3
    # Multipart boundary: fixed for the variant, outside the base64 alphabet.
    assert template.boundary in msg["Content-Type"].params["boundary"]
    assert "_" in template.boundary
    assert template.boundary.encode() in parse(template.render(**reader)).as_bytes()


def test_date_default_is_now_in_shanghai():
    template = MessageTemplate.build(**variant())
    msg = parse(template.render(to_name="", to_addr="a@example.cn", token=new_token(), greeting=""))
    when = msg["Date"].datetime
    assert when.utcoffset() == timedelta(hours=8)
    assert abs(when - datetime.now(UTC)) < timedelta(minutes=1)
    aware = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    msg = parse(
        template.render(
            to_name="", to_addr="a@example.cn", token=new_token(), greeting="", date=aware
        )
    )
    assert str(msg["Date"]) == "Fri, 01 Mar 2024 17:30:00 +0800"


def test_long_and_ascii_subjects_fold_and_decode():
    for subject in [
        "Weekly",
        "An ASCII subject that is long enough to need folding at one of its many spaces ok",
        "《许昌竞争情报快递》" * 8,
        ('Mixed 许昌 and ASCII, with "quotes" and =?fake?= words ' * 3).strip(),
    ]:
        reader = dict(to_name="张三", to_addr="zs@example.cn", token=new_token(), greeting="")
        fast = assert_same_message(variant(subject=subject), reader)
        assert fast["Subject"] == subject


@pytest.mark.parametrize(
    "field, value",
    [
        ("subject", "第3期\r\nBcc: victim@example.com"),
        ("subject", "第3期\n"),
        ("subject", "   "),
        ("from_addr", "许昌 <bulletin@example.gov.cn>\r\nBcc: victim@example.com"),
        ("from_addr", "a@example.cn, b@example.cn"),
        ("from_addr", "not an address"),
        ("reply_domain", "example.gov.cn\r\nX: y"),
        ("reply_domain", "exa mple.cn"),
        ("base_url", "https://example.cn/x y"),
        ("base_url", "javascript:alert(1)"),
    ],
)
def test_variant_inputs_are_validated(field, value):
    with pytest.raises(ValueError):
        MessageTemplate.build(**variant(**{field: value}))


@pytest.mark.parametrize(
    "field, value",
    [
        ("to_name", "张三\r\nBcc: victim@example.com"),
        ("to_name", "张三\n"),
        ("to_name", "tab\there"),
        ("to_name", "nul\x00"),
        ("to_addr", "zs@example.cn\r\nBcc: victim@example.com"),
        ("to_addr", "张三 <zs@example.cn>"),
        ("to_addr", "zs@example.cn, other@example.cn"),
        ("to_addr", "no-at-sign"),
        ("to_addr", "用户@example.cn"),  # would need SMTPUTF8
        ("to_addr", "a" * 250 + "@example.cn"),
        ("token", "NOT-A-TOKEN"),
        ("token", "a" * 31 + "\n"),
        ("greeting", "您好\r\n"),
        ("interests", "新材料\r\nBcc: victim@example.com"),
        ("interests", "新材料\n"),
        ("interests", "新材料\t装备"),
        ("interests", "nul\x00"),
        ("interests", "新材料\u2028"),
    ],
)
def test_reader_inputs_are_validated(field, value):
    template = MessageTemplate.build(**variant())
    reader = dict(to_name="张三", to_addr="zs@example.cn", token=new_token(), greeting="您好")
    reader[field] = value
    with pytest.raises(ValueError):
        template.render(**reader)


def test_idn_domain_is_sent_as_a_labels():
    template = MessageTemplate.build(**variant())
    msg = parse(
        template.render(to_name="张三", to_addr="zs@例子.中国", token=new_token(), greeting="")
    )
    assert msg["To"].addresses[0].addr_spec == "zs@xn--fsqu00a.xn--fiqs8s"
