"""The reader's own settings page (/p/TOKEN), served by the real app on a loopback uvicorn
server: what it shows, what a save changes and logs, what it refuses, and what planning
does with a pause and a suspended email."""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

import pytest
from served import listening_socket, serve
from site_rows import runtime_at
from sqlalchemy import select

from dispatch import clock
from dispatch.db.models import Delivery, Issue, Reader, ReaderChange, ReaderChannel, ReaderIndustry
from dispatch.db.session import transaction
from dispatch.industries import INDUSTRIES
from dispatch.plan.fanout import fan_out
from dispatch.readers.changes import PAUSE_BY_CODE, _add_months, pause_end
from dispatch.runtime import Runtime
from dispatch.track import signing
from dispatch.track.tokens import new_token
from dispatch.web.app import create_app
from dispatch.web.forms import cross_site

FORM = "application/x-www-form-urlencoded"


@dataclass
class Site:
    base_url: str
    runtime: Runtime
    token: str  # 王五: email and WeChat Work addresses, 生物医药, by email only
    token_b: str  # 李四: email only, 全部
    reader: int
    reader_b: int

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        u = urlsplit(self.base_url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode()
        finally:
            conn.close()

    def get(self, path: str) -> tuple[int, str]:
        status, _, html = self.request("GET", path)
        return status, html

    def post(self, token: str, fields: dict[str, str | list[str]] | None = None, *,
             body: bytes | None = None, content_type: str = FORM,
             headers: dict[str, str] | None = None) -> tuple[int, str]:
        if body is None:
            body = urlencode(fields or {}, doseq=True).encode("ascii")
        status, _, html = self.request(
            "POST", f"/p/{token}", body, {"Content-Type": content_type, **(headers or {})}
        )
        return status, html

    def csrf(self, token: str) -> str:
        """The form value the page gives, read off the page as a browser would."""
        status, html = self.get(f"/p/{token}")
        assert status == 200
        found = re.search(r'name="csrf" value="([^"]+)"', html)
        assert found, html
        return found.group(1)

    def save(self, token: str, **fields: str | list[str]) -> tuple[int, str]:
        return self.post(token, {"csrf": self.csrf(token), "action": "save", **fields})

    def state(self, reader_id: int) -> tuple:
        """What a save could change, and the change log."""
        with self.runtime.sessions() as s:
            r = s.get(Reader, reader_id)
            changes = s.execute(
                select(ReaderChange.source, ReaderChange.field, ReaderChange.old, ReaderChange.new)
                .where(ReaderChange.reader_id == reader_id).order_by(ReaderChange.id)
            ).all()
            return (r.status, r.follows_all, r.industries, r.channels, r.paused_until,
                    [tuple(c) for c in changes])


@pytest.fixture
def site(db_url) -> Iterator[Site]:
    sock = listening_socket()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runtime = runtime_at(db_url, base_url)
    with transaction(runtime.sessions) as s:
        issue = Issue(title="许昌竞争情报快递", source_file="x.txt", source_format="text",
                      status="sent")
        wang = Reader(name="王五", email="wangwu@example.cn", wecom_userid="WangWu",
                      industry_rows=[ReaderIndustry(industry="biomed")],
                      channel_rows=[ReaderChannel(channel="email")])
        li = Reader(name="李四", email="lisi@example.cn", follows_all=True,
                    channel_rows=[ReaderChannel(channel="email")])
        s.add_all([issue, wang, li])
        s.flush()
        token, token_b = new_token(), new_token()
        s.add_all([Delivery(issue_id=issue.id, reader_id=wang.id, channel="email", token=token),
                   Delivery(issue_id=issue.id, reader_id=li.id, channel="email", token=token_b)])
        ids = wang.id, li.id
    try:
        with serve(create_app(runtime), sock):
            yield Site(base_url, runtime, token, token_b, *ids)
    finally:
        runtime.engine.dispose()


def _checked(html: str, name: str) -> list[str]:
    return re.findall(rf'name="{name}" value="([^"]*)" checked', html)


def _boxes(html: str, name: str) -> list[str]:
    return re.findall(rf'name="{name}" value="([^"]*)"', html)


def _notice(html: str) -> str:
    found = re.search(r'<p class="notice (?:ok|bad)"[^>]*>([^<]*)</p>', html)
    return found.group(1) if found else ""


# --- what the page shows -----------------------------------------------------------------


def test_the_page_shows_the_twelve_in_their_groups_and_only_this_reader(site):
    status, headers, html = site.request("GET", f"/p/{site.token}")
    assert status == 200 and 'lang="zh-CN"' in html
    assert "王五，您好" in html and "wangwu@example.cn" in html
    assert "李四" not in html and "lisi@example.cn" not in html
    assert "WangWu" not in html  # an internal account, not shown
    # The twelve, in the city's order, under their groups' names (6 + 3 + 3), and 全部.
    assert _boxes(html, "industry") == [i.code for i in INDUSTRIES]
    groups = re.findall(r'<p class="group-name">([^<]+)</p>(.*?)</div>', html, re.S)
    assert [(name, len(_boxes(part, "industry"))) for name, part in groups] == [
        ("战略性新兴产业", 6), ("优势主导产业", 3), ("传统产业", 3)]
    for industry in INDUSTRIES:
        assert re.search(rf'value="{industry.code}"( checked)?> {industry.name}</label>', html)
    assert _boxes(html, "all") == ["1"] and "全部" in html
    assert _checked(html, "industry") == ["biomed"] and _checked(html, "all") == []
    # Both addresses, so both channels to choose from; email chosen.
    assert _boxes(html, "channel") == ["email", "wecom"] and _checked(html, "channel") == ["email"]
    assert _boxes(html, "pause") == ["", *PAUSE_BY_CODE]
    assert f'href="{site.base_url}/u/{site.token}"' in html  # unsubscribe asks first
    assert "<script" not in html.lower() and "default-src 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "private, no-store"

    status, html = site.get(f"/p/{site.token_b.upper()}")
    assert status == 200 and "李四，您好" in html and "王五" not in html and "wangwu" not in html
    assert _checked(html, "all") == ["1"] and _checked(html, "industry") == []
    # One address: the channel is fixed, not a box to untick.
    assert 'type="hidden" name="channel" value="email"' in html and "type=\"checkbox\" name=\"channel\"" not in html


@pytest.mark.parametrize("path", ["/p/{bad}", "/p/not-a-token", "/p/" + "a" * 26])
def test_unknown_tokens_get_the_404_page(site, path):
    url = path.format(bad=new_token())
    status, html = site.get(url)
    assert status == 404 and "页面不存在" in html
    status, html = site.post(url.rsplit("/", 1)[1], {"action": "save"})
    assert status == 404 and "页面不存在" in html


# --- saving --------------------------------------------------------------------------------


def test_a_save_changes_the_reader_and_logs_each_field_with_source_page(site):
    status, html = site.save(site.token, industry=["nev", "it"], channel=["email", "wecom"])
    assert status == 200 and _notice(html) == "已保存。"
    assert _checked(html, "industry") == ["it", "nev"]
    assert _checked(html, "channel") == ["email", "wecom"]
    assert site.state(site.reader) == ("active", False, ["it", "nev"], ["email", "wecom"], None, [
        ("page", "industries", "biomed", "it,nev"),
        ("page", "channels", "email", "email,wecom"),
    ])
    # The same again: nothing changes, nothing logged.
    status, html = site.save(site.token, industry=["it", "nev"], channel=["wecom", "email"])
    assert status == 200 and _notice(html) == "已保存（没有改动）。"
    assert len(site.state(site.reader)[-1]) == 2
    # 全部 wins over single industries ticked with it.
    status, html = site.save(site.token, all="1", industry=["it"], channel=["wecom"])
    assert status == 200 and _checked(html, "all") == ["1"] and _checked(html, "industry") == []
    state = site.state(site.reader)
    assert state[1:4] == (True, [], ["wecom"])
    assert state[-1][2:] == [("page", "industries", "it,nev", "all"),
                             ("page", "channels", "email,wecom", "wecom")]
    # The other reader is untouched.
    assert site.state(site.reader_b) == ("active", True, [], ["email"], None, [])


def test_a_pause_and_resuming(site):
    before = clock.utcnow()
    status, html = site.save(site.token, industry="biomed", channel="email", pause="2w")
    end = pause_end(PAUSE_BY_CODE["2w"], before)
    day = clock.to_local(end)
    shown = f"{day.year}年{day.month}月{day.day}日"
    assert status == 200 and _notice(html) == f"已保存。暂停至 {shown}，届时自动恢复。"
    assert f"已暂停至 {shown}" in html and 'name="pause" value="resume"' in html
    # Ends at 00:00 in Shanghai, 14 days on: the issues of that day come again.
    assert (day.hour, day.minute) == (0, 0)
    assert day.date() == clock.to_local(before).date() + timedelta(days=14)
    state = site.state(site.reader)
    assert state[4] == end
    assert state[-1] == [("page", "paused_until", None, end.isoformat(timespec="seconds"))]

    status, html = site.save(site.token, industry="biomed", channel="email", pause="resume")
    assert status == 200 and _notice(html) == "已保存，已恢复接收。" and "已暂停至" not in html
    state = site.state(site.reader)
    assert state[4] is None and state[-1][-1] == (
        "page", "paused_until", end.isoformat(timespec="seconds"), None)


def test_a_pause_set_on_the_page_holds_back_issues_published_before_it_ends(site):
    site.save(site.token, industry="biomed", channel="email", pause="1w")
    paused_until = site.state(site.reader)[4]
    sessions = site.runtime.sessions
    planned = {}
    for name, published in (("during", paused_until - timedelta(hours=1)),
                            ("on the day", paused_until),
                            ("after", paused_until + timedelta(hours=8))):
        with transaction(sessions) as s:
            issue = Issue(title=name, source_file="x.txt", source_format="text",
                          status="sending", publish_at=published)
            s.add(issue)
            s.flush()
            issue_id = issue.id
        fan_out(sessions, issue_id, now=published)
        with sessions() as s:
            planned[name] = sorted(s.scalars(select(Delivery.reader_id).where(
                Delivery.issue_id == issue_id)))
    assert planned == {"during": [site.reader_b], "on the day": [site.reader, site.reader_b],
                       "after": [site.reader, site.reader_b]}


# --- refusals ------------------------------------------------------------------------------


def _stale(site: Site, token: str) -> str:
    return signing.sign(site.runtime.signing_key, "prefs", token,
                        now=time.time() - signing.MAX_AGE_SECONDS - 3600)


@pytest.mark.parametrize("csrf", ["missing", "forged", "other token's", "other purpose", "stale"])
def test_a_post_without_this_pages_own_form_value_is_refused_and_changes_nothing(site, csrf):
    before = site.state(site.reader)
    values = {
        "forged": "lz3k1a.AAAAAAAAAAAAAAAAAAAAAAAA",
        "other token's": site.csrf(site.token_b),
        "other purpose": signing.sign(site.runtime.signing_key, "comment", site.token),
        "stale": _stale(site, site.token),
    }
    fields = {"action": "save", "industry": "nev", "channel": "wecom", "pause": "1w"}
    if csrf != "missing":
        fields["csrf"] = values[csrf]
    status, html = site.post(site.token, fields)
    assert status == 403 and "没有保存" in html and "重新打开" in html
    assert f'href="{site.base_url}/p/{site.token}"' in html
    assert site.state(site.reader) == before


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://evil.example"},
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
])
def test_a_post_from_another_site_is_refused_even_with_a_good_form_value(site, headers):
    before = site.state(site.reader)
    status, html = site.post(site.token, {"csrf": site.csrf(site.token), "action": "save",
                                          "industry": "nev", "channel": "email"}, headers=headers)
    assert status == 403 and "没有保存" in html
    assert site.state(site.reader) == before


