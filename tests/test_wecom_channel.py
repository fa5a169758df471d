"""The WeChat Work channel against the local stand-in server (dispatch.wecom_sim) on
loopback: what each answer means for the deliveries, shared calls, pacing, the duplicate
check, and one issue sent to both channels from the command line."""

from __future__ import annotations

import asyncio
import csv
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from dispatch.config import Config, WecomConfig
from dispatch.deliver.channel import Outcome, Outgoing
from dispatch.deliver.pacing import MemberWindow, quiet_wait
from dispatch.deliver.wecom import WecomChannel
from dispatch.deliver.wecom_api import WecomApi
from dispatch.errors import Refused
from dispatch.wecom_sim import WecomSim

SECRET = "agent-secret-0123456789abcdef"
CORP, AGENT = "wwcorp0002", 1000005
MEMBERS = {"zhangsan", "LiSi", "wangwu", "zhaoliu"}


@pytest.fixture(scope="module")
def served() -> Iterator[WecomSim]:
    server = WecomSim(corp_id=CORP, secret=SECRET, agent_id=AGENT, members=MEMBERS,
                      unlicensed={"zhaoliu"})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sim(served: WecomSim) -> WecomSim:
    served.reset()
    return served


def channel_for(sim: WecomSim, sessions, *, timeout: float = 5.0, agent: int = AGENT, **kw) -> WecomChannel:
    api = WecomApi(CORP, agent, SECRET, sessions, api_base_url=sim.base_url, timeout_seconds=timeout)
    kw.setdefault("rate_per_minute", 0)
    kw.setdefault("quiet_minutes", ())
    return WecomChannel(api, **kw)


def message(delivery_id: int, touser: str, text: str | None = None, agent: int = AGENT) -> Outgoing:
    """A body as render/wecom.py makes them: touser first, duplicate check on. With
    `text`, the same body for everyone (no per-reader link)."""
    body = {
        "touser": touser, "msgtype": "textcard", "agentid": agent,
        "textcard": {"title": "《许昌竞争情报快递》第3期", "description": text or f"第{delivery_id}份",
                     "url": "https://bulletin.example.gov.cn/v/" + ("issue" if text else f"tok{delivery_id}"), "btntxt": "阅读全文"},
        "safe": 0, "enable_duplicate_check": 1, "duplicate_check_interval": 14400,
    }
    return Outgoing(delivery_id, touser, json.dumps(body, ensure_ascii=False).encode())


def push(channel: WecomChannel, batch: list[Outgoing]) -> list[Outcome]:
    async def go() -> list[Outcome]:
        try:
            return await channel.push(batch)
        finally:
            await channel.close()
    outcomes = asyncio.run(go())
    assert [o.delivery_id for o in outcomes] == [m.delivery_id for m in batch]
    return outcomes


def kinds(outcomes: list[Outcome]) -> list[str]:
    return [o.kind for o in outcomes]


# -- answers ------------------------------------------------------------------------


def test_one_call_per_reader_each_sent_with_its_msgid(sim, sqlite_sessions):
    outcomes = push(channel_for(sim, sqlite_sessions), [message(1, "zhangsan"), message(2, "LiSi")])
    assert kinds(outcomes) == ["sent", "sent"]
    assert sim.send_calls == 2 and len({o.provider_id for o in outcomes}) == 2
    assert sim.delivered_to("lisi")[0]["textcard"]["description"] == "第2份"


def test_identical_bodies_share_a_call_and_only_named_users_fail(sim, sqlite_sessions):
    batch = [message(1, "zhangsan", "同一份"), message(2, "ghost", "同一份"),
             message(3, "zhaoliu", "同一份"), message(4, "LiSi", "同一份"), message(5, "wangwu", "另一份")]
    outcomes = push(channel_for(sim, sqlite_sessions), batch)
    assert kinds(outcomes) == ["sent", "permanent", "permanent", "sent", "sent"]
    assert "invaliduser" in outcomes[1].detail and "unlicenseduser" in outcomes[2].detail
    assert sim.send_calls == 2  # four readers in one call, one in another
    assert outcomes[0].provider_id == outcomes[3].provider_id != outcomes[4].provider_id
    assert sorted(d.member for d in sim.delivered) == ["lisi", "wangwu", "zhangsan"]


def test_a_call_takes_at_most_1000_userids(sim, sqlite_sessions):
    sim.members = None  # everyone exists
    try:
        batch = [message(i, f"u{i}", "同一份") for i in range(1, 1002)]
        outcomes = push(channel_for(sim, sqlite_sessions), batch)
    finally:
        sim.members = MEMBERS
    assert set(kinds(outcomes)) == {"sent"} and sim.send_calls == 2
    assert len(sim.delivered) == 1001


