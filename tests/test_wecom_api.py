"""The WeChat Work client wrapper (wechatpy underneath) against the local stand-in server:
the token shared through the database, refreshed before expiry and once on refusal, and
errors that never carry the secret or a token."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest

from dispatch.clock import utcnow
from dispatch.db.models import WecomToken
from dispatch.deliver.wecom_api import WecomApi, WecomError, WecomTimeout, WecomUnreachable
from dispatch.wecom_sim import WecomSim

SECRET = "s3cr3t-Secret-of-the-agent-0123456789"
CORP, AGENT = "wwcorp0001", 1000002


@pytest.fixture(scope="module")
def served() -> Iterator[WecomSim]:
    server = WecomSim(corp_id=CORP, secret=SECRET, agent_id=AGENT, members={"zhangsan", "LiSi"})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sim(served: WecomSim) -> WecomSim:
    served.reset()
    return served


def api_for(sim: WecomSim, sessions, **kw) -> WecomApi:
    kw.setdefault("timeout_seconds", 5.0)
    return WecomApi(CORP, AGENT, kw.pop("secret", SECRET), sessions,
                    api_base_url=sim.base_url, **kw)


def body(touser: str, text: str = "第1期") -> dict[str, object]:
    return {"touser": touser, "msgtype": "text", "agentid": AGENT, "text": {"content": text}}


def run(coro):
    return asyncio.run(coro)


def test_token_is_fetched_once_and_shared_through_the_database(sim, sessions):
    """Two instances (two processes) on one database: concurrent senders of the first
    fetch once, the second finds the token in the database."""
    async def go():
        a, b = api_for(sim, sessions), api_for(sim, sessions)
        await asyncio.gather(*(a.send(body("zhangsan", f"a{i}")) for i in range(4)))
        await asyncio.gather(*(x.send(body("zhangsan", f"{i}")) for i in range(2) for x in (a, b)))
        assert await a.access_token() == await b.access_token()
        await a.close()
        await b.close()
    run(go())
    assert sim.token_requests == 1
    assert len(sim.delivered) == 8
    with sessions() as s:
        (row,) = s.query(WecomToken).all()
        assert row.app == f"{CORP}:{AGENT}" and SECRET not in row.app
        assert row.expires_at - row.fetched_at == timedelta(seconds=7200)


def test_token_is_refreshed_before_it_expires(sim, sqlite_sessions):
    now = [utcnow()]
    api = api_for(sim, sqlite_sessions, now=lambda: now[0])
    first = run(api.access_token())
    now[0] += timedelta(seconds=7200 - 301)  # still 5 min 1 s to go: kept
    assert run(api.access_token()) == first and sim.token_requests == 1
    now[0] += timedelta(seconds=2)  # inside the margin: a new one is asked for
    run(api.access_token())
    assert sim.token_requests == 2


@pytest.mark.parametrize("how", ["expired", "40014"])
def test_a_refused_token_is_refreshed_once_and_the_call_retried(sim, sqlite_sessions, how):
    api = api_for(sim, sqlite_sessions)
    run(api.access_token())
    if how == "expired":
        sim.expire_tokens()  # 42001
    else:
        sim.fail_next(40014)
    answer = run(api.send(body("zhangsan")))
    assert answer["errcode"] == 0 and answer["msgid"]
    assert sim.token_requests == 2 and sim.send_calls == 2
    assert len(sim.delivered) == 1


def test_no_refresh_loop_when_the_fresh_token_is_refused_too(sim, sqlite_sessions):
    api = api_for(sim, sqlite_sessions)
    sim.fail_next(40014, times=5)
    with pytest.raises(WecomError) as caught:
        run(api.send(body("zhangsan")))
    assert caught.value.errcode == 40014
    assert sim.token_requests == 2 and sim.send_calls == 2  # one refresh, one retry
    assert not sim.delivered


@pytest.mark.parametrize(("field", "errcode"), [("secret", 40001), ("corp", 40013)])
def test_wrong_credentials_are_an_error_without_retry_nor_secret(sim, sqlite_sessions, field, errcode, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + SECRET
    api = (api_for(sim, sqlite_sessions, secret=wrong) if field == "secret"
           else WecomApi("wwother", AGENT, SECRET, sqlite_sessions, api_base_url=sim.base_url))
    with pytest.raises(WecomError) as caught:
        run(api.send(body("zhangsan")))
    assert caught.value.errcode == errcode
    assert sim.token_requests == 1 and sim.send_calls == 0
    assert SECRET not in str(caught.value) and SECRET not in caplog.text


@pytest.mark.parametrize("errcode", [45009, 45033, -1])
def test_limits_and_busy_are_errors_with_their_code(sim, sqlite_sessions, errcode):
    api = api_for(sim, sqlite_sessions)
    sim.fail_next(errcode)
    with pytest.raises(WecomError) as caught:
        run(api.send(body("zhangsan")))
    assert caught.value.errcode == errcode and sim.send_calls == 1  # 45009: no retry either


def test_http_500_is_an_error_without_errcode(sim, sqlite_sessions):
    api = api_for(sim, sqlite_sessions)
    sim.fail_http(500)
    with pytest.raises(WecomError) as caught:
        run(api.send(body("zhangsan")))
    assert caught.value.errcode is None and "HTTP 500" in str(caught.value)


def test_81013_keeps_the_answer(sim, sqlite_sessions):
    with pytest.raises(WecomError) as caught:
        run(api_for(sim, sqlite_sessions).send(body("nobody|ghost")))
    assert caught.value.errcode == 81013
    assert caught.value.result["invaliduser"] == "nobody|ghost"


def test_timeout_during_gettoken_hides_secret(sim, sqlite_sessions, caplog):
    caplog.set_level(logging.DEBUG)
    sim.delay(0.6, endpoint="gettoken")
    api = api_for(sim, sqlite_sessions, timeout_seconds=0.2)
    with pytest.raises(WecomTimeout) as caught:
        run(api.access_token())
    assert isinstance(caught.value, TimeoutError)
    assert SECRET not in str(caught.value) and SECRET not in caplog.text
    assert "gettoken" in str(caught.value)


def test_timeout_during_send_hides_token(sim, sqlite_sessions, caplog):
    caplog.set_level(logging.DEBUG)
    api = api_for(sim, sqlite_sessions, timeout_seconds=0.2)
    token = run(api.access_token())
    sim.delay(0.6)
    with pytest.raises(WecomTimeout) as caught:
        run(api.send(body("zhangsan")))
    assert token not in str(caught.value) and token not in caplog.text
    assert SECRET not in caplog.text


def test_unreachable_server_hides_secret(sqlite_sessions, caplog):
    caplog.set_level(logging.DEBUG)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = WecomApi(CORP, AGENT, SECRET, sqlite_sessions, api_base_url=f"http://127.0.0.1:{port}",
                   timeout_seconds=2)
    with pytest.raises(WecomUnreachable) as caught:
        run(api.access_token())
    assert isinstance(caught.value, ConnectionError)
    text = f"{caught.value}|{caught.value!r}|{caught.value.__context__ if not caught.value.__suppress_context__ else ''}"
    assert SECRET not in text and SECRET not in caplog.text
    assert "corpsecret=***" in caplog.text or "corpsecret" not in caplog.text
    assert SECRET not in repr(api)


def test_send_text(sim, sqlite_sessions):
    answer = run(api_for(sim, sqlite_sessions).send_text("LiSi", "已退订"))
    assert answer["errcode"] == 0
    assert sim.delivered_to("lisi")[0]["text"] == {"content": "已退订"}


def test_a_pressed_cards_button_is_replaced_once_per_response_code(sim, sqlite_sessions):
    api = api_for(sim, sqlite_sessions)
    assert run(api.update_card_button("LiSi", "code-1", "已反馈：有用"))["errcode"] == 0
    assert sim.card_updates == [("LiSi", "code-1", "已反馈：有用")]
    # The documentation: a response code is good for one use.
    with pytest.raises(WecomError) as caught:
        run(api.update_card_button("LiSi", "code-1", "已反馈：没用"))
    assert caught.value.errcode == 40029 and len(sim.card_updates) == 1
