"""WeChat Work without personal links (`[wecom] personal_links = false`): readers of one
variant get the same message in shared message/send calls, its links lead to the issue's
own pages (/i/KEY), which carry nothing of a delivery; template_card is refused."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from dispatch.config import load
from dispatch.db.models import Article, Delivery, Issue, Section
from dispatch.render.wecom import DESCRIPTION_MAX_BYTES, MARKDOWN_MAX_BYTES, render_variant
from dispatch.runtime import Runtime
from dispatch.track.links import IssueLinks
from dispatch.track.tokens import new_token
from dispatch.web.app import create_app
from dispatch.wecom_sim import WecomSim

SECRET = "agent-secret-links-off-0123456789"
CORP, AGENT = "wwcorp0011", 1000011
KEY_PATH = re.compile(r"/i/([a-z2-7]{32})(/a/\d+)?")


@pytest.fixture(scope="module")
def sim() -> Iterator[WecomSim]:
    server = WecomSim(corp_id=CORP, secret=SECRET, agent_id=AGENT)  # every userid exists
    server.start()
    yield server
    server.stop()


def wecom_config(sim: WecomSim, **keys: str) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in keys.items())
    return (f'[wecom]\nenabled = true\ncorp_id = "{CORP}"\nagent_id = {AGENT}\n'
            f'api_base_url = "{sim.base_url}"\nrate_per_minute = 0\nquiet_minutes = []\n{extra}')


def test_readers_of_a_variant_share_one_call_and_its_links_open_the_issue(
    dispatch_sqlite, mail, sim, monkeypatch,
):
    from sent_issue import send_sample
    from served import request, serve

    with dispatch_sqlite.config.open("a", encoding="utf-8") as f:
        f.write(wecom_config(sim, personal_links="false"))
    monkeypatch.setenv("DISPATCH_WECOM_SECRET", SECRET)
    sim.reset()
    issue = send_sample(dispatch_sqlite, mail)

    data = json.loads(dispatch_sqlite.ok("status", str(issue), "--json"))
    assert data["status"] == "sent" and data["failures"] == [], data
    sent = data["counts"]["wecom"]["sent"]
    assert len(sim.delivered) == sent
    # One call per variant: the readers following 全部 (王建国, 刘卫国, 何丽萍 of the
    # sample) got one message, the same bytes apart from touser, from one call.
    def rest(body: dict[str, object]) -> str:
        return json.dumps({k: v for k, v in body.items() if k != "touser"}, sort_keys=True)

    everyone = {"wangjianguo", "liuweiguo", "heliping"}
    assert len({d.msgid for d in sim.delivered if d.member in everyone}) == 1
    assert len({rest(d.body) for d in sim.delivered if d.member in everyone}) == 1
    bodies = {rest(d.body) for d in sim.delivered}
    assert sim.send_calls == len(bodies) < sent
    # The report says why WeChat Work shows no opens or clicks.
    assert "personal_links = false" in dispatch_sqlite.ok("report", str(issue))

    engine = Runtime(load(dispatch_sqlite.config)).engine
    with engine.connect() as conn:
        tokens = conn.scalars(select(Delivery.token).where(Delivery.issue_id == issue)).all()
        key = conn.scalar(select(Issue.web_key).where(Issue.id == issue))
        articles = conn.scalar(
            select(func.count(Article.id)).join(Section).where(Section.issue_id == issue)
        )
    engine.dispose()
    every_body = "\n".join(bodies)
    assert tokens and not any(t in every_body for t in tokens)  # nothing to track by
    assert "尊敬的" not in every_body and "您好" not in every_body  # no greeting
    paths = {m.group(0) for m in KEY_PATH.finditer(every_body)}
    assert paths and {p.split("/")[2] for p in paths} == {key}
    assert not re.search(r"/[cwfpuo]/", every_body)  # no click, vote or reader page

    # The links open the issue's own pages on the reader web app.
    runtime = Runtime(load(dispatch_sqlite.config))
    events: list[object] = []
    try:
        with serve(create_app(runtime, on_event=events.append)) as base:
            whole = request(base, "GET", f"/i/{key}")
            article_path = min(p for p in paths if "/a/" in p)
            article = request(base, "GET", article_path)
            for answer in (whole, article):
                assert answer.status == 200
                assert "有用" not in answer.text and "退订" not in answer.text
                assert "调整关注" not in answer.text and "/o/" not in answer.text
            assert "未来产业是培育新质生产力的重要引擎" in whole.text
            assert whole.text.count('<article id="a-') == articles  # the whole issue, in full
            assert f"/i/{key}/a/" in whole.text
            assert "返回本期全文" in article.text
            for missing in (f"/i/{new_token()}", f"/i/{key}/a/999999", f"/i/{key}?page=9",
                            "/i/not-a-key", f"/i/{key.upper()}x"):
                answer = request(base, "GET", missing)
                assert answer.status == 404 and "页面不存在" in answer.text, missing
            assert events == []  # no delivery behind these pages: nothing recorded
    finally:
        runtime.engine.dispose()


@pytest.mark.parametrize("msgtype", ["news", "textcard", "markdown"])
def test_every_reader_of_a_variant_gets_the_same_bytes_within_the_limits(msgtype):
    from test_wecom_render import make_issue, reader_digest

    links = IssueLinks("https://qbkd.xcsti.example.cn", new_token())
    digest = reader_digest(make_issue(30), [1, 3, 5])
    variant = render_variant(digest, links, msgtype=msgtype, agentid=AGENT)
    one = variant.fill_json(touser="u1", token=new_token(), greeting="张局长，您好！")
    two = variant.fill_json(touser="u2", token=new_token(), greeting="李处长，您好！")
    assert one.replace('"u1"', '"u2"') == two
    body = json.loads(one)[msgtype]
    assert "您好" not in one and links.web_view() in one
    if msgtype == "markdown":
        assert "有用" not in body["content"] and "/f/" not in body["content"]
        assert len(body["content"].encode()) <= MARKDOWN_MAX_BYTES
    if msgtype == "textcard":
        assert len(body["description"].encode()) <= DESCRIPTION_MAX_BYTES
    if msgtype == "news":
        assert all(a["url"].startswith(f"{links.web_view()}/a/") for a in body["articles"][:-1])


def test_template_card_without_personal_links_is_refused(dispatch_sqlite, sim, monkeypatch):
    with dispatch_sqlite.config.open("a", encoding="utf-8") as f:
        f.write(wecom_config(sim, personal_links="false", message_type='"template_card"'))
    monkeypatch.setenv("DISPATCH_WECOM_SECRET", SECRET)
    for args in (("send", "1", "--wait"), ("preview", "1", "--recipient", "x", "--format", "wecom")):
        r = dispatch_sqlite(*args)
        assert r.exit_code == 1, (args, r)
        assert "message_type" in r.stderr and "personal_links" in r.stderr and "需要" in r.stderr
        assert SECRET not in r.stderr + r.stdout


def test_issues_stored_before_0008_get_their_own_key_and_keep_their_content(dispatch_sqlite):
    from alembic import command
    from conftest import SAMPLE_ISSUE
    from sqlalchemy import text

    from dispatch.db.session import alembic_config, make_engine, migrate

    for again in ([], ["--again"]):
        dispatch_sqlite.ok("issues", "ingest", str(SAMPLE_ISSUE), *again)
    engine = make_engine(dispatch_sqlite.db_url)
    query = text("SELECT web_key, (SELECT count(*) FROM sections WHERE issue_id = issues.id) FROM issues")
    try:
        with engine.connect() as conn:
            sections = sorted(n for _, n in conn.execute(query))
        command.downgrade(alembic_config(engine), "0007")  # as an installation before 0008
        assert migrate(engine) is True
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    finally:
        engine.dispose()
    keys = [k for k, _ in rows]
    assert sorted(n for _, n in rows) == sections and sections[0] > 0  # nothing cascaded
    assert len(set(keys)) == 2 and all(re.fullmatch(r"[a-z2-7]{32}", k) for k in keys)