@pytest.mark.parametrize("headers", [
    {"Origin": "null", "Sec-Fetch-Site": "same-origin"},  # our no-referrer pages' own form
    {"Origin": "{base}"},
    {},
])
def test_our_own_form_posts(site, headers):
    headers = {k: v.format(base=site.base_url) for k, v in headers.items()}
    status, html = site.post(site.token, {"csrf": site.csrf(site.token), "action": "save",
                                          "industry": "nev", "channel": "email"}, headers=headers)
    assert status == 200 and _notice(html) == "已保存。"


def test_cross_site_rule():
    base = "https://news.example.cn"
    assert not cross_site({}, base)
    assert not cross_site({"origin": "https://NEWS.example.cn"}, base)
    assert not cross_site({"origin": "http://127.0.0.1:8000", "host": "127.0.0.1:8000"}, base)
    assert not cross_site({"origin": "null", "sec-fetch-site": "same-origin"}, base)
    assert cross_site({"origin": "https://news.example.cn.evil.example"}, base)
    assert cross_site({"sec-fetch-site": "cross-site", "origin": base}, base)
    # The rule every reader form shares (preferences, vote comments): a sibling site is
    # not ours, nor a bare `Origin: null` the browser does not vouch for.
    assert cross_site({"sec-fetch-site": "same-site", "origin": base}, base)
    assert cross_site({"origin": "null"}, base)
    assert not cross_site({"sec-fetch-site": "none"}, base)
    assert not cross_site({"origin": "https://news.example.cn:443"}, base)
    for garbage in ("http://x:port", "http://[::1", "://", "💥"):
        assert cross_site({"origin": garbage}, base)


