"""The WeChat Work callback against the real app on a loopback uvicorn: requests built as
WeChat Work's server builds them (tests/wecom_crypto.py, written from the documentation,
not wechatpy), and what staff then see in `dispatch feedback list` and `dispatch report`."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from conftest import Dispatch
from sent_issue import Recorder, send_sample
from served import Answer, request, serve
from smtp_servers import MailServer
from sqlalchemy import func, select
from wecom_crypto import Encryptor, new_aes_key

from dispatch.clock import utcnow
from dispatch.config import load
from dispatch.db.models import Delivery, Feedback, Reader, ReaderChange, WecomInbound
from dispatch.db.session import transaction
from dispatch.deliver.wecom_api import WecomApi
from dispatch.errors import Refused
from dispatch.feedback.wecom_inbound import CONFIRM_WINDOW, Place, parse, store
from dispatch.runtime import Runtime
from dispatch.web import wecom_callback
from dispatch.web.app import create_app
from dispatch.wecom_sim import WecomSim

CORP = "ww1234567890abcdef"
SECRET = "the-agents-secret-0123456789"
TOKEN = "QDG6eK"
PATH = "/wecom/callback"


@dataclass
class Replies:
    """What the service's replier (a real WecomApi) sent readers, as the WeChat Work
    stand-in received it: texts, and cards whose buttons were replaced."""

    sim: WecomSim

    @property
    def sent(self) -> list[tuple[str, str]]:
        return [(d.member, d.body["text"]["content"]) for d in list(self.sim.delivered)
                if d.body.get("msgtype") == "text"]

    def wait_for(self, count: int) -> list[tuple[str, str]]:
        """The texts, once there are `count` of them (they go out after the answer)."""
        deadline = time.monotonic() + 10
        while len(self.sent) < count:
            assert time.monotonic() < deadline, self.sent
            time.sleep(0.01)
        return self.sent

    def cards(self, count: int) -> list[tuple[str, str, str]]:
        deadline = time.monotonic() + 10
        while len(self.sim.card_updates) < count:
            assert time.monotonic() < deadline, self.sim.card_updates
            time.sleep(0.01)
        return list(self.sim.card_updates)


@dataclass
class World:
    dispatch: Dispatch
    runtime: Runtime
    base: str
    enc: Encryptor
    issue: int
    replies: Replies
    msg_ids: Iterator[int]

    def post(self, xml: str, *, timestamp: int | None = None, corp: str | None = None,
             to_user: str | None = None, signature: str | None = None,
             body: bytes | None = None, cipher: str | None = None) -> Answer:
        """`xml` as WeChat Work sends it; or, signed as it should be, another `cipher`."""
        ts = str(timestamp if timestamp is not None else int(time.time()))
        nonce = "1372623149"
        cipher = cipher or self.enc.encrypt(xml.encode("utf-8"), corp)
        query = urlencode({"msg_signature": signature or self.enc.signature(ts, nonce, cipher),
                           "timestamp": ts, "nonce": nonce})
        data = body if body is not None else self.enc.body(cipher, to_user)
        return request(self.base, "POST", f"{PATH}?{query}", data, {"Content-Type": "text/xml"})

    def text_xml(self, userid: str, content: str, msg_id: int | None = None) -> str:
        return (f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName>"
                f"<FromUserName><![CDATA[{userid}]]></FromUserName>"
                f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id or next(self.msg_ids)}</MsgId>"
                f"<AgentID>1000002</AgentID></xml>")

    def text(self, userid: str, content: str, msg_id: int | None = None) -> tuple[str, Answer]:
        xml = self.text_xml(userid, content, msg_id)
        return xml, self.post(xml)

    def card_press(self, userid: str, task_id: str, key: str) -> Answer:
        return self.post(
            f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName>"
            f"<FromUserName><![CDATA[{userid}]]></FromUserName>"
            f"<CreateTime>{next(self.msg_ids)}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[template_card_event]]></Event><EventKey><![CDATA[{key}]]></EventKey>"
            f"<TaskId><![CDATA[{task_id}]]></TaskId><CardType><![CDATA[button_interaction]]></CardType>"
            f"<ResponseCode><![CDATA[rc{next(self.msg_ids)}]]></ResponseCode>"
            "<AgentID>1000002</AgentID></xml>"
        )

    def token(self, name: str) -> str:
        with self.runtime.sessions() as s:
            token = s.scalar(select(Delivery.token).join(Reader, Reader.id == Delivery.reader_id)
                             .where(Reader.name == name, Delivery.channel == "wecom",
                                    Delivery.issue_id == self.issue))
        assert token
        return token

    def counts(self) -> tuple[int, int, int]:
        with self.runtime.sessions() as s:
            return (s.scalar(select(func.count()).select_from(WecomInbound)) or 0,
                    s.scalar(select(func.count()).select_from(Feedback)) or 0,
                    s.scalar(select(func.count()).select_from(ReaderChange)) or 0)

    def feedback_list(self) -> list[dict]:
        return json.loads(self.dispatch.ok("feedback", "list", "--json"))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("wecom")
    dispatch = Dispatch(home, f"sqlite:///{home / 'dispatch.db'}")
    with MailServer() as server:
        issue = send_sample(dispatch, server)
    # WeChat Work copies marked sent as the channel would (the channel is helper A's).
    rec = Recorder(dispatch.db_url)
    for name in ("王建国", "李红梅", "赵志强"):
        rec.set_delivery(rec.delivery(issue, name, "wecom"), state="sent", sent_at=utcnow())
    rec.close()
    with dispatch.config.open("a", encoding="utf-8") as f:
        f.write(f'[wecom]\nenabled = true\ncorp_id = "{CORP}"\nagent_id = 1000002\n')
    enc = Encryptor(TOKEN, new_aes_key(), CORP)
    env = {"DISPATCH_WECOM_TOKEN": enc.token, "DISPATCH_WECOM_AES_KEY": enc.aes_key}
    runtime = Runtime(load(dispatch.config, env))
    sim = WecomSim(corp_id=CORP, secret=SECRET, agent_id=1000002)
    sim.start()
    # The replier `dispatch run` gives the callback: the real client, here against the
    # stand-in.
    replier = WecomApi(CORP, 1000002, SECRET, runtime.sessions, api_base_url=sim.base_url)
    try:
        with serve(create_app(runtime, wecom_replier=replier)) as base:
            yield World(dispatch, runtime, base, enc, issue, Replies(sim),
                        iter(range(10**15, 10**16)))
    finally:
        sim.stop()
        runtime.engine.dispose()


def test_url_verification_answers_the_echostr(world):
    ts, nonce = str(int(time.time())), "5678"
    echo = world.enc.encrypt(b"8730219870413975823")
    query = {"msg_signature": world.enc.signature(ts, nonce, echo), "timestamp": ts,
             "nonce": nonce, "echostr": echo}
    answer = request(world.base, "GET", f"{PATH}?{urlencode(query)}")
    assert (answer.status, answer.body) == (200, b"8730219870413975823")
    assert answer.headers["content-type"].startswith("text/plain")
    query["msg_signature"] = "0" * 40
    assert request(world.base, "GET", f"{PATH}?{urlencode(query)}").status == 403


def test_text_is_feedback_of_the_reader_and_latest_issue_once(world):
    before = world.counts()
    xml, answer = world.text("wangjianguo", "这期关于发制品的分析很有用，能否多写一些？", msg_id=7001)
    assert (answer.status, answer.body) == (200, b"")
    [row] = [r for r in world.feedback_list() if r["channel"] == "wecom" and r["kind"] == "reply"
             and r["text"].startswith("这期关于发制品")]
    assert row["reader"]["name"] == "王建国" and row["issue"] == world.issue
    # A replay (WeChat Work retries after 5 s without an answer) stores nothing new.
    again = world.post(xml)
    assert (again.status, again.body) == (200, b"")
    assert world.counts() == (before[0] + 1, before[1] + 1, before[2])


def test_text_from_an_unknown_member_is_kept_for_staff(world):
    world.text("zhangsan_new", "请把我加入发送名单")
    [row] = [r for r in world.feedback_list() if r["text"] == "请把我加入发送名单"]
    assert row["reader"] is None and row["sender"] == "zhangsan_new" and row["issue"] is None


def test_refused_requests_store_nothing(world):
    before = world.counts()
    xml = (f"<xml><ToUserName>{CORP}</ToUserName><FromUserName>WangJianGuo</FromUserName>"
           "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content>"
           "<MsgId>9001</MsgId></xml>")
    assert world.post(xml, signature="0" * 40).status == 403
    assert world.post(xml, corp="wwsomeoneelse0000").status == 403  # inside the ciphertext
    assert world.post(xml, to_user="wwsomeoneelse0000").status == 403  # the outer ToUserName
    assert world.post(xml, timestamp=int(time.time()) - 301).status == 403
    assert world.post(xml, timestamp=int(time.time()) + 301).status == 403
    doctype = b'<!DOCTYPE xml [<!ENTITY e "x">]><xml><Encrypt>&e;</Encrypt></xml>'
    assert world.post(xml, body=doctype).status == 400
    # Signed right, but no ciphertext of ours: bad base64, a length AES refuses, garbage
    # that decrypts to nonsense (padding, length, corp id): refused, never a 500.
    for cipher in ("not base64 at all!", "QUJD", base64.b64encode(bytes(range(64))).decode()):
        assert world.post(xml, cipher=cipher).status == 403
    assert world.post(xml, body=b"<xml><Encrypt>QUJD</Encrypt></xml>").status == 403  # signature
    assert world.post(xml, body=b"<xml>" + b"x" * 70_000 + b"</xml>").status == 413
    assert world.counts() == before


def test_card_press_is_a_vote_on_the_issue_and_a_second_changes_it(world):
    token = world.token("王建国")
    cards = len(world.replies.sim.card_updates)
    assert world.card_press("WangJianGuo", token, "useful").status == 200
    report = json.loads(world.dispatch.ok("report", str(world.issue), "--json"))
    assert report["issue_votes"] == {"useful": 1, "not_useful": 0}
    # The reader's card says what was recorded, in place of its buttons.
    (member, _code, shown) = world.replies.cards(cards + 1)[cards]
    assert (member.lower(), shown) == ("wangjianguo", "已反馈：有用")
    assert world.card_press("WangJianGuo", token, "not_useful").status == 200
    report = json.loads(world.dispatch.ok("report", str(world.issue), "--json"))
    assert report["issue_votes"] == {"useful": 0, "not_useful": 1}
    # Another member pressing with this token (or a key that is no vote) counts nothing.
    world.card_press("LiHongMei", token, "useful")
    world.card_press("WangJianGuo", token, "maybe")
    report = json.loads(world.dispatch.ok("report", str(world.issue), "--json"))
    assert report["issue_votes"] == {"useful": 0, "not_useful": 1}
    [vote] = [r for r in world.feedback_list() if r["kind"] in ("useful", "not_useful")
              and r["channel"] == "wecom"]
    assert vote["article"] is None and vote["reader"]["name"] == "王建国"
    listed = world.dispatch.ok("feedback", "list", "--kind", "投票")
    assert "（整期）" in listed


def test_unsubscribe_asks_then_confirmation_removes_wecom(world):
    sent = len(world.replies.sent)
    world.text("LiHongMei", " ＴＤ ")
    [(to, ask)] = world.replies.wait_for(sent + 1)[sent:]
    assert to.lower() == "lihongmei" and "确认退订" in ask
    changes = world.counts()[2]
    world.text("LiHongMei", "确认退订。")
    [(to, done)] = world.replies.wait_for(sent + 2)[sent + 1:]
    assert "已为您退订企业微信推送" in done and "/p/" in done
    with world.runtime.sessions() as s:
        reader = s.scalar(select(Reader).where(Reader.name == "李红梅"))
        assert reader.channels == ["email"] and reader.status == "active"
        change = s.scalars(select(ReaderChange).where(ReaderChange.reader_id == reader.id)
                           .order_by(ReaderChange.id.desc())).first()
        assert (change.field, change.old, change.new, change.source) == (
            "channels", "email,wecom", "email", "wecom")
    assert world.counts()[2] == changes + 1


def test_confirming_when_wecom_is_the_only_channel_unsubscribes(world):
    sent = len(world.replies.sent)
    world.text("ZhaoZhiQiang", "取消订阅")
    world.replies.wait_for(sent + 1)
    world.text("ZhaoZhiQiang", "确认退订")
    world.replies.wait_for(sent + 2)
    with world.runtime.sessions() as s:
        reader = s.scalar(select(Reader).where(Reader.name == "赵志强"))
        assert reader.status == "unsubscribed"


def test_confirmation_without_a_request_changes_nothing(world):
    sent, changes = len(world.replies.sent), world.counts()[2]
    world.text("WangJianGuo", "确认退订")
    [(_, reply)] = world.replies.wait_for(sent + 1)[sent:]
    assert "没有找到" in reply and world.counts()[2] == changes


def test_confirmation_counts_within_thirty_minutes_only(world):
    """The window, with the clock moved on (store() is what the callback calls)."""
    world.text("WuHaiTao", "退订")
    confirm = parse(world.text_xml("WuHaiTao", "确认退订").encode())
    place = Place(world.runtime.config.web.base_url, "example.gov.cn")
    with transaction(world.runtime.sessions) as s:
        later = utcnow() + CONFIRM_WINDOW + timedelta(minutes=1)
        assert store(s, confirm, place, now=later).outcome == "no_pending"
    with world.runtime.sessions() as s:
        assert "wecom" in s.scalar(select(Reader).where(Reader.name == "吴海涛")).channels


def test_unknown_events_are_accepted_and_ignored(world):
    inbound, feedback, changes = world.counts()
    answer = world.post(
        f"<xml><ToUserName>{CORP}</ToUserName><FromUserName>WangJianGuo</FromUserName>"
        "<CreateTime>1408091189</CreateTime><MsgType>event</MsgType>"
        "<Event>enter_agent</Event><EventKey></EventKey><AgentID>1000002</AgentID></xml>")
    assert (answer.status, answer.body) == (200, b"")
    assert world.counts() == (inbound + 1, feedback, changes)
    # A text to another app of the corp (signed with the same settings): not ours.
    other = world.text_xml("wangjianguo", "给另一个应用的消息").replace(
        "<AgentID>1000002</AgentID>", "<AgentID>1000003</AgentID>")
    answer = world.post(other)
    assert (answer.status, answer.body) == (200, b"")
    assert world.counts() == (inbound + 1, feedback, changes)


def test_absent_unless_configured(tmp_path):
    dispatch = Dispatch(tmp_path, f"sqlite:///{tmp_path / 'd.db'}")
    runtime = Runtime(load(dispatch.config, {}))
    try:
        with serve(create_app(runtime)) as base:
            assert request(base, "GET", f"{PATH}?echostr=x").status == 404
            assert request(base, "POST", PATH, b"<xml/>").status == 404
    finally:
        runtime.engine.dispose()


# The last: 43 characters of base64 but padded, so 31 bytes (a fixed value: test ids are
# the same in every process that collects them).
@pytest.mark.parametrize("bad", ["short", "!" * 43, "A" * 42 + "="])
def test_a_key_that_is_no_encoding_aes_key_is_refused_by_name(tmp_path, bad):
    dispatch = Dispatch(tmp_path, f"sqlite:///{tmp_path / 'd.db'}")
    with dispatch.config.open("a", encoding="utf-8") as f:
        f.write(f'[wecom]\nenabled = true\ncorp_id = "{CORP}"\n')
    env = {"DISPATCH_WECOM_TOKEN": TOKEN, "DISPATCH_WECOM_AES_KEY": bad}
    with pytest.raises(Refused) as refused:
        wecom_callback.routes(Runtime(load(dispatch.config, env)))
    assert "DISPATCH_WECOM_AES_KEY" in str(refused.value) and bad not in str(refused.value)
