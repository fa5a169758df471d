"""The staff web on both databases (SQLite and the machine's PostgreSQL), over real HTTP.

One realistic world is built through the domain layer and the models: the sample issue
ingested, tagged, finalized and fanned out to 30 readers of both channels, its deliveries in
every state (failures with reasons), opens, clicks and web reads (a person's and machines')
over the 3 days after sending, feedback of every kind (a raw email, a WeChat Work message),
readers changed by staff, an earlier issue for the trend, a draft, and a list imported
after the send. Then:

- every GET route under /admin in the app's route table is fetched as an admin (path
  parameters filled with real ids, query strings that make the database work): 200, and
  only Chinese on the pages;
- the figures a staff member reads (a report's headline and timeline, the trend, the
  readers list's totals, the inbox's counts, the live counts) are the ones worked out here
  from the world as built, on either database;
- the main forms are posted and the rows they write (with who) are checked.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import unescape
from urllib.parse import parse_qsl, urlencode

import pytest
from admin_site import T0, Site, admin_site, form_token, visible
from cli_language import english_words
from openpyxl import load_workbook
from served import Answer
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from dispatch import clock, editorial, lifecycle
from dispatch.db.models import (
    ArticleTag,
    Delivery,
    Event,
    Feedback,
    Issue,
    IssueChange,
    Reader,
    ReaderChange,
    Staff,
    StaffChange,
)
from dispatch.db.session import transaction
from dispatch.deliver.wecom_codes import INVALID_USER
from dispatch.ingest import parse_bytes
from dispatch.plan.fanout import fan_out
from dispatch.readers import ReaderRecord
from dispatch.readers.apply import add_reader, import_records, set_status, update_reader
from dispatch.web.desk import Guarded

NOW = datetime.fromtimestamp(T0, UTC).replace(tzinfo=None)  # the site's clock: 1月15日 16:00
SENT = datetime(2027, 1, 12, 2, 40)  # the issue went out: 2027年1月12日 10:40 Beijing time
SENT_OLD = SENT - timedelta(days=28)  # the issue before it
SIX_HOURS = timedelta(hours=6)


# -- the readers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class R:
    name: str
    org: str
    group: str
    email: str | None
    wecom: str | None
    follows: tuple[str, ...] | None  # None: 全部
    channels: tuple[str, ...] = ()  # (): every channel with an address
    status: str = "active"
    paused_until: datetime | None = None
    suspended: bool = False

    @property
    def channel_rows(self) -> tuple[str, ...]:
        if self.channels:
            return self.channels
        return tuple(c for c, a in (("email", self.email), ("wecom", self.wecom)) if a)

    def receives(self, published: datetime) -> tuple[str, ...]:
        """The channels an issue published then reaches this reader by (dispatch's rules as
        docs/ state them: active, not paused past it, email not suspended)."""
        if self.status != "active" or (self.paused_until and self.paused_until > published):
            return ()
        return tuple(c for c in self.channel_rows if not (c == "email" and self.suspended))

    def state(self, now: datetime) -> str:
        if self.status != "active":
            return self.status
        if self.paused_until and self.paused_until > now:
            return "paused"
        return "email_suspended" if self.suspended else "active"

    def in_states(self, now: datetime) -> set[str]:
        if self.status != "active":
            return {self.status}
        held = {"paused"} if self.paused_until and self.paused_until > now else set()
        held |= {"email_suspended"} if self.suspended else set()
        return held or {"active"}


ALL = None
READERS = (
    R("王建国", "中共许昌市委", "市领导", "wangjianguo@example.gov.cn", "wang_jg", ALL),
    R("李红梅", "许昌市人民政府", "市领导", "lihongmei@example.gov.cn", None, ("it", "equipment", "nev")),
    R("赵志强", "许昌市人民政府", "市领导", None, "zhao_zq", ("machinery", "green", "building")),
    R("陈晓东", "许昌市人民政府办公室", "市领导", "chenxiaodong@example.gov.cn", None, ALL),
    R("刘卫国", "许昌市科技局", "科技局", "liuweiguo@example.gov.cn", "liu_wg", ("chemical",),
      channels=("email",)),
    R("张丽", "许昌市科技局", "科技局", "zhangli@example.gov.cn", None, ("biomed",)),
    R("孙伟", "TCL华星光电", "重点企业", "sunwei@example.cn", "sun_wei", ("it",)),
    R("周敏", "ＡＢＣ咨询有限公司", "重点企业", "Zhou.Min@Example.CN", None, ("food",)),
    R("吴刚", "许继集团", "重点企业", "wugang@example.cn", "wu_gang", ("equipment", "machinery")),
    R("郑洁", "瑞贝卡发制品", "重点企业", None, "zheng_jie", ("hair",)),
    R("冯磊", "黄河旋风", "重点企业", "fenglei@example.cn", None, ("materials",)),
    R("褚燕", "禹州市人民政府", "县区", "chuyan@example.gov.cn", "chu_yan", ("building", "chemical")),
    R("蒋涛", "长葛市人民政府", "县区", "jiangtao@example.gov.cn", None, ("textile", "food")),
    R("沈静", "鄢陵县人民政府", "县区", None, "shen_jing", ("green",)),
    R("韩冰", "襄城县人民政府", "县区", "hanbing@example.gov.cn", None, ("nev",)),
    R("杨帆", "建安区人民政府", "县区", "yangfan@example.gov.cn", "yang_fan", ALL, channels=("wecom",)),
    R("朱琳", "魏都区人民政府", "县区", "zhulin@example.gov.cn", None, ("it", "biomed")),
    R("秦勇", "许昌市工信局", "市直部门", "qinyong@example.gov.cn", "qin_yong", ("chemical", "textile")),
    R("许昌明", "许昌市发改委", "市直部门", "xuchangming@example.gov.cn", None, ("machinery",)),
    R("何芳", "许昌市商务局", "市直部门", "hefang@example.gov.cn", None, ("food", "hair")),
    R("吕强", "许昌市财政局", "市直部门", None, "lv_qiang", ALL),
    R("施雯", "许昌市统计局", "市直部门", "shiwen@example.gov.cn", None, ("equipment",)),
    R("孔亮", "许昌市教育局", "市直部门", "kongliang@example.gov.cn", None, ("it",), status="inactive"),
    R("曹阳", "许昌市卫健委", "市直部门", "caoyang@example.gov.cn", "cao_yang", ("biomed",),
      status="unsubscribed"),
    R("严红", "许昌学院", "科技局", "yanhong@example.edu.cn", None, ("materials",),
      paused_until=NOW + timedelta(days=14)),
    R("华军", "许昌职业技术学院", "科技局", "huajun@example.edu.cn", "hua_jun", ("nev",),
      paused_until=NOW + timedelta(days=3)),
    R("金鑫", "森源电气", "重点企业", "jinxin@example.cn", None, ("equipment",), suspended=True),
    R("魏东", "众品食业", "重点企业", "weidong@example.cn", "wei_dong", ("food",), suspended=True),
    R("陶然", "许昌市图书馆", "市直部门", "taoran@example.gov.cn", None, ("textile",),
      paused_until=SENT - timedelta(days=2)),
    R("姜华", "许昌日报社", "市直部门", "jianghua@example.gov.cn", None, ALL, status="inactive"),
)
# A list imported after the send (no deliveries): enough readers for a second page.
NEW_LIST = tuple(
    R(f"新读者{i:02d}", f"许昌市新区企业{i}", "新名单", f"new{i:02d}@example.cn", None,
      (("it", "food", "chemical", "hair", "nev")[i % 5],))
    for i in range(1, 36)
)
EVERYONE = READERS + NEW_LIST
BY_NAME = {r.name: r for r in EVERYONE}


# -- what happened to the deliveries, what readers did and said ------------------------------

# (reader, channel) → state (and the stored reason of a failure); every other delivery: sent.
OUTCOMES: dict[tuple[str, str], tuple[str, str | None]] = {
    ("李红梅", "email"): ("failed", "gave up after 5 attempts in 2 d 3 h: temporary failure"),
    ("郑洁", "wecom"): ("failed", INVALID_USER),
    ("蒋涛", "email"): ("failed", "not sent: reader is inactive"),
    ("冯磊", "email"): ("bounced", None),  # sent, then a hard bounce
    ("沈静", "wecom"): ("queued", None),
    ("吕强", "wecom"): ("sending", None),
    ("施雯", "email"): ("retry", "temporary failure"),
    ("陶然", "email"): ("cancelled", None),
}
REASON_WORDS = ("试了 5 次、历时 2 天 3 小时后放弃：临时失败", "企业微信账号无效", "未发送：读者已停用")


@dataclass(frozen=True)
class Ev:
    reader: str
    channel: str
    kind: str
    hours: float  # after SENT
    machine: bool = False
    article: int | None = None  # the sample's article, by its place


EVENTS = (
    Ev("王建国", "email", "open", 0.5),
    Ev("王建国", "email", "click", 7, article=1),
    Ev("王建国", "email", "click", 30, article=1),
    Ev("王建国", "email", "article_view", 30.1, article=1),
    Ev("王建国", "wecom", "click", 2, article=2),
    Ev("陈晓东", "email", "open", 0.02, machine=True),  # an image proxy only
    Ev("刘卫国", "email", "click", 8, article=2),  # images blocked: no open, a click
    Ev("张丽", "email", "open", 13),
    Ev("张丽", "email", "web_view", 13.2),
    Ev("孙伟", "email", "open", 1, machine=True),
    Ev("孙伟", "email", "open", 26),
    Ev("孙伟", "wecom", "article_view", 50, article=3),
    Ev("周敏", "email", "open", 40),
    Ev("周敏", "email", "click", 40.1, article=3),
    Ev("吴刚", "email", "open", 3),
    Ev("吴刚", "wecom", "click", 3.5, article=1),
    Ev("褚燕", "email", "open", 60),
    Ev("褚燕", "email", "click", 61, article=2),
    Ev("韩冰", "email", "open", 73),  # after the 3 days the chart shows
    Ev("韩冰", "email", "click", 75, article=0),
    Ev("杨帆", "wecom", "web_view", 20),
    Ev("朱琳", "email", "open", 0.1, machine=True),
    Ev("朱琳", "email", "click", 0.15, machine=True, article=1),  # a scanner following links
    Ev("秦勇", "email", "open", 5),
    Ev("秦勇", "wecom", "web_view", 6),
    Ev("何芳", "email", "open", 44),
    Ev("何芳", "email", "click", 44.2, article=0),
    Ev("何芳", "email", "click", 45, article=0),
    Ev("魏东", "wecom", "article_view", 10, article=1),
)
OLD_EVENTS = (
    Ev("王建国", "email", "open", 1),
    Ev("张丽", "email", "open", 30),
    Ev("刘卫国", "email", "click", 4),
    Ev("陈晓东", "email", "open", 0.01, machine=True),
)


@dataclass(frozen=True)
class Fb:
    key: str
    kind: str
    channel: str
    hours: float  # received, after SENT (of its issue)
    reader: tuple[str, str] | None = None  # the delivery's (reader, channel)
    article: int | None = None
    text: str = ""
    sender: str | None = None
    subject: str | None = None
    raw: bytes | None = None
    handled: bool = False
    old: bool = False  # of the issue before


REPLY_MAIL = (
    "From: =?utf-8?b?5byg5Li9?= <zhangli@example.gov.cn>\r\n"
    "To: bulletin@example.gov.cn\r\n"
    "Subject: =?utf-8?b?5Zue5aSN77ya5pys5pyf5b+r5oql?=\r\n"
    "Date: Tue, 12 Jan 2027 23:40:00 +0800\r\n"
    "Message-ID: <reply-zhangli@example.gov.cn>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n\r\n"
    "谢谢，数据很及时。\r\n"
).encode()
WECOM_XML = ("<xml><ToUserName>corp</ToUserName><FromUserName>qin_yong</FromUserName>"
             "<CreateTime>1799760000</CreateTime><MsgType>text</MsgType>"
             "<Content>收到，下期请多登化工的</Content><MsgId>7001</MsgId><AgentID>1</AgentID>"
             "</xml>").encode()
FEEDBACK = (
    Fb("useful_a1", "useful", "web", 31, ("王建国", "email"), article=1),
    Fb("useful_a0", "useful", "web", 45, ("何芳", "email"), article=0),
    Fb("not_useful", "not_useful", "web", 27, ("孙伟", "email"), article=1),
    Fb("card_vote", "useful", "wecom", 4, ("吴刚", "wecom")),  # the whole issue: the card
    Fb("comment", "comment", "web", 41, ("周敏", "email"), article=3, text="希望多登食品产业的数据"),
    Fb("mail", "reply", "email", 14, ("张丽", "email"), text="谢谢，数据很及时。",
       sender="zhangli@example.gov.cn", subject="回复：本期快报", raw=REPLY_MAIL, handled=True),
    Fb("wecom", "reply", "wecom", 7, ("秦勇", "wecom"), text="收到，下期请多登化工的",
       sender="qin_yong", raw=WECOM_XML),
    Fb("auto", "auto_reply", "email", 1, ("吴刚", "email"), text="我正在休假，1月20日返回。",
       sender="wugang@example.cn", subject="自动回复：休假中"),
    Fb("bounce", "bounce", "email", 0.5, ("冯磊", "email"), text="邮件无法投递：收件人不存在",
       sender="mailer-daemon@example.cn", subject="退信通知", handled=True),
    Fb("old_reply", "reply", "email", 2, ("李红梅", "email"), text="上期很好",
       sender="lihongmei@example.gov.cn", subject="回复：上期快报", old=True),
)
VOTE_KINDS = ("useful", "not_useful")
FROM_READERS = ("reply", "comment", "useful", "not_useful")

OLD_ISSUE = """---
title: 许昌竞争情报快递
number: 2026年第12期
---
# 行业动态
## 化工园区安全改造启动
化工园区完成了安全改造的第一阶段。
## 新材料项目签约
新材料项目在许昌签约，总投资十亿元。
""".encode()
DRAFT_ISSUE = """---
title: 许昌竞争情报快递
number: 2027年第2期
---
# 行业动态
## 食品产业展销会开幕
展销会吸引了三百家企业参展。
## 发制品出口增长
一季度发制品出口同比增长一成。
""".encode()


# -- the world as built -------------------------------------------------------------------------


@dataclass
class World:
    main: int  # the sample issue: sending (some rows still pending)
    title: str  # its title
    old: int  # the issue before: sent
    draft: int
    articles: list[int]  # the main issue's, in order
    titles: list[str]
    draft_articles: list[int]
    readers: dict[str, int]
    deliveries: dict[tuple[str, str], int]  # of the main issue
    feedback: dict[str, int]
    zhang: int
    li: int


def _record(r: R, industries: tuple[str, ...] | None = None) -> ReaderRecord:
    follows = r.follows if industries is None else industries
    return ReaderRecord(name=r.name, organization=r.org, position="", group=r.group,
                        email=r.email, wecom_userid=r.wecom, follows_all=follows is None,
                        industries=follows or (), channels=r.channels)


def _send(site: Site, issue_id: int, at: datetime) -> None:
    """Finalized to go out at `at`, claimed and fanned out then, as the scheduler does."""
    with transaction(site.runtime.sessions) as s:
        issue = editorial.get_issue(s, issue_id)
        lifecycle.finalize(s, issue, at, at - timedelta(days=1))
    with transaction(site.runtime.sessions) as s:
        lifecycle.claim_for_send(s, issue_id, at)
    fan_out(site.runtime.sessions, issue_id, now=at)


def build(site: Site) -> World:
    sessions = site.runtime.sessions
    zhang, li = site.staff("zhang").id, site.staff("li").id
    with transaction(sessions) as s:
        main = s.scalars(select(Issue.id)).one()  # ingested by admin_site, as the CLI does
        ids: dict[str, int] = {}
        for r in READERS:
            first = ("biomed",) if r.name == "张丽" else None  # her interests change below
            reader = add_reader(s, _record(r, first), by=zhang)
            ids[r.name] = reader.id
            reader.paused_until = r.paused_until
            reader.email_suspended_at = SENT - timedelta(days=40) if r.suspended else None
            if r.suspended:
                reader.email_bounces = 3
        s.flush()
        her = s.get(Reader, ids["张丽"])
        assert her is not None
        update_reader(s, her, _record(BY_NAME["张丽"], ("biomed", "materials")), by=li)
        for r in READERS:
            if r.status != "active":
                reader = s.get(Reader, ids[r.name])
                assert reader is not None
                source, by = ("page", None) if r.status == "unsubscribed" else ("staff", li)
                set_status(s, reader, r.status, source=source, by=by)
        old = editorial.store_issue(s, parse_bytes(OLD_ISSUE, "old.md"), "old.md",
                                    site.runtime.rules, by=li).id
        articles = [a.id for a in editorial.get_issue(s, main).articles]
        titles = [a.title for a in editorial.get_issue(s, main).articles]
        main_title = editorial.get_issue(s, main).title
        editorial.set_tags(s, articles[1], ["it", "materials"], by=li)
        editorial.log_change(s, main, "finalized", by=li, new=clock.cn_time(SENT))

    # The issue before: to everyone then receiving, all sent, a few opened.
    _send(site, old, SENT_OLD)
    with transaction(sessions) as s:
        old_rows = list(s.scalars(select(Delivery).where(Delivery.issue_id == old)
                                  .order_by(Delivery.id)))
        for k, d in enumerate(old_rows):
            d.state, d.sent_at, d.attempts = "sent", SENT_OLD + timedelta(minutes=k), 1
        s.flush()
        old_ids = {(name_of(s, d.reader_id), d.channel): d.id for d in old_rows}
        for e in OLD_EVENTS:
            _event(s, old, old_ids[(e.reader, e.channel)], e, SENT_OLD, articles=[])
        lifecycle.finish_if_done(s, old)

    # The sample issue.
    _send(site, main, SENT)
    deliveries: dict[tuple[str, str], int] = {}
    with transaction(sessions) as s:
        k = 0
        for d in s.scalars(select(Delivery).where(Delivery.issue_id == main).order_by(Delivery.id)):
            key = (name_of(s, d.reader_id), d.channel)
            deliveries[key] = d.id
            state, reason = OUTCOMES.get(key, ("sent", None))
            d.attempts = 1
            if state in ("sent", "bounced"):
                d.state, d.sent_at = "sent", SENT + timedelta(minutes=k)
                d.provider_id = f"<{d.token}@example.gov.cn>"
                k += 1
                if state == "bounced":
                    d.bounced_at = SENT + timedelta(minutes=30)
            elif state == "failed":
                d.state, d.last_error, d.attempts = "failed", reason, 5
                d.first_attempt_at = SENT
            elif state == "sending":
                d.state, d.lease_owner = "sending", "host:1234:worker"
                d.lease_expires_at = NOW + timedelta(minutes=5)
            elif state == "retry":
                d.state, d.last_error = "retry", reason
                d.available_at, d.first_attempt_at = NOW + timedelta(minutes=10), SENT
            else:
                d.state, d.attempts = state, 0
        s.flush()
        for e in EVENTS:
            _event(s, main, deliveries[(e.reader, e.channel)], e, SENT, articles)
        old_deliveries = {(name_of(s, d.reader_id), d.channel): d.id for d in
                          s.scalars(select(Delivery).where(Delivery.issue_id == old))}
        feedback: dict[str, int] = {}
        for f in FEEDBACK:
            key = f.reader
            delivery = None if key is None else (old_deliveries if f.old else deliveries)[key]
            row = Feedback(
                reader_id=ids[key[0]] if key else None, issue_id=old if f.old else main,
                delivery_id=delivery, article_id=articles[f.article] if f.article is not None else None,
                channel=f.channel, kind=f.kind, text=f.text, sender=f.sender, subject=f.subject,
                raw=f.raw, received_at=(SENT_OLD if f.old else SENT) + timedelta(hours=f.hours),
                source_key=f"test:{f.key}" if f.raw else None,
                handled_at=NOW - timedelta(hours=1) if f.handled else None,
                handled_by="张三（zhang）" if f.handled else None)
            s.add(row)
            s.flush()
            feedback[f.key] = row.id

    # A draft, and a list imported after the send (as from the command line: no staff).
    with transaction(sessions) as s:
        draft = editorial.store_issue(s, parse_bytes(DRAFT_ISSUE, "draft.md"), "draft.md",
                                      site.runtime.rules, by=li)
        draft_id, draft_articles = draft.id, [a.id for a in draft.articles]
        records = [_record(r)._replace(file="新名单.csv", row=i)
                   for i, r in enumerate(NEW_LIST, start=2)]
        report = import_records(s, records)
        assert not report.errors and report.added == len(NEW_LIST)
        for r in NEW_LIST:
            ids[r.name] = s.scalars(select(Reader.id).where(Reader.email == r.email)).one()
    return World(main, main_title, old, draft_id, articles, titles, draft_articles, ids, deliveries,
                 feedback, zhang, li)


def name_of(s: Session, reader_id: int) -> str:
    return s.scalars(select(Reader.name).where(Reader.id == reader_id)).one()


def _event(s: Session, issue: int, delivery: int, e: Ev, sent: datetime, articles: list[int]) -> None:
    s.add(Event(issue_id=issue, delivery_id=delivery, kind=e.kind, machine=e.machine,
                article_id=articles[e.article] if e.article is not None else None,
                n=1 if e.kind == "click" else None, at=sent + timedelta(hours=e.hours),
                user_agent="GoogleImageProxy" if e.machine else "Mozilla/5.0 (Windows NT 10.0)"))


# -- what a staff member should read, worked out from the world above --------------------------


def planned(published: datetime, readers: tuple[R, ...] = READERS) -> list[tuple[str, str]]:
    return [(r.name, c) for r in readers for c in r.receives(published)]


def outcome(key: tuple[str, str]) -> str:
    state = OUTCOMES.get(key, ("sent", None))[0]
    return "sent" if state == "bounced" else state


def main_sent() -> list[tuple[str, str]]:
    return [k for k in planned(SENT) if outcome(k) == "sent"]


def first_human(events: tuple[Ev, ...], kinds: tuple[str, ...] | None = None) -> dict[tuple[str, str], float]:
    """Each delivery's first event by a person (of `kinds`), in hours after sending."""
    out: dict[tuple[str, str], float] = {}
    for e in events:
        if e.machine or (kinds is not None and e.kind not in kinds):
            continue
        key = (e.reader, e.channel)
        out[key] = min(out.get(key, e.hours), e.hours)
    return out