BAD = [
    ("unknown industry", {"industry": ["nev", "steel"]}, "关注的产业：没有“steel”这个产业"),
    ("no industry", {"industry": []}, "关注的产业：请至少选择一个产业"),
    ("no channel", {"channel": []}, "接收方式：请至少选择一种"),
    ("unknown channel", {"channel": "fax"}, "接收方式：没有“fax”这种接收方式"),
    ("unknown pause", {"pause": "5y"}, "暂停接收：没有“5y”这一项"),
    ("a long unknown value", {"pause": "x" * 500}, "暂停接收：没有“" + "x" * 20 + "…”这一项"),
    ("unknown action", {"action": "delete"}, "提交的内容无法识别"),
    ("全部 not ticked as the form ticks it", {"all": "yes"}, "提交的内容无法识别"),
    ("two form values", {"csrf2": True}, "提交的内容无法识别"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_invalid_input_is_refused_naming_the_field_and_changes_nothing(site, case):
    _, change, message = case[0], dict(case[1]), case[2]
    before = site.state(site.reader)
    csrf = site.csrf(site.token)
    fields: dict = {"csrf": csrf, "action": "save", "industry": "nev", "channel": "email",
                    "pause": "1w"}
    if change.pop("csrf2", False):
        fields["csrf"] = [csrf, csrf]
    fields.update(change)
    status, html = site.post(site.token, fields)
    assert status == 400, html
    assert _notice(html).startswith("没有保存。") and message in _notice(html), _notice(html)
    assert "王五，您好" in html and _checked(html, "industry") == ["biomed"]  # as stored
    assert site.state(site.reader) == before


def test_a_channel_the_reader_has_no_address_for_is_refused(site):
    status, html = site.save(site.token_b, all="1", channel=["email", "wecom"])
    assert status == 400 and "接收方式：我们没有您的企业微信账号，不能选择企业微信" in _notice(html)
    assert site.state(site.reader_b) == ("active", True, [], ["email"], None, [])


def test_bodies_a_browser_would_not_send_are_refused(site):
    before = site.state(site.reader)
    csrf = site.csrf(site.token)
    good = f"csrf={csrf}&action=save&industry=nev&channel=email".encode()
    cases = [
        (good + b"&x=" + b"a" * 9000, FORM, "提交的内容过长"),
        (good + b"&note=%FF%FE", FORM, "提交的内容无法识别"),
        (good + "&note=王".encode(), FORM, "提交的内容无法识别"),
        (good + b"&&==&", FORM, "提交的内容无法识别"),
        (good, "multipart/form-data; boundary=x", "提交的内容无法识别"),
        (good, "text/plain", "提交的内容无法识别"),
        (b"&".join([good] + [b"industry=it"] * 100), FORM, "提交的内容无法识别"),
    ]
    for body, ctype, message in cases:
        status, html = site.post(site.token, body=body, content_type=ctype)
        assert status == 400 and message in _notice(html), (body[:60], ctype, _notice(html))
    assert site.state(site.reader) == before
    assert site.post(site.token, body=good)[0] == 200  # the same form, well-formed, saves


# --- unsubscribed readers ------------------------------------------------------------------


def test_an_unsubscribed_reader_may_subscribe_again_and_nothing_else(site):
    with transaction(site.runtime.sessions) as s:
        s.get(Reader, site.reader).status = "unsubscribed"
    status, html = site.get(f"/p/{site.token}")
    assert status == 200 and "您已退订" in html and "重新订阅" in html
    assert _boxes(html, "industry") == [] and _boxes(html, "action") == ["resubscribe"]
    # A save posted anyway changes nothing.
    status, html = site.save(site.token, industry="nev", channel="email")
    assert status == 400 and "您已退订" in _notice(html)
    assert site.state(site.reader)[:3] == ("unsubscribed", False, ["biomed"])
    # Subscribing again is the reader's own choice, logged as theirs.
    status, html = site.post(site.token, {"csrf": site.csrf(site.token), "action": "resubscribe"})
    assert status == 200 and "已重新订阅" in _notice(html)
    assert _checked(html, "industry") == ["biomed"]  # as they had it
    state = site.state(site.reader)
    assert state[0] == "active" and state[-1] == [("page", "status", "unsubscribed", "active")]
    # The resubscribe form needs the page's form value like any other.
    with transaction(site.runtime.sessions) as s:
        s.get(Reader, site.reader).status = "unsubscribed"
    assert site.post(site.token, {"action": "resubscribe"})[0] == 403
    assert site.state(site.reader)[0] == "unsubscribed"


def test_a_reader_stopped_by_staff_is_told_and_can_still_choose(site):
    with transaction(site.runtime.sessions) as s:
        s.get(Reader, site.reader).status = "inactive"
    status, html = site.get(f"/p/{site.token}")
    assert status == 200 and "由工作人员设置" in html and _boxes(html, "pause") == []
    status, html = site.save(site.token, industry="food", channel="email")
    assert status == 200 and site.state(site.reader)[:3] == ("inactive", False, ["food"])


def test_a_suspended_email_is_shown_to_the_reader(site):
    with transaction(site.runtime.sessions) as s:
        reader = s.get(Reader, site.reader)
        reader.email_suspended_at, reader.email_bounces = clock.utcnow(), 3
    status, html = site.get(f"/p/{site.token}")
    assert status == 200 and "多次被退回，已暂停发送邮件" in html


# --- pure rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(("now", "code", "local_end"), [
    (datetime(2026, 12, 8, 6, 0), "1w", datetime(2026, 12, 15)),
    (datetime(2026, 12, 8, 17, 0), "1w", datetime(2026, 12, 16)),  # 01:00 on the 9th in Shanghai
    (datetime(2026, 12, 8, 6, 0), "2w", datetime(2026, 12, 22)),
    (datetime(2027, 1, 31, 6, 0), "1m", datetime(2027, 2, 28)),
    (datetime(2026, 11, 30, 6, 0), "3m", datetime(2027, 2, 28)),
    (datetime(2026, 10, 15, 6, 0), "3m", datetime(2027, 1, 15)),
])
def test_a_pause_ends_at_midnight_in_shanghai(now, code, local_end):
    end = pause_end(PAUSE_BY_CODE[code], now)
    assert clock.to_local(end).replace(tzinfo=None) == local_end


def test_adding_months_keeps_the_day_or_takes_the_months_last():
    from datetime import date

    assert _add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert _add_months(date(2026, 12, 31), 3) == date(2027, 3, 31)
    assert _add_months(date(2026, 12, 5), 1) == date(2027, 1, 5)


# --- the page on a phone -------------------------------------------------------------------


@pytest.mark.browser
def test_the_page_fits_a_phone_and_a_desktop(site, tmp_path):
    from test_screenshots import measure, screenshot

    with transaction(site.runtime.sessions) as s:
        reader = s.get(Reader, site.reader)
        reader.email_suspended_at = clock.utcnow()
    site.save(site.token, industry=["biomed", "it"], channel=["email", "wecom"], pause="1m")
    status, html = site.get(f"/p/{site.token}")
    assert status == 200
    for width in (375, 1024):
        scroll_width, inner_width, height, _ = measure(tmp_path, html, "preferences", width)
        assert inner_width == width
        assert scroll_width <= width, f"the page overflows at {width}px: {scroll_width}px"
        print(f"screenshot: {screenshot(tmp_path, html, 'preferences', width, height)}")
