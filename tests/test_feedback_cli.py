"""`dispatch feedback list | export | handled`: what readers said, as staff read, filter,
export and mark it; on feedback tied to real deliveries of issues sent through the CLI."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import timedelta

import openpyxl
import pytest
from cli_language import english_words
from rich.cells import cell_len
from sent_issue import Recorder, send_sample
from smtp_servers import MailServer

from dispatch.clock import to_local, utcnow
from dispatch.report.feedback_list import COLUMNS

HEADER = [name for name, _ in COLUMNS]


@dataclass
class Said:
    first: int  # issue ids
    second: int
    ids: dict[str, int]  # feedback ids by a short name


def _two_issues_with_feedback(dispatch) -> Said:
    """Two issues sent to the sample readers; feedback on both, some of it days old."""
    with MailServer() as server:
        first = send_sample(dispatch, server)
        second = send_sample(dispatch, server, ingest_again=True)
    rec = Recorder(dispatch.db_url)
    try:
        article = rec.article(first, "未来产业")
        wang, sun = rec.delivery(first, "王建国"), rec.delivery(first, "孙丽娟")
        ids = {
            "old_reply": rec.feedback("reply", delivery=wang, channel="email",
                                      text="上一期的数据很有用", sender="wangjianguo@example.gov.cn",
                                      subject="回复：许昌竞争情报快递", ago=timedelta(days=3)),
            "vote": rec.feedback("useful", delivery=sun, article=article,
                                 ago=timedelta(hours=2)),
            "formula": rec.feedback("comment", delivery=sun, article=article,
                                    text="=HYPERLINK(\"http://x\")", ago=timedelta(hours=1)),
            "second": rec.feedback("reply", delivery=rec.delivery(second, "陈晓东"),
                                   channel="email", text="请多发些新能源汽车的消息"),
        }
    finally:
        rec.close()
    return Said(first, second, ids)


def test_list_is_newest_first_and_filters(dispatch):
    said = _two_issues_with_feedback(dispatch)
    items = json.loads(dispatch.ok("feedback", "list", "--json"))
    assert [i["id"] for i in items] == [said.ids[k] for k in ("second", "formula", "vote",
                                                              "old_reply")]
    reply = items[-1]
    assert reply["reader"]["name"] == "王建国"
    assert reply["reader"]["email"] == "wangjianguo@example.gov.cn"
    assert (reply["issue"], reply["channel"], reply["kind"]) == (said.first, "email", "reply")
    assert reply["text"] == "上一期的数据很有用" and reply["article"] is None
    assert reply["subject"] == "回复：许昌竞争情报快递" and reply["handled"] is False
    assert reply["received_at"].endswith("+08:00")
    assert items[2]["article"]["title"].startswith("未来产业")

    def ids(*args: str) -> list[int]:
        return [i["id"] for i in json.loads(dispatch.ok("feedback", "list", "--json", *args))]

    assert ids("--issue", str(said.second)) == [said.ids["second"]]
    assert ids("--kind", "有用") == [said.ids["vote"]]
    assert ids("--kind", "投票") == [said.ids["vote"]]
    assert ids("--kind", "留言、回复", "--issue", str(said.first)) == [
        said.ids["formula"], said.ids["old_reply"]]
    yesterday = (to_local(utcnow()) - timedelta(days=1)).date().isoformat()
    assert said.ids["old_reply"] not in ids("--since", yesterday)
    assert len(ids("--since", yesterday)) == 3
    assert ids("--limit", "1") == [said.ids["second"]]

    out = dispatch.ok("feedback", "list", "--issue", str(said.first), env={"COLUMNS": "80"})
    assert "反馈 3 条（新的在前）" in out
    for word in ("回复", "有用", "留言", "王建国", "孙丽娟", "上一期的数据很有用"):
        assert word in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--since", "2024-13-01"], "“2024-13-01”不是日期，应写成 YYYY-MM-DD"),
        (["--since", "昨天"], "“昨天”不是日期"),
        (["--kind", "赞"], "“赞”不是反馈类别"),
        (["--limit", "0"], "应为正整数"),
    ],
)
def test_bad_filters_are_refused_in_chinese(dispatch_sqlite, args, says):
    r = dispatch_sqlite("feedback", "list", *args)
    assert r.exit_code == 2 and says in r.stderr
    assert english_words(r.stderr) == []


def test_an_unknown_issue_is_refused(dispatch_sqlite):
    r = dispatch_sqlite("feedback", "list", "--issue", "42")
    assert r.exit_code == 1 and "期刊 42 不存在" in r.stderr


def test_export_csv_and_xlsx_read_back(dispatch, tmp_path):
    said = _two_issues_with_feedback(dispatch)
    path = tmp_path / "反馈.csv"
    path.write_text("旧的内容", encoding="utf-8")  # replaced whole
    out = dispatch.ok("feedback", "export", str(path), "--issue", str(said.first))
    assert f"已把 3 条反馈写入 {path}" in out
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows[0] == HEADER and len(rows) == 4
    by_id = {r[0]: dict(zip(HEADER, r, strict=True)) for r in rows[1:]}
    reply = by_id[str(said.ids["old_reply"])]
    assert (reply["类别"], reply["渠道"], reply["读者"]) == ("回复", "邮件", "王建国")
    assert reply["读者地址"] == "wangjianguo@example.gov.cn"
    assert reply["内容"] == "上一期的数据很有用" and reply["已处理"] == "否"
    # A cell never becomes a formula in Excel.
    assert by_id[str(said.ids["formula"])]["内容"] == "'=HYPERLINK(\"http://x\")"

    xlsx = tmp_path / "反馈.xlsx"
    dispatch.ok("feedback", "export", str(xlsx))
    sheet = openpyxl.load_workbook(xlsx).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0] == HEADER and len(values) == 5
    assert values[1][0] == said.ids["second"]  # newest first
    assert values[1][HEADER.index("内容")] == "请多发些新能源汽车的消息"
    formula = next(v for v in values if v[0] == said.ids["formula"])
    assert formula[HEADER.index("内容")].startswith("'=")
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_export_refuses_what_it_cannot_write(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    r = d("feedback", "export", str(tmp_path / "反馈.txt"))
    assert r.exit_code == 1 and "只能写成 CSV 或 XLSX 文件" in r.stderr
    assert english_words(r.stderr) == [] and not (tmp_path / "反馈.txt").exists()
    r = d("feedback", "export", str(tmp_path / "没有的文件夹" / "反馈.csv"))
    assert r.exit_code == 1 and "所在的文件夹不存在" in r.stderr
    r = d("feedback", "export", str(tmp_path))
    assert r.exit_code == 1


def test_mark_handled(dispatch_sqlite):
    d = dispatch_sqlite
    said = _two_issues_with_feedback(d)
    fid = said.ids["formula"]
    out = d.ok("feedback", "handled", str(fid))
    assert f"反馈 {fid} 已标记为处理" in out and english_words(out) == []
    [item] = [i for i in json.loads(d.ok("feedback", "list", "--json")) if i["id"] == fid]
    assert item["handled"] is True and item["handled_by"] and item["handled_at"].endswith("+08:00")
    assert f"反馈 {fid} 早已处理" in d.ok("feedback", "handled", str(fid))
    unhandled = json.loads(d.ok("feedback", "list", "--json", "--unhandled"))
    assert fid not in [i["id"] for i in unhandled] and len(unhandled) == 3
    assert "已处理" in d.ok("feedback", "list", env={"COLUMNS": "80"})
    r = d("feedback", "handled", "999")
    assert r.exit_code == 1 and "反馈 999 不存在" in r.stderr


def test_what_feedback_says_is_chinese_and_fits_80_columns(dispatch_sqlite):
    d = dispatch_sqlite
    _two_issues_with_feedback(d)
    outputs = [
        d.ok("feedback", "list", env={"COLUMNS": "80"}),
        d.ok("feedback", "list", "--kind", "自动回复", env={"COLUMNS": "80"}),
        *(d.ok(*cmd, "--help", env={"COLUMNS": "80"}) for cmd in (
            ["feedback"], ["feedback", "list"], ["feedback", "export"], ["feedback", "handled"],
        )),
    ]
    for text in outputs:
        assert english_words(text) == [], text
        assert max(cell_len(line) for line in text.splitlines()) <= 80, text
    assert "没有符合条件的反馈" in outputs[1]


HEAVY_PROBE = ["report"], ["feedback"], ["feedback", "list"], ["feedback", "export"]


@pytest.mark.parametrize("command", HEAVY_PROBE, ids=" ".join)
def test_help_imports_nothing_heavy(command):
    from test_cli_startup import test_help_imports_nothing_heavy as probe

    probe(command)