def percent(part: int, whole: int) -> str:
    return f"{part / whole * 100:.1f}%"


def periods(hours: list[float], start: datetime, step: timedelta, count: int) -> tuple[list[int], int]:
    out, later = [0] * count, 0
    for h in hours:
        i = (SENT + timedelta(hours=h) - start) // step
        if i < count:
            out[i] += 1
        else:
            later += 1
    return out, later


def headline() -> str:
    sent = main_sent()
    opened = first_human(EVENTS)
    clicks = sum(1 for e in EVENTS if e.kind == "click" and not e.machine)
    said = sum(1 for f in FEEDBACK if not f.old and f.kind in FROM_READERS)
    return (f"发出 {len(sent)} 份（{len({name for name, _ in sent})} 人），"
            f"{percent(len(opened), len(sent))} 打开，{clicks} 次点击，{said} 条反馈")


def summary() -> dict[str, str]:
    """The report's figures of the whole issue, as its CSV's first block names them."""
    sent = main_sent()
    human = [e for e in EVENTS if not e.machine]
    with_events = {(e.reader, e.channel) for e in EVENTS}
    web = [e for e in human if e.kind in ("web_view", "article_view")]
    pending = [k for k in planned(SENT) if outcome(k) in ("queued", "sending", "retry")]
    figures = {
        "发出的读者人数": len({name for name, _ in sent}), "发出": len(sent),
        "退信": sum(1 for state, _ in OUTCOMES.values() if state == "bounced"),
        "失败": sum(1 for k in planned(SENT) if outcome(k) == "failed"), "待发": len(pending),
        "已取消": sum(1 for k in planned(SENT) if outcome(k) == "cancelled"),
        "有人打开": len(first_human(EVENTS)),
        "仅机器打开": len(with_events - set(first_human(EVENTS))),
        "打开率": percent(len(first_human(EVENTS)), len(sent)),
        "点击次数": sum(1 for e in human if e.kind == "click"),
        "有点击的份数": len(first_human(EVENTS, ("click",))),
        "网页阅读次数": len(web), "有网页阅读的份数": len({(e.reader, e.channel) for e in web}),
        "读者反馈合计（回复、留言、投票）": sum(1 for f in FEEDBACK
                                               if not f.old and f.kind in FROM_READERS),
        "对整期：有用": sum(1 for f in FEEDBACK if f.kind == "useful" and f.article is None),
    }
    return {k: str(v) for k, v in figures.items()}


