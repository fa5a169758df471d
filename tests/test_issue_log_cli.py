"""What `dispatch issues …`, `dispatch retry` and `dispatch send --to` change is kept in the
issue's change log as the staff web's changes are, by no staff member (the CLI on the
server), and `dispatch issues show` ends with it. A refused command logs nothing."""

from __future__ import annotations

import json
from datetime import timedelta

from cli_language import english_words
from conftest import SAMPLE_ISSUE
from smtp_servers import MailServer, rcpt
from sqlalchemy import select

from dispatch import clock
from dispatch.db.models import IssueChange
from dispatch.db.session import make_engine, session_factory

Row = tuple[int | None, int | None, int | None, str, str | None, str | None]


def logged(d) -> list[Row]:
    """Every row of the log, oldest first: (issue, article, staff, field, old, new)."""
    engine = make_engine(d.db_url)
    try:
        with session_factory(engine)() as s:
            return [(c.issue_id, c.article_id, c.staff_id, c.field, c.old, c.new)
                    for c in s.scalars(select(IssueChange).order_by(IssueChange.id))]
    finally:
        engine.dispose()


def shown(d, issue: int) -> list[dict]:
    return json.loads(d.ok("issues", "show", str(issue), "--json"))["changes"]


def local(days: int) -> str:
    return (clock.to_local(clock.utcnow()) + timedelta(days=days)).strftime("%Y-%m-%d 08:30")


def cn(text: str) -> str:
    """A time the CLI took, as the log keeps it (the staff web's words)."""
    return clock.cn_time(clock.parse_local(text))


def test_each_issues_command_logs_its_change_and_show_tells_it(dispatch):
    d = dispatch  # both databases: the deleted draft's record outlives it on each
    data = json.loads(d.ok("issues", "ingest", str(SAMPLE_ISSUE), "--json"))
    issue = data["id"]
    article = data["sections"][2]["articles"][0]
    assert logged(d) == [(issue, None, None, "ingested", None, "issue-sample.txt")]

    d.ok("issues", "tag", str(article["id"]), "--set", "生物医药,新能源汽车")
    d.ok("issues", "tag", str(article["id"]), "--set", "生物医药,新能源汽车")  # no change
    assert d("issues", "tag", str(article["id"]), "--set", "综合,食品").exit_code == 1
    *_, tags = logged(d)
    assert len(logged(d)) == 2
    assert tags[:4] == (issue, article["id"], None, "tags") and tags[4].endswith("（自动）")
    assert tags[5] == "生物医药、新能源汽车（编辑指定）"

    d.ok("issues", "retag", str(issue))  # the rules as they were: nothing changes, it is said
    assert logged(d)[-1] == (issue, None, None, "retagged", None, "自动标签都没有变化")

    first, later = local(3), local(5)
    assert d("issues", "reschedule", str(issue), "--publish-at", later).exit_code == 1  # a draft
    d.ok("issues", "finalize", str(issue), "--publish-at", first)
    assert logged(d)[-1] == (issue, None, None, "finalized", "草稿", cn(first))
    assert d("issues", "finalize", str(issue)).exit_code == 1
    assert d("issues", "reschedule", str(issue), "--publish-at", "2020-01-01 08:30").exit_code == 1
    assert d("issues", "delete", str(issue)).exit_code == 1
    d.ok("issues", "reschedule", str(issue), "--publish-at", later)
    d.ok("issues", "reschedule", str(issue), "--publish-at", later)  # the same time: no change
    assert [r[3] for r in logged(d)] == ["ingested", "tags", "retagged", "finalized", "publish_at"]
    assert logged(d)[-1] == (issue, None, None, "publish_at", cn(first), cn(later))
    assert {r[2] for r in logged(d)} == {None}

    # `show`: the last five, newest first, in the staff web's words; --json the same.
    changes = shown(d, issue)
    assert [c["field"] for c in changes] == ["publish_at", "finalized", "retagged", "tags",
                                             "ingested"]
    assert all(c["staff_id"] is None and c["staff_name"] is None for c in changes)
    assert changes[3]["article_id"] == article["id"]
    assert changes[0]["old"] == cn(first) and changes[0]["new"] == cn(later)
    out = d.ok("issues", "show", str(issue))
    tail = out[out.index("最近的修改"):].splitlines()
    assert tail[1].endswith(f"服务器命令行  改发布时间  {cn(first)} → {cn(later)}")
    assert tail[2].endswith(f"服务器命令行  定稿  草稿 → {cn(first)}")
    assert f"改标签：{article['title']}" in tail[4] and "生物医药、新能源汽车（编辑指定）" in tail[4]
    assert tail[5].endswith("服务器命令行  入库  issue-sample.txt") and len(tail) == 6
    assert english_words(out) == []

    # Deleting a draft: its record outlives it, naming it.
    other = json.loads(d.ok("issues", "ingest", str(SAMPLE_ISSUE), "--again", "--json"))["id"]
    out = d.ok("issues", "delete", str(other))
    assert out.strip() == f"草稿期刊 {other} 已删除"
    assert logged(d)[-1] == (None, None, None, "deleted", f"期刊 {other}《{data['title']}》", None)


