"""An editor's day with `dispatch issues`: ingest, check tags, override, finalize."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from conftest import SAMPLE_ISSUE

from dispatch import clock

SAMPLE_TITLES = [
    ("编者的话", ["编者的话"]),
    ("行业动态", ["未来产业是培育新质生产力的重要引擎"]),
    ("行业趋势", ["让知识产权更好护航前沿科技创新"]),
    ("行业报告", ["上海国际科技创新中心：从“建框架”向“强功能”跃升"]),
]


def _ingest(dispatch, path=SAMPLE_ISSUE) -> dict:
    return json.loads(dispatch.ok("issues", "ingest", str(path), "--json"))


def test_ingest_sample_gives_sections_articles_and_tags(dispatch):
    data = _ingest(dispatch)
    assert isinstance(data["id"], int)
    assert [(s["title"], [a["title"] for a in s["articles"]]) for s in data["sections"]] == SAMPLE_TITLES
    articles = [a for s in data["sections"] for a in s["articles"]]
    assert all(isinstance(a["id"], int) and a["industries"] for a in articles)
    assert articles[0]["kind"] == "note" and articles[0]["industries"] == ["general"]
    report = articles[3]
    assert report["subheadings"] == ["超前布局提升战略科技力量", "瞄准风口培育高端产业集群", "不断改革完善创新生态环境"]
    assert "biomed" in report["industries"] and "nev" in report["industries"]
    # The same issue, as `show` tells it.
    shown = json.loads(dispatch.ok("issues", "show", str(data["id"]), "--json"))
    assert shown["sections"] == data["sections"]
    listed = json.loads(dispatch.ok("issues", "list", "--json"))
    assert [(i["id"], i["status"], i["articles"]) for i in listed] == [(data["id"], "draft", 4)]


def test_gb18030_file_ingests_the_same(dispatch, tmp_path):
    gbk = tmp_path / "issue-gbk.txt"
    gbk.write_bytes(SAMPLE_ISSUE.read_text(encoding="utf-8").encode("gb18030"))
    utf8 = _ingest(dispatch)
    other = _ingest(dispatch, gbk)

    def strip(d):
        return [[(a["title"], a["industries"]) for a in s["articles"]] for s in d["sections"]]

    assert strip(other) == strip(utf8)


def test_override_survives_retagging_and_show_tells_it_apart(dispatch):
    data = _ingest(dispatch)
    issue_id = data["id"]
    article = data["sections"][2]["articles"][0]
    out = dispatch.ok("issues", "tag", str(article["id"]), "--set", "生物医药,新能源汽车")
    assert "生物医药、新能源汽车" in out and "override" in out

    dispatch.ok("issues", "retag", str(issue_id))
    shown = json.loads(dispatch.ok("issues", "show", str(issue_id), "--json"))
    a = shown["sections"][2]["articles"][0]
    assert a["industries"] == ["biomed", "nev"]
    assert a["overridden"] is True
    assert a["auto_industries"] == article["industries"]
    assert "编辑指定" in dispatch.ok("issues", "show", str(issue_id))

    dispatch.ok("issues", "tag", str(article["id"]), "--auto")
    a = json.loads(dispatch.ok("issues", "show", str(issue_id), "--json"))["sections"][2]["articles"][0]
    assert a["industries"] == article["industries"] and a["overridden"] is False


def test_unknown_industry_is_refused_with_a_suggestion_and_nothing_changes(dispatch):
    data = _ingest(dispatch)
    article = data["sections"][1]["articles"][0]
    r = dispatch("issues", "tag", str(article["id"]), "--set", "新能源车")
    assert r.exit_code == 1
    assert "新能源车" in r.stderr and "新能源汽车" in r.stderr
    a = json.loads(dispatch.ok("issues", "show", str(data["id"]), "--json"))["sections"][1]["articles"][0]
    assert a == article


def test_finalize_freezes_the_issue(dispatch):
    data = _ingest(dispatch)
    issue_id = str(data["id"])
    when = (clock.to_local(clock.utcnow()) + timedelta(days=3)).strftime("%Y-%m-%d 08:30")
    out = dispatch.ok("issues", "finalize", issue_id, "--publish-at", when)
    assert when in out
    shown = json.loads(dispatch.ok("issues", "show", issue_id, "--json"))
    assert shown["status"] == "finalized" and shown["publish_at"] == when

    article_id = str(data["sections"][1]["articles"][0]["id"])
    for args in (("issues", "tag", article_id, "--set", "食品"), ("issues", "retag", issue_id),
                 ("issues", "finalize", issue_id), ("issues", "delete", issue_id)):
        r = dispatch(*args)
        assert r.exit_code == 1, args
        assert "finalized" in r.stderr
    assert json.loads(dispatch.ok("issues", "show", issue_id, "--json")) == shown


def test_publication_time_is_local_and_stored_in_utc(dispatch_sqlite):
    data = _ingest(dispatch_sqlite)
    year = clock.to_local(clock.utcnow()).year + 1
    dispatch_sqlite.ok("issues", "finalize", str(data["id"]), "--publish-at", f"{year}-12-01 08:30")
    from sqlalchemy import select

    from dispatch.db.models import Issue
    from dispatch.db.session import make_engine, session_factory

    with session_factory(make_engine(dispatch_sqlite.db_url))() as s:
        assert s.scalar(select(Issue.publish_at)) == datetime(year, 12, 1, 0, 30)


def test_bad_publication_times_are_refused(dispatch_sqlite):
    data = _ingest(dispatch_sqlite)
    r = dispatch_sqlite("issues", "finalize", str(data["id"]), "--publish-at", "12/01 8:30")
    assert r.exit_code == 2 and "YYYY-MM-DD HH:MM" in r.stderr
    r = dispatch_sqlite("issues", "finalize", str(data["id"]), "--publish-at", "2020-01-01 08:30")
    assert r.exit_code == 1 and "in the past" in r.stderr
    assert json.loads(dispatch_sqlite.ok("issues", "show", str(data["id"]), "--json"))["status"] == "draft"


def test_a_file_that_cant_be_understood_is_refused_and_nothing_is_stored(dispatch, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    binary = tmp_path / "scan.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    prose = tmp_path / "prose.txt"
    prose.write_text("这是一段没有栏目标记的文字。\n", encoding="utf-8")
    for f in (empty, binary, prose):
        r = dispatch("issues", "ingest", str(f))
        assert r.exit_code == 1, f
        assert str(f) in r.stderr
    r = dispatch("issues", "ingest", str(tmp_path / "missing.txt"))
    assert r.exit_code == 1 and "no such file" in r.stderr
    assert json.loads(dispatch.ok("issues", "list", "--json")) == []


def test_unknown_issue_and_article_are_named(dispatch_sqlite):
    r = dispatch_sqlite("issues", "show", "42")
    assert r.exit_code == 1 and "issue 42 not found" in r.stderr
    r = dispatch_sqlite("issues", "tag", "42", "--set", "食品")
    assert r.exit_code == 1 and "article 42 not found" in r.stderr
    r = dispatch_sqlite("issues", "tag", "42")
    assert r.exit_code == 2