def readers_matching(**query: str) -> list[str]:
    """The readers list's filters as a staff member understands them."""
    text = query.get("q", "").lower()
    out = []
    for r in EVERYONE:
        fields = (r.name, r.org, r.email or "", r.wecom or "")
        if text and not any(text in f.lower() for f in fields):
            continue
        if "industry" in query and not (r.follows is None or query["industry"] in r.follows):
            continue
        if "group" in query and r.group != query["group"]:
            continue
        if "channel" in query and query["channel"] not in r.channel_rows:
            continue
        if "status" in query and query["status"] not in r.in_states(NOW):
            continue
        if query.get("bounced") == "1" and not r.suspended:
            continue
        if query.get("unsubscribed") == "only" and r.status != "unsubscribed":
            continue
        if query.get("unsubscribed") == "hide" and r.status == "unsubscribed":
            continue
        out.append(r.name)
    return out


READER_QUERIES: tuple[dict[str, str], ...] = (
    {}, {"q": "许昌市"}, {"q": "tcl"}, {"q": "TCL"}, {"q": "zhou.min@example.cn"},
    {"q": "ＡＢＣ"}, {"q": "ａｂｃ"}, {"q": "WANG_JG"}, {"q": "_"}, {"q": "%"},
    {"industry": "chemical"}, {"industry": "hair"}, {"group": "县区"}, {"group": "新名单"},
    {"channel": "wecom"}, {"channel": "email"}, {"status": "active"}, {"status": "inactive"},
    {"status": "unsubscribed"}, {"status": "paused"}, {"status": "email_suspended"},
    {"bounced": "1"}, {"unsubscribed": "only"}, {"unsubscribed": "hide"},
    {"industry": "food", "channel": "email", "status": "active", "q": "许昌"},
)


