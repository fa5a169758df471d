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


def _ingest(dispatch, path=SAMPLE_ISSUE, *more: str) -> dict:
    return json.loads(dispatch.ok("issues", "ingest", str(path), "--json", *more))


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
    other = _ingest(dispatch, gbk, "--again")  # the same content: see test_duplicates

    def strip(d):
        return [[(a["title"], a["industries"]) for a in s["articles"]] for s in d["sections"]]

    assert strip(other) == strip(utf8)


def test_override_survives_retagging_and_show_tells_it_apart(dispatch):
    data = _ingest(dispatch)
    issue_id = data["id"]
    article = data["sections"][2]["articles"][0]
    out = dispatch.ok("issues", "tag", str(article["id"]), "--set", "生物医药,新能源汽车")
    assert "生物医药、新能源汽车" in out and "编辑指定" in out

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
        assert "已定稿" in r.stderr
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
    # Usage errors are framed by the framework, which may break the line at the space.
    assert r.exit_code == 2 and "YYYY-MM-DD" in r.stderr and "HH:MM" in r.stderr
    r = dispatch_sqlite("issues", "finalize", str(data["id"]), "--publish-at", "2020-01-01 08:30")
    assert r.exit_code == 1 and "已过" in r.stderr
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
    assert r.exit_code == 1 and "文件不存在" in r.stderr
    assert json.loads(dispatch.ok("issues", "list", "--json")) == []


def test_unknown_issue_and_article_are_named(dispatch_sqlite):
    r = dispatch_sqlite("issues", "show", "42")
    assert r.exit_code == 1 and "期刊 42 不存在" in r.stderr
    r = dispatch_sqlite("issues", "tag", "42", "--set", "食品")
    assert r.exit_code == 1 and "文章 42 不存在" in r.stderr
    r = dispatch_sqlite("issues", "tag", "42")
    assert r.exit_code == 2


def _future(days: int = 3) -> str:
    return (clock.to_local(clock.utcnow()) + timedelta(days=days)).strftime("%Y-%m-%d 08:30")


def test_the_same_content_again_is_refused_naming_the_issue_and_its_state(dispatch, tmp_path):
    first = _ingest(dispatch)
    r = dispatch("issues", "ingest", str(SAMPLE_ISSUE))
    assert r.exit_code == 1
    assert f"期刊 {first['id']}（草稿）" in r.stderr
    # The way out is one line, ready to copy.
    assert f"dispatch issues ingest {SAMPLE_ISSUE} --again" in r.stderr.replace("\n", "⏎")
    # The same text saved again: another encoding, Windows line ends, trailing spaces.
    resaved = tmp_path / "第10期（另存）.txt"
    text = SAMPLE_ISSUE.read_text(encoding="utf-8")
    resaved.write_bytes("\r\n".join(line + "  " for line in text.splitlines()).encode("gb18030"))
    dispatch.ok("issues", "finalize", str(first["id"]), "--publish-at", _future())
    r = dispatch("issues", "ingest", str(resaved))
    assert r.exit_code == 1 and f"期刊 {first['id']}（已定稿）" in r.stderr
    assert [i["id"] for i in json.loads(dispatch.ok("issues", "list", "--json"))] == [first["id"]]

    second = _ingest(dispatch, resaved, "--again")
    assert second["id"] != first["id"] and second["reused"] is False
    r = dispatch("issues", "ingest", str(SAMPLE_ISSUE))
    assert f"期刊 {first['id']}（已定稿）、{second['id']}（草稿）" in r.stderr
    # --reuse: the newest issue that has it, nothing made.
    reused = _ingest(dispatch, SAMPLE_ISSUE, "--reuse")
    assert reused["id"] == second["id"] and reused["reused"] is True
    assert dispatch("issues", "ingest", str(SAMPLE_ISSUE), "--again", "--reuse").exit_code == 2

    # A changed word is another issue; a deleted draft no longer counts.
    edited = tmp_path / "edited.txt"
    edited.write_text(text.replace("未来产业", "未來产业", 1), encoding="utf-8")
    assert _ingest(dispatch, edited)["id"] > second["id"]
    dispatch.ok("issues", "delete", str(second["id"]))
    r = dispatch("issues", "ingest", str(resaved))
    assert r.exit_code == 1 and f"{second['id']}（草稿）" not in r.stderr


def test_reschedule_moves_a_finalized_issue_that_has_not_gone_out(dispatch):
    issue = str(_ingest(dispatch)["id"])
    first, later, latest = _future(3), _future(5), _future(7)
    r = dispatch("issues", "reschedule", issue, "--publish-at", later)
    assert r.exit_code == 1
    assert f'dispatch issues finalize {issue} --publish-at "YYYY-MM-DD HH:MM"' in r.stderr

    dispatch.ok("issues", "finalize", issue, "--publish-at", first)
    out = dispatch.ok("issues", "reschedule", issue, "--publish-at", later)
    assert later in out
    shown = json.loads(dispatch.ok("issues", "show", issue, "--json"))
    assert shown["status"] == "finalized" and shown["publish_at"] == later

    r = dispatch("issues", "reschedule", issue, "--publish-at", "2020-01-01 08:30")
    assert r.exit_code == 1 and "已过" in r.stderr and f"dispatch send {issue}" in r.stderr
    r = dispatch("issues", "reschedule", issue, "--publish-at", "tomorrow")
    assert r.exit_code == 2
    assert json.loads(dispatch.ok("issues", "show", issue, "--json"))["publish_at"] == later

    dispatch.ok("send", issue)  # sending has begun: the time is history now
    r = dispatch("issues", "reschedule", issue, "--publish-at", latest)
    assert r.exit_code == 1 and "已开始发送" in r.stderr and f"dispatch status {issue}" in r.stderr
    assert json.loads(dispatch.ok("issues", "show", issue, "--json"))["publish_at"] == later
    r = dispatch("issues", "reschedule", "999", "--publish-at", later)
    assert r.exit_code == 1 and "期刊 999 不存在" in r.stderr


def test_editing_a_frozen_issue_says_what_can_still_be_done(dispatch_sqlite):
    d = dispatch_sqlite
    data = _ingest(d)
    issue = data["id"]
    article = str(data["sections"][1]["articles"][0]["id"])
    d.ok("issues", "finalize", str(issue), "--publish-at", _future())
    for args in (("issues", "tag", article, "--set", "食品"), ("issues", "retag", str(issue)),
                 ("issues", "delete", str(issue))):
        r = d(*args)
        assert r.exit_code == 1, args
        [line] = r.stderr.splitlines()
        for suggestion in (f"dispatch issues reschedule {issue} --publish-at",
                           f"dispatch preview {issue} --recipient KEY", f"dispatch send {issue}",
                           f"dispatch issues ingest {SAMPLE_ISSUE} --again"):
            assert suggestion in line, (args, suggestion)
    d.ok("send", str(issue))
    r = d("issues", "tag", article, "--auto")
    assert r.exit_code == 1 and "发送中" in r.stderr
    assert f"dispatch status {issue}" in r.stderr and "reschedule" not in r.stderr


def test_show_names_the_editors_note_once(dispatch_sqlite):
    data = _ingest(dispatch_sqlite)
    note = data["sections"][0]["articles"][0]
    assert note["kind"] == "note"
    shown = dispatch_sqlite.ok("issues", "show", str(data["id"]))
    [line] = [ln for ln in shown.splitlines() if f" {note['id']} " in ln]
    assert line.count("编者") == 1 and "编者按" not in shown
    assert f"文件：{SAMPLE_ISSUE}" in shown