def test_retry_and_test_copy_are_logged(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    faults = {"b2@example.gov.cn": rcpt("550 5.1.1 user unknown"),
              "nobody@example.gov.cn": rcpt("550 5.1.1 user unknown")}
    with MailServer(faults=faults) as server:
        with d.config.open("a", encoding="utf-8") as f:
            f.write(f'[smtp]\nhost = "{server.host}"\nport = {server.port}\nrate_per_minute = 0\n'
                    'reply_domain = "example.gov.cn"\n'
                    "[delivery]\nidle_seconds = 0.1\nretry_base_seconds = 0.5\n")
        readers = tmp_path / "readers.csv"
        readers.write_text("姓名,邮箱,关注产业\n甲一,a1@example.gov.cn,全部\n"
                           "乙二,b2@example.gov.cn,全部\n", encoding="utf-8")
        d.ok("recipients", "import", str(readers))
        issue = json.loads(d.ok("issues", "ingest", str(SAMPLE_ISSUE), "--json"))["id"]
        d.ok("issues", "finalize", str(issue))
        before = len(logged(d))

        out = d.ok("send", str(issue), "--to", "editor@example.gov.cn", "-r", "a1@example.gov.cn")
        assert "测试稿已发到 editor@example.gov.cn" in out
        assert logged(d)[-1] == (issue, None, None, "test_copy", None,
                                 "editor@example.gov.cn（按 甲一 的视角）")
        # Refused (the address) or bounced: nothing logged.
        assert d("send", str(issue), "--to", "editor＠example.gov.cn").exit_code == 1
        assert d("send", str(issue), "--to", "nobody@example.gov.cn").exit_code == 1
        assert len(logged(d)) == before + 1

        data = json.loads(d.ok("send", str(issue), "--wait", "--json"))
        assert data["counts"]["email"]["failed"] == 1
        server.faults.pop("b2@example.gov.cn")
        assert "1 个失败的投递已重新排队" in d.ok("retry", str(issue))
        assert logged(d)[-1] == (issue, None, None, "retried", None, "1 个")
        assert "0 个失败的投递已重新排队" in d.ok("retry", str(issue))  # none: nothing to log
        assert d("retry", "999").exit_code == 1
        assert len(logged(d)) == before + 2

    out = d.ok("issues", "show", str(issue))
    tail = out[out.index("最近的修改"):].splitlines()
    assert tail[1].endswith("服务器命令行  重试失败的投递  1 个")
    assert tail[2].endswith("服务器命令行  发测试稿  editor@example.gov.cn（按 甲一 的视角）")
    assert english_words(out) == []
    assert [c["field"] for c in shown(d, issue)][:2] == ["retried", "test_copy"]