def feedback_matching(world: World, **query: str) -> list[str]:
    """The inbox's filters as a staff member understands them."""
    out = []
    for f in FEEDBACK:
        reader = BY_NAME[f.reader[0]] if f.reader else None
        if "issue" in query and int(query["issue"]) != (world.old if f.old else world.main):
            continue
        if "article" in query and (f.article is None or f.old
                                   or world.articles[f.article] != int(query["article"])):
            continue
        if "reader_id" in query and (reader is None
                                     or world.readers[reader.name] != int(query["reader_id"])):
            continue
        if "reader" in query:
            words = query["reader"].lower()
            texts = [f.sender or ""] + ([reader.name, reader.org, reader.email or "",
                                         reader.wecom or ""] if reader else [])
            if not any(words in t.lower() for t in texts):
                continue
        if "channel" in query and f.channel != query["channel"]:
            continue
        kinds = VOTE_KINDS if query.get("kind") == "votes" else (query.get("kind"),)
        if "kind" in query and f.kind not in kinds:
            continue
        if query.get("state") == "open" and f.handled or query.get("state") == "done" and not f.handled:
            continue
        out.append(f.key)
    return out


def feedback_queries(world: World) -> list[dict[str, str]]:
    return [
        {}, {"issue": str(world.main)}, {"issue": str(world.old)},
        {"issue": str(world.main), "article": str(world.articles[1])},
        {"reader": "张丽"}, {"reader": "WUGANG"}, {"reader": "example.gov.cn"}, {"reader": "ａｂｃ"},
        {"reader_id": str(world.readers["秦勇"])},
        {"channel": "email"}, {"channel": "wecom"}, {"channel": "web"},
        {"kind": "reply"}, {"kind": "votes"}, {"kind": "bounce"}, {"kind": "auto_reply"},
        {"state": "open"}, {"state": "done"},
        {"issue": str(world.main), "kind": "reply", "state": "open"},
    ]


# -- reading pages -------------------------------------------------------------------------------


def chinese(answer: Answer, where: str) -> str:
    assert answer.status == 200, (where, answer.status, answer.text[:2000])
    words = english_words(visible(answer.text))
    assert words == [], (where, words)
    return answer.text