def test_81013_fails_the_calls_deliveries_permanently(sim, sqlite_sessions):
    outcomes = push(channel_for(sim, sqlite_sessions), [message(1, "ghost", "同"), message(2, "nobody", "同")])
    assert kinds(outcomes) == ["permanent", "permanent"] and "81013" in outcomes[0].detail


@pytest.mark.parametrize("fault", [45009, 45033, -1, 99999, "http500", "timeout"])
def test_limits_busy_5xx_and_timeouts_are_temporary(sim, sqlite_sessions, fault):
    if fault == "http500":
        sim.fail_http(500)
    elif fault == "timeout":
        sim.delay(0.6)
    else:
        sim.fail_next(fault)
    outcomes = push(channel_for(sim, sqlite_sessions, timeout=0.25), [message(1, "zhangsan")])
    assert kinds(outcomes) == ["temporary"]


def test_a_wrong_agent_is_temporary_with_an_error_for_the_operator(sim, sqlite_sessions, caplog):
    outcomes = push(channel_for(sim, sqlite_sessions, agent=42), [message(1, "zhangsan", agent=42), message(2, "LiSi", agent=42)])
    assert kinds(outcomes) == ["temporary", "temporary"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "agent_id" in errors[0].getMessage()  # once per push
    assert SECRET not in caplog.text


def test_a_wrong_secret_asks_for_a_token_once_per_push(sim, sqlite_sessions, caplog):
    api = WecomApi(CORP, AGENT, "not-" + SECRET, sqlite_sessions, api_base_url=sim.base_url)
    outcomes = push(WecomChannel(api, rate_per_minute=0, quiet_minutes=()),
                    [message(i, "zhangsan") for i in range(1, 7)])
    assert kinds(outcomes) == ["temporary"] * 6 and sim.token_requests == 1
    assert "DISPATCH_WECOM_SECRET" in outcomes[5].detail
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "40001" in errors[0] and SECRET not in caplog.text


def test_a_retried_call_does_not_deliver_twice(sim, sqlite_sessions):
    """The server took the call but its answer came too late: temporary; the retry (same
    body) is recognised by the duplicate check and answered ok, nothing delivered again."""
    sim.delay(0.6)
    first = push(channel_for(sim, sqlite_sessions, timeout=0.25), [message(1, "zhangsan")])
    assert kinds(first) == ["temporary"] and len(sim.delivered) == 1
    again = push(channel_for(sim, sqlite_sessions), [message(1, "zhangsan")])
    assert kinds(again) == ["sent"] and len(sim.delivered) == 1
    assert again[0].provider_id == sim.delivered[0].msgid


def test_incomplete_config_is_refused(sqlite_sessions):
    config = Config(wecom=WecomConfig(enabled=True, corp_id=CORP, agent_id=0))
    with pytest.raises(Refused) as caught:
        WecomChannel.from_config(config, sqlite_sessions)
    assert "DISPATCH_WECOM_SECRET" in str(caught.value) and "agent_id" in str(caught.value)
    assert "corp_id" not in str(caught.value)


# -- pacing ----------------------------------------------------------------------------

SH = timedelta(hours=8)  # Asia/Shanghai


def at(hh: int, mm: int, ss: float = 0) -> datetime:
    """A naive UTC time whose Shanghai clock reads hh:mm:ss."""
    local = datetime(2026, 3, 2, hh, mm, 0) + timedelta(seconds=ss)
    return local - SH


def test_quiet_minutes():
    quiet = (0, 30)
    assert quiet_wait(at(9, 15), quiet) == 0
    assert quiet_wait(at(9, 59, 59.5), quiet) == 0
    assert quiet_wait(at(10, 0, 0), quiet) == 60
    assert quiet_wait(at(10, 0, 45), quiet) == 15
    assert quiet_wait(at(10, 30, 10), quiet) == 50
    assert quiet_wait(at(23, 59, 30), (59, 0, 1)) == 150  # across midnight
    assert quiet_wait(datetime(2026, 3, 2, 2, 0, 20, tzinfo=UTC), quiet) == 40  # aware
    assert quiet_wait(at(10, 0), ()) == 0


def test_member_window():
    window = MemberWindow(per_minute=30, per_hour=1000)
    assert all(window.admit("ZhangSan", 1000 + i) for i in range(30))
    assert not window.admit("zhangsan", 1029.5)  # 31st within the minute; same member by case
    assert window.admit("lisi", 1029.5)  # others are not held up
    assert window.admit("zhangsan", 1060.5)  # the first has left the minute
    t = 2000.0
    admitted = 0
    for _ in range(1100):  # 25 a minute: only the hourly limit bites
        t += 2.4
        admitted += window.admit("wangwu", t)
    assert admitted == 1000
    assert window.admit("wangwu", t + 3600)
    window.forget_idle(t + 2 * 3600)
    assert window._sent == {}


def test_channel_waits_out_a_quiet_minute(sim, sqlite_sessions):
    now = [at(10, 30, 20)]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += timedelta(seconds=seconds)

    channel = channel_for(sim, sqlite_sessions, quiet_minutes=(0, 30), now=lambda: now[0], sleep=sleep)
    assert kinds(push(channel, [message(1, "zhangsan")])) == ["sent"]
    assert slept == [40.0]


def test_channel_keeps_under_the_member_limit_the_server_enforces(sim, sqlite_sessions):
    """31 messages to one member in a minute: the server would drop one silently; the
    channel sends 30 and keeps the last for later."""
    batch = [message(i, "wangwu") for i in range(1, 32)]
    outcomes = push(channel_for(sim, sqlite_sessions, monotonic=lambda: 5000.0), batch)
    assert kinds(outcomes) == ["sent"] * 30 + ["temporary"]
    assert "member limit" in outcomes[-1].detail
    assert len(sim.delivered) == 30 and not sim.dropped
    # Without the window, the server would have answered ok and dropped it.
    unpaced = channel_for(sim, sqlite_sessions, window=MemberWindow(per_minute=100))
    assert kinds(push(unpaced, [message(99, "wangwu")])) == ["sent"]
    assert len(sim.dropped) == 1


# -- end to end ----------------------------------------------------------------------


def test_an_issue_goes_out_on_both_channels(dispatch_sqlite, mail, sim, monkeypatch):
    from conftest import SAMPLE_READERS
    from sent_issue import send_sample

    with dispatch_sqlite.config.open("a", encoding="utf-8") as f:
        f.write(f'[wecom]\nenabled = true\ncorp_id = "{CORP}"\nagent_id = {AGENT}\n'
                f'api_base_url = "{sim.base_url}"\nrate_per_minute = 0\nquiet_minutes = []\n')
    # Every reader of the sample with a userid is a member, but one who left the corp.
    with SAMPLE_READERS.open(encoding="utf-8-sig", newline="") as f:
        userids = {row["企业微信账号"] for row in csv.DictReader(f) if row["企业微信账号"]}
    sim.members = userids - {"jt_luoxiaojun"}
    sim.unlicensed = set()
    try:
        monkeypatch.setenv("DISPATCH_WECOM_SECRET", SECRET)
        issue = send_sample(dispatch_sqlite, mail)
        data = json.loads(dispatch_sqlite.ok("status", str(issue), "--json"))
        shown = dispatch_sqlite.ok("status", str(issue))
    finally:
        sim.members, sim.unlicensed = MEMBERS, {"zhaoliu"}
    assert data["status"] == "sent", data
    assert data["counts"]["wecom"]["sent"] >= 1 and data["counts"]["email"]["sent"] >= 1
    assert data["pending"] == 0 and data["counts"]["wecom"]["failed"] == 1
    [failure] = data["failures"]
    # Alone in its call, the one invalid receiver is all of them: 81013, not invaliduser.
    assert failure["channel"] == "wecom" and failure["reason"].startswith("wecom error: 81013")
    # Staff read why, in Chinese (in a table that wraps it: compared without the rules).
    squeezed = "".join(shown.replace("│", "").split())
    assert "企业微信接口返回错误81013：接收人全部无效或无权限" in squeezed, shown
    assert len(sim.delivered) == data["counts"]["wecom"]["sent"]
    body = sim.delivered_to("ZhaoZhiQiang")[0]  # a WeChat Work-only reader of the sample
    assert body["agentid"] == AGENT and body["msgtype"] == "news"
    assert len(mail.accepted) == data["counts"]["email"]["sent"]
    # Without the secret, WeChat Work can't send: refused before anything is queued.
    monkeypatch.delenv("DISPATCH_WECOM_SECRET")
    r = dispatch_sqlite("send", str(issue), "--wait")
    assert r.exit_code == 1 and "DISPATCH_WECOM_SECRET" in r.stderr


def test_wecom_sim_command_refuses_without_secret_or_with_a_busy_port(dispatch_sqlite, sim, monkeypatch):
    monkeypatch.delenv("DISPATCH_WECOM_SECRET", raising=False)
    r = dispatch_sqlite("wecom-sim", "--listen", "127.0.0.1:0")
    assert r.exit_code == 1 and "DISPATCH_WECOM_SECRET" in r.stderr
    monkeypatch.setenv("DISPATCH_WECOM_SECRET", SECRET)
    busy = sim.base_url.removeprefix("http://")
    r = dispatch_sqlite("wecom-sim", "--listen", busy)
    assert r.exit_code == 1 and "监听不了" in r.stderr and SECRET not in r.stderr + r.stdout