def readers_total(page: str) -> int:
    found = re.search(r"共 (\d+) 位", page)
    assert found, page
    return int(found.group(1))


def listed_ids(page: str) -> list[int]:
    body = page.split("<tbody>", 1)[1] if "<tbody>" in page else ""
    return [int(n) for n in re.findall(r'<a href="/admin/readers/(\d+)">', body)]


def inbox_total(page: str) -> int:
    found = re.search(r"共 (\d+) 条", page)
    assert found, page
    return int(found.group(1))


def progress_counts(page: str) -> dict[str, list[int]]:
    rows = re.findall(r'<tr data-channel="([^"]+)">(.*?)</tr>', page, re.S)
    return {ch: [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', cells)]
            for ch, cells in rows}


def chart_rows(page: str, title: str) -> list[list[str]]:
    """The data table under the chart whose caption starts with `title`."""
    figure = page.split(f"<figcaption><strong>{title}", 1)[1].split("</figure>", 1)[0]
    body = figure.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [[unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


# -- the tests -------------------------------------------------------------------------------------


@pytest.fixture
def site(db_url, tmp_path) -> Iterator[Site]:
    with admin_site(db_url) as served:
        served.runtime.config.base_dir = tmp_path / "instance"  # var/uploads/ for imports
        yield served


def every_get(site: Site, world: World) -> dict[str, list[str]]:
    """Each GET route under /admin (as the route table writes it) → the addresses fetched."""
    main, old, draft = world.main, world.old, world.draft
    wang, cao = world.readers["王建国"], world.readers["曹阳"]
    fb = world.feedback
    readers = ["/admin/readers"] + [
        "/admin/readers?" + urlencode(q) for q in READER_QUERIES if q] + ["/admin/readers?page=2"]
    inbox = ["/admin/feedback?" + urlencode(q) for q in feedback_queries(world)] + [
        "/admin/feedback?issue=abc", "/admin/feedback?page=2"]
    return {
        "/admin/login": ["/admin/login"],
        "/admin/static/{name}": ["/admin/static/live.js"],
        "/admin": ["/admin"],
        "/admin/issues": ["/admin/issues"],
        "/admin/issues/new": ["/admin/issues/new"],
        "/admin/issues/{issue_id:int}": [f"/admin/issues/{i}" for i in (main, old, draft)],
        "/admin/issues/{issue_id:int}/progress": [f"/admin/issues/{i}/progress"
                                                  for i in (main, old, draft)],
        "/admin/issues/{issue_id:int}/delete": [f"/admin/issues/{i}/delete" for i in (draft, main)],
        "/admin/issues/{issue_id:int}/audience": [
            f"/admin/issues/{i}/audience" for i in (main, old, draft)] + [
            f"/admin/issues/{draft}/audience?page=2"],
        "/admin/issues/{issue_id:int}/preview": [
            f"/admin/issues/{main}/preview", f"/admin/issues/{main}/preview?reader={wang}",
            f"/admin/issues/{main}/preview?reader={cao}",
            f"/admin/issues/{main}/preview?" + urlencode({"q": "许昌市科技局"}),
            f"/admin/issues/{draft}/preview?" + urlencode({"q": "TCL"})],
        "/admin/issues/{issue_id:int}/preview/email": [
            f"/admin/issues/{main}/preview/email?reader={wang}",
            f"/admin/issues/{draft}/preview/email?reader={world.readers['赵志强']}"],
        "/admin/readers": readers,
        "/admin/readers/export": [
            "/admin/readers/export?format=csv", "/admin/readers/export?format=xlsx",
            "/admin/readers/export?" + urlencode({"format": "csv", "group": "县区"}),
            "/admin/readers/export?" + urlencode({"format": "xlsx", "status": "paused"})],
        "/admin/readers/import": ["/admin/readers/import"],
        "/admin/readers/new": ["/admin/readers/new"],
        "/admin/readers/{id:int}": [f"/admin/readers/{world.readers[n]}"
                                    for n in ("王建国", "张丽", "曹阳", "吴刚", "新读者01")],
        "/admin/readers/{id:int}/edit": [f"/admin/readers/{wang}/edit"],
        "/admin/readers/{id:int}/deactivate": [f"/admin/readers/{wang}/deactivate"],
        "/admin/readers/{id:int}/activate": [f"/admin/readers/{cao}/activate",
                                             f"/admin/readers/{world.readers['严红']}/activate"],
        "/admin/feedback": ["/admin/feedback", *inbox],
        "/admin/feedback/export": [
            "/admin/feedback/export?format=csv", "/admin/feedback/export?format=xlsx",
            f"/admin/feedback/export?format=csv&issue={main}&kind=reply"],
        "/admin/feedback/{feedback_id:int}": [f"/admin/feedback/{fb[k]}"
                                              for k in ("mail", "wecom", "card_vote", "bounce")],
        "/admin/feedback/{feedback_id:int}/raw": [f"/admin/feedback/{fb['mail']}/raw",
                                                  f"/admin/feedback/{fb['wecom']}/raw"],
        "/admin/reports": ["/admin/reports", "/admin/reports?page=2"],
        "/admin/reports/{issue_id:int}": [f"/admin/reports/{main}", f"/admin/reports/{main}?by=days",
                                          f"/admin/reports/{old}", f"/admin/reports/{draft}"],
        "/admin/reports/{issue_id:int}.csv": [f"/admin/reports/{main}.csv"],
        "/admin/staff": ["/admin/staff"],
        "/admin/staff/new": ["/admin/staff/new"],
        "/admin/staff/{id:int}": [f"/admin/staff/{world.zhang}", f"/admin/staff/{world.li}"],
        "/admin/account": ["/admin/account"],
    }


def test_every_page_answers_in_chinese(site: Site) -> None:
    world = build(site)
    admin = site.signed_in("zhang")
    pages = every_get(site, world)
    routes = {r.path for r in site.routes
              if "GET" in (r.methods or ()) and r.path.startswith("/admin")}
    assert routes - {"/admin/{rest:path}"} == set(pages), "a GET route this test does not fetch"
    assert all(isinstance(r, Guarded) for r in site.routes if r.path in pages
               and r.path not in ("/admin/login", "/admin/static/{name}")
               and "GET" in (r.methods or ()))
    for paths in pages.values():
        for path in paths:
            answer = site.get(path, admin)
            kind = answer.headers.get("content-type", "")
            if kind.startswith("text/html"):
                chinese(answer, path)
                continue
            assert answer.status == 200, (path, answer.status, answer.text[:500])
            if path.startswith("/admin/feedback/export"):
                # The rows themselves: tests/test_admin_feedback.py; here, that it answers.
                assert answer.headers["content-disposition"].startswith("attachment;")
                assert len(answer.body) > 100, path
            elif path.endswith("/raw"):
                assert answer.body in (REPLY_MAIL, WECOM_XML)
                assert answer.headers["content-disposition"].startswith("attachment;")
            elif "format=csv" in path:
                rows = list(csv.reader(io.StringIO(answer.text.lstrip("\ufeff"))))
                query = dict(parse_qsl(path.split("?")[1]))
                query.pop("format")
                expected = readers_matching(**query)
                assert [row[0] for row in rows[1:]] == expected, path
            elif "format=xlsx" in path:
                sheet = load_workbook(io.BytesIO(answer.body)).active
                assert sheet is not None
                names = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
                expected = readers_matching(**({"status": "paused"} if "paused" in path else {}))
                assert names == expected, path
            elif path.endswith(".csv"):
                assert "text/csv" in kind and "attachment;" in answer.headers["content-disposition"]
            else:
                assert "javascript" in kind, path

    # A number past what an id column holds (PostgreSQL's integer; SQLite's past 2**63)
    # names nothing: 404 on either database, never an error.
    for route in site.routes:
        if isinstance(route, Guarded) and ":int}" in route.path:
            for big in ("99999999999", "99999999999999999999"):
                path = re.sub(r"\{\w+:int\}", big, route.path)
                if "GET" in (route.methods or ()):
                    answer = site.get(path, admin)
                else:
                    answer = site.post(path, {"csrf": site.token(admin)}, admin)
                assert answer.status == 404, (route.path, big, answer.status)
                chinese(Answer(200, answer.headers, answer.body), path)


def test_the_figures_are_the_same_on_either_database(site: Site) -> None:
    world = build(site)
    admin = site.signed_in("zhang")

    # The deliveries the fan-out planned: the readers receiving then, by their channels.
    with site.runtime.sessions() as s:
        rows = s.execute(select(Reader.name, Delivery.channel).join(Reader)
                         .where(Delivery.issue_id == world.main)).all()
    assert sorted(tuple(r) for r in rows) == sorted(planned(SENT))

    # The live counts: by channel, in the order of the states, and the total.
    order = ("queued", "sending", "sent", "retry", "failed", "cancelled")
    expected_progress = {}
    for channel, word in (("email", "邮件"), ("wecom", "企业微信")):
        keys = [k for k in planned(SENT) if k[1] == channel]
        counts = [sum(1 for k in keys if outcome(k) == state) for state in order]
        expected_progress[word] = [*counts, len(keys)]
    fragment = site.get(f"/admin/issues/{world.main}/progress", admin).text
    assert progress_counts(fragment) == expected_progress
    assert "data-live-done" not in fragment  # rows are pending: live.js goes on
    page = chinese(site.get(f"/admin/issues/{world.main}", admin), "issue")
    assert progress_counts(page) == expected_progress
    failures = page.split('id="failures"')[1].split("</table>")[0]
    assert all(words in failures for words in REASON_WORDS)

    # The report: its headline, the timeline by 6 hours and by days, what came later.
    report = chinese(site.get(f"/admin/reports/{world.main}", admin), "report")
    assert f"<strong>{headline()}</strong>" in report
    opened = list(first_human(EVENTS).values())
    clicked = list(first_human(EVENTS, ("click",)).values())
    start = SENT.replace(minute=0)  # the hour of the first delivery sent (Beijing is +8 h)
    opens, later_opens = periods(opened, start, SIX_HOURS, 12)
    clicks, later_clicks = periods(clicked, start, SIX_HOURS, 12)
    labels = [f"{(start + i * SIX_HOURS + timedelta(hours=8)):%-m月%-d日 %H时}" for i in range(12)]
    assert chart_rows(report, "发出后的打开和点击") == [
        [label, str(o), str(c)] for label, o, c in zip(labels, opens, clicks, strict=True)]
    assert later_opens and f"另有 {later_opens} 份首次打开、{later_clicks} 份首次点击" in report
    by_days = chinese(site.get(f"/admin/reports/{world.main}?by=days", admin), "by days")
    midnight = datetime(2027, 1, 11, 16)  # 1月12日 00:00 in Beijing
    opens, _ = periods(opened, midnight, timedelta(days=1), 7)
    clicks, _ = periods(clicked, midnight, timedelta(days=1), 7)
    assert chart_rows(by_days, "发出后的打开和点击") == [
        [f"1月{12 + i}日", str(o), str(c)] for i, (o, c) in enumerate(zip(opens, clicks, strict=True))]

    # The same figures in the report's CSV (`dispatch report --csv`).
    sheet = site.get(f"/admin/reports/{world.main}.csv", admin).text.lstrip("\ufeff")
    cells = {row[0]: row[1] for row in csv.reader(io.StringIO(sheet)) if len(row) == 2}
    assert {k: cells.get(k) for k in summary()} == summary()

    # Per article: the deliveries that clicked it and read its page.
    reach = {title: [c, r] for title, c, r in chart_rows(report, "各文章的点击和阅读")}
    for i, title in enumerate(world.titles):
        clicked_it = {(e.reader, e.channel) for e in EVENTS
                      if e.article == i and e.kind == "click" and not e.machine}
        read_it = {(e.reader, e.channel) for e in EVENTS
                   if e.article == i and e.kind == "article_view" and not e.machine}
        assert reach[title] == [str(len(clicked_it)), str(len(read_it))], title

    # The trend across issues: open and click rates, oldest first.
    old_sent = planned(SENT_OLD)
    trend = chart_rows(chinese(site.get("/admin/reports", admin), "reports"), "各期的打开率和点击率")
    assert trend == [
        ["2026年第12期", percent(len(first_human(OLD_EVENTS)), len(old_sent)),
         percent(len(first_human(OLD_EVENTS, ("click",))), len(old_sent))],
        [world.title, percent(len(first_human(EVENTS)), len(main_sent())),
         percent(len(first_human(EVENTS, ("click",))), len(main_sent()))],
    ]

    # The readers list: how many each filter keeps, and the second page's rows.
    for query in READER_QUERIES:
        page = site.get("/admin/readers?" + urlencode(query), admin).text
        assert readers_total(page) == len(readers_matching(**query)), query
    second = site.get("/admin/readers?page=2", admin).text
    assert listed_ids(second) == sorted(world.readers.values())[50:]

    # The inbox: how many each filter keeps, newest first.
    for query in feedback_queries(world):
        page = site.get("/admin/feedback?" + urlencode(query), admin).text
        assert inbox_total(page) == len(feedback_matching(world, **query)), query
    page = site.get("/admin/feedback", admin).text
    shown = [int(n) for n in re.findall(r'<td style="white-space: nowrap;"><a href="/admin/feedback/(\d+)">',
                                        page)]
    newest_first = sorted(FEEDBACK, key=lambda f: (SENT_OLD if f.old else SENT)
                          + timedelta(hours=f.hours), reverse=True)
    assert shown == [world.feedback[f.key] for f in newest_first]


def _post(site: Site, cookie: str, path: str, fields: list[tuple[str, str]],
          form: str | None = None) -> Answer:
    token = form_token(site.get(form or path, cookie).text)
    return site.post(path, [("csrf", token), *fields], cookie)


def _followed(site: Site, cookie: str, answer: Answer, where: str) -> str:
    assert answer.status == 303, (where, answer.status, answer.text[:2000])
    return chinese(site.get(answer.headers["location"], cookie), where)


def test_the_main_forms_write_their_rows_with_who(site: Site) -> None:
    world = build(site)
    editor, admin = site.signed_in("li"), site.signed_in("zhang")
    li = world.li
    sessions = site.runtime.sessions

    def issue_changes(issue: int) -> list[tuple[str, int | None, int | None]]:
        with sessions() as s:
            return [(c.field, c.staff_id, c.article_id) for c in s.scalars(
                select(IssueChange).where(IssueChange.issue_id == issue).order_by(IssueChange.id))]

    # Tags of the draft's first article: the editor's, logged with the article.
    draft, article = world.draft, world.draft_articles[0]
    answer = _post(site, editor, f"/admin/issues/{draft}/articles/{article}/tags",
                   [("tag", "food"), ("tag", "hair"), ("action", "save")], f"/admin/issues/{draft}")
    _followed(site, editor, answer, "tags")
    with sessions() as s:
        tags = set(s.scalars(select(ArticleTag.industry).where(
            ArticleTag.article_id == article, ArticleTag.origin == "editor")))
    assert tags == {"food", "hair"}

    # Finalize it, then move its time.
    first = clock.utcnow().replace(second=0, microsecond=0) + timedelta(days=2)
    answer = _post(site, editor, f"/admin/issues/{draft}/finalize",
                   [("publish_at", clock.local_input(first))], f"/admin/issues/{draft}")
    _followed(site, editor, answer, "finalized")
    moved = first + timedelta(days=1, hours=2)
    answer = _post(site, editor, f"/admin/issues/{draft}/reschedule",
                   [("publish_at", clock.local_input(moved))], f"/admin/issues/{draft}")
    page = _followed(site, editor, answer, "rescheduled")
    assert clock.cn_time(moved) in page
    with sessions() as s:
        issue = s.get(Issue, draft)
        assert issue is not None and (issue.status, issue.publish_at) == ("finalized", moved)
    assert issue_changes(draft) == [("ingested", li, None), ("tags", li, article),
                                    ("finalized", li, None), ("publish_at", li, None)]
    scheduled = site.get("/admin/issues", editor).text
    assert clock.cn_time(moved) in scheduled

    # An upload, then deleted: the record of who deleted it outlives the issue.
    token = form_token(site.get("/admin/issues/new", editor).text)
    uploaded = site.post_file("/admin/issues/new", {"csrf": token}, "file", "第3期.md",
                              DRAFT_ISSUE.replace("第2期".encode(), "第3期".encode()), editor)
    _followed(site, editor, uploaded, "uploaded")
    third = int(re.search(r"/admin/issues/(\d+)", uploaded.headers["location"]).group(1))
    answer = _post(site, editor, f"/admin/issues/{third}/delete", [])
    assert answer.headers["location"] == "/admin/issues?done=deleted"
    _followed(site, editor, answer, "deleted")
    with sessions() as s:
        assert s.get(Issue, third) is None
        kept = s.execute(select(IssueChange.field, IssueChange.staff_id, IssueChange.old)
                         .where(IssueChange.issue_id.is_(None))).all()
    assert [tuple(k) for k in kept] == [("ingested", li, None),
                                        ("deleted", li, f"期刊 {third}《许昌竞争情报快递》")]

    # Retry the failures of the issue sent: queued again, the count said, the change kept.
    failed = [k for k in planned(SENT) if outcome(k) == "failed"]
    answer = _post(site, editor, f"/admin/issues/{world.main}/retry", [],
                   f"/admin/issues/{world.main}")
    page = _followed(site, editor, answer, "retried")
    assert f"{len(failed)} 个失败的投递已重新排队" in page
    with sessions() as s:
        states = dict(s.execute(select(Delivery.id, Delivery.state)
                                .where(Delivery.issue_id == world.main)).all())
    assert all(states[world.deliveries[k]] == "queued" for k in failed)
    assert issue_changes(world.main)[-1] == ("retried", li, None)
    progress = progress_counts(site.get(f"/admin/issues/{world.main}/progress", editor).text)
    assert [row[4] for row in progress.values()] == [0, 0]  # 失败

    # A reader added, edited, stopped: each change with who made it.
    fields = [("name", "钱多多"), ("organization", "许昌市税务局"), ("position", "科长"),
              ("group", "市直部门"), ("email", "Qian.DuoDuo@Example.gov.cn"),
              ("wecom_userid", "qian_dd"), ("industries", "food"), ("channels", "email"),
              ("channels", "wecom")]
    answer = _post(site, editor, "/admin/readers/new", fields)
    page = _followed(site, editor, answer, "added")
    qian = int(re.search(r"/admin/readers/(\d+)", answer.headers["location"]).group(1))
    assert "工作人员（李四）" in page
    edited = [(k, v) for k, v in fields if k != "industries"] + [
        ("industries", "food"), ("industries", "chemical")]
    _followed(site, editor, _post(site, editor, f"/admin/readers/{qian}/edit", edited), "edited")
    _followed(site, editor, _post(site, editor, f"/admin/readers/{qian}/deactivate", []),
              "deactivated")
    with sessions() as s:
        changes = s.execute(select(ReaderChange.field, ReaderChange.source, ReaderChange.staff_id)
                            .where(ReaderChange.reader_id == qian).order_by(ReaderChange.id)).all()
        assert s.get(Reader, qian).status == "inactive"
    assert [tuple(c) for c in changes] == [("created", "staff", li), ("industries", "staff", li),
                                           ("status", "staff", li)]
    # Found by either case of its address; counted among the stopped.
    for q in ("qian.duoduo", "QIAN.DUODUO@EXAMPLE.GOV.CN"):
        assert readers_total(site.get("/admin/readers?" + urlencode({"q": q}), editor).text) == 1
    inactive = readers_total(site.get("/admin/readers?status=inactive", editor).text)
    assert inactive == len(readers_matching(status="inactive")) + 1

    # Import: one new reader, one changed (李红梅's industries), one as she is.
    header = "姓名,单位,职务,分组,邮箱,企业微信账号,关注产业,接收方式\n"
    listed = (header + "马丽,许昌市商务局,,市直部门,mali@example.cn,,食品,\n"
              + "李红梅,许昌市人民政府,,市领导,lihongmei@example.gov.cn,,新一代信息技术、新材料,\n"
              + "何芳,许昌市商务局,,市直部门,hefang@example.gov.cn,,食品、发制品,\n")
    token = form_token(site.get("/admin/readers/import", editor).text)
    preview = site.post_file("/admin/readers/import", {"csrf": token}, "file", "名单.csv",
                             listed.encode("utf-8"), editor)
    text = chinese(preview, "import preview")

    def hidden(name: str) -> str:
        found = re.search(rf'name="{name}" value="([^"]*)"', text)
        assert found, text
        return unescape(found.group(1))

    confirm = site.post("/admin/readers/import/confirm", [
        ("csrf", form_token(text)), *((n, hidden(n)) for n in ("held", "name", "token", "digest"))],
        editor)
    assert confirm.status == 303 and confirm.headers["location"].endswith(
        "added=1&updated=1&unchanged=1"), confirm.text[:2000]
    _followed(site, editor, confirm, "imported")
    with sessions() as s:
        assert s.scalars(select(Reader.name).where(Reader.email == "mali@example.cn")).one() == "马丽"
        changes = s.execute(select(ReaderChange.field, ReaderChange.source, ReaderChange.staff_id,
                                   ReaderChange.new)
                            .where(ReaderChange.reader_id == world.readers["李红梅"])).all()
    assert [tuple(c) for c in changes] == [("created", "staff", world.zhang, None),
                                           ("industries", "import", li, "it,materials")]

    # Feedback marked handled: by whom, when (the site's clock).
    open_before = inbox_total(site.get("/admin/feedback?state=open", editor).text)
    marked = [world.feedback["wecom"], world.feedback["auto"]]
    answer = _post(site, editor, "/admin/feedback/handled",
                   [("ids", str(i)) for i in marked] + [("back", "/admin/feedback?state=open")],
                   "/admin/feedback?state=open")
    assert answer.headers["location"] == "/admin/feedback?state=open&done=2"
    assert inbox_total(_followed(site, editor, answer, "handled")) == open_before - 2
    with sessions() as s:
        rows = s.execute(select(Feedback.handled_by, Feedback.handled_at)
                         .where(Feedback.id.in_(marked))).all()
    assert [tuple(r) for r in rows] == [("李四（li）", NOW)] * 2

    # A staff account, added by an admin.
    answer = _post(site, admin, "/admin/staff/new", [
        ("name", "wang_wu"), ("display_name", "王五"), ("role", "editor"),
        ("password", "another horse 2"), ("password2", "another horse 2")])
    _followed(site, admin, answer, "staff added")
    with sessions() as s:
        staff = s.scalars(select(Staff).where(Staff.name == "wang_wu")).one()
        logged = s.execute(select(StaffChange.field, StaffChange.by_staff_id)
                           .where(StaffChange.staff_id == staff.id)).all()
        assert (staff.display_name, staff.role, staff.active) == ("王五", "editor", True)
        assert s.scalar(select(func.count()).select_from(Staff)) == 3
    assert ("created", world.zhang) in [tuple(r) for r in logged]



def while_another_adds_mali(site: Site, path: str, fields: list[tuple[str, str]],
                            cookie: str) -> Answer:
    """Post `fields` to `path` while another transaction has added 马丽 (mali@example.cn)
    and not yet committed: the post waits for it (PostgreSQL), then the other commits.
    The post's answer."""
    meanwhile = site.runtime.sessions()
    meanwhile.begin()
    meanwhile.add(Reader(name="马丽", email="mali@example.cn", follows_all=True))
    meanwhile.flush()
    answers: list[Answer] = []
    posting = threading.Thread(target=lambda: answers.append(site.post(path, fields, cookie)))
    posting.start()
    try:
        wait_until_blocked(site, posting, answers)
    finally:
        meanwhile.commit()
        meanwhile.close()
        posting.join(timeout=30)
    return answers[0]


def wait_until_blocked(site: Site, posting: threading.Thread, answers: list[Answer]) -> None:
    """Until the request `posting` sends waits for another transaction's lock (PostgreSQL
    tells), with a deadline; what the server was doing if it never does."""
    waiting = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
               "AND wait_event_type = 'Lock'")
    deadline = time.monotonic() + 20
    # Autocommit: PostgreSQL keeps one snapshot of pg_stat_activity per transaction, so a
    # watcher in one transaction would never see the request arrive.
    watcher = create_engine(site.runtime.engine.url, poolclass=NullPool,
                            isolation_level="AUTOCOMMIT")
    with watcher.connect() as conn:
        while not conn.execute(text(waiting)).scalar():
            assert posting.is_alive(), answers[0].text[:3000]
            assert time.monotonic() < deadline, ("it never waited for the other", [
                tuple(r) for r in conn.execute(text(
                    "SELECT datname, state, wait_event_type, wait_event, left(query, 80) "
                    "FROM pg_stat_activity WHERE backend_type = 'client backend'"))])
            time.sleep(0.01)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_import_meeting_a_reader_added_meanwhile_writes_nothing(site: Site) -> None:
    """Confirming an import while another transaction adds one of its readers: PostgreSQL
    makes the import wait for it, then refuses the row (SQLite's single writer gives the
    same refusal): the page says so in Chinese, and nothing of the list is written."""
    editor = site.signed_in("li")
    with transaction(site.runtime.sessions) as s:
        he = add_reader(s, _record(BY_NAME["何芳"]), by=None).id
    listed = ("姓名,单位,职务,分组,邮箱,企业微信账号,关注产业,接收方式\n"
              "马丽,许昌市商务局,,市直部门,mali@example.cn,,食品,\n"
              "何芳,许昌市商务局,,市直部门,hefang@example.gov.cn,,食品,\n")
    token = form_token(site.get("/admin/readers/import", editor).text)
    preview = chinese(site.post_file("/admin/readers/import", {"csrf": token}, "file",
                                     "名单.csv", listed.encode(), editor), "preview")
    fields = [("csrf", form_token(preview))] + [
        (n, unescape(re.search(rf'name="{n}" value="([^"]*)"', preview).group(1)))
        for n in ("held", "name", "token", "digest")]
    answer = while_another_adds_mali(site, "/admin/readers/import/confirm", fields, editor)
    assert "导入期间读者名单被改动了" in chinese(answer, "refused"), answer.text[:2000]
    with site.runtime.sessions() as s:
        assert s.scalars(select(Reader.follows_all).where(Reader.email == "mali@example.cn")).one()
        assert s.get(Reader, he).industries == ["food", "hair"]  # not updated either
        assert s.scalar(select(func.count()).select_from(ReaderChange).where(
            ReaderChange.source == "import")) == 0


def test_an_issue_with_a_title_too_long_to_keep_is_refused_alike(site: Site) -> None:
    """PostgreSQL refuses a text longer than its column where SQLite would keep it: the
    upload is refused on both, naming what is too long and where, and nothing is stored."""
    editor = site.signed_in("li")
    token = form_token(site.get("/admin/issues/new", editor).text)
    long_title = "许昌竞争情报快递" * 30  # 240 characters: the title column keeps 200
    cases = {
        "长标题.md": (f"---\ntitle: {long_title}\n---\n# 行业动态\n## 文章\n正文。\n", "标题"),
        "长文章标题.md": ("# 行业动态\n\n## " + "文" * 301 + "\n\n正文。\n", "第 3 行"),
        "长来源.txt": ("●行业动态\n标题\n正文。\n来源：" + "新" * 301 + "\n", "来源"),
    }
    for name, (body, named) in cases.items():
        answer = site.post_file("/admin/issues/new", {"csrf": token}, "file", name,
                                body.encode(), editor)
        assert answer.status == 400, (name, answer.status, answer.text[:2000])
        page = chinese(Answer(200, answer.headers, answer.body), name)
        assert "过长" in page and named in page, (name, visible(page))
    with site.runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Issue)) == 1  # the sample alone


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_reader_added_twice_at_once_is_refused_on_the_form(site: Site) -> None:
    """Two staff add the same address at the same moment: PostgreSQL makes the second
    wait for the first, whose reader then holds the address; the second form comes back
    with the field named, nothing saved (never an error page)."""
    editor = site.signed_in("li")
    token = form_token(site.get("/admin/readers/new", editor).text)
    fields = [("csrf", token), ("name", "马丽"), ("organization", "许昌市商务局"),
              ("email", "mali@example.cn"), ("follows_all", "1")]
    answer = while_another_adds_mali(site, "/admin/readers/new", fields, editor)
    page = chinese(answer, "refused")
    assert answer.status == 200 and "刚被另一位读者占用" in page, page[:2000]
    with site.runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Reader).where(
            Reader.email == "mali@example.cn")) == 1
