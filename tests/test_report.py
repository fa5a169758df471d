"""`dispatch report ISSUE`: the figures an editor checks the day after, on an issue sent
through the real CLI to a real SMTP server, with what readers did recorded as the track and
feedback stages record it."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import pytest
from cli_language import english_words
from conftest import SAMPLE_ISSUE
from rich.cells import cell_len
from sent_issue import Recorder, send_sample
from smtp_servers import MailServer

from dispatch.clock import utcnow

A = "未来产业"  # the sample's first article (行业动态), by the start of its title
B = "让知识产权"  # the second (行业趋势)


@dataclass
class Sent:
    issue: int
    a: int
    b: int


def _readers_did(dispatch) -> Sent:
    """The sample issue sent; then, by delivery (reader × channel):
    王建国 email: an open and two clicks on A; his WeChat Work copy: a click on A;
    陈晓东: an image proxy's open only; 刘卫国: a click on B, no open (images blocked);
    孙丽娟: a proxy's open and her own web read; 周文博: a link scanner's click only;
    votes: A 有用 ×2, 没用 ×1, B 有用 ×1; a comment on A; a reply; an auto-reply;
    高明远's mail bounced."""
    with MailServer() as server:
        issue = send_sample(dispatch, server)
    rec = Recorder(dispatch.db_url)
    try:
        a, b = rec.article(issue, A), rec.article(issue, B)
        wang, wang_wx = rec.delivery(issue, "王建国"), rec.delivery(issue, "王建国", "wecom")
        rec.event(wang, "open")
        rec.event(wang, "click", article=a)
        rec.event(wang, "click", article=a)
        # The WeChat Work channel is not configured in tests: its copy is marked sent as
        # the channel would, and read.
        rec.set_delivery(wang_wx, state="sent", sent_at=utcnow())
        rec.event(wang_wx, "click", article=a)
        rec.event(rec.delivery(issue, "陈晓东"), "open", machine=True)
        liu = rec.delivery(issue, "刘卫国")
        rec.event(liu, "click", article=b)
        sun = rec.delivery(issue, "孙丽娟")
        rec.event(sun, "open", machine=True)
        rec.event(sun, "web_view")
        rec.event(rec.delivery(issue, "周文博"), "click", article=a, machine=True)
        rec.feedback("useful", delivery=wang, article=a)
        rec.feedback("useful", delivery=liu, article=a)
        rec.feedback("not_useful", delivery=sun, article=a)
        rec.feedback("useful", delivery=sun, article=b)
        rec.feedback("comment", delivery=sun, article=a, text="数据很及时")
        rec.feedback("reply", delivery=wang, channel="email", text="收到，谢谢")
        rec.feedback("auto_reply", delivery=liu, channel="email", text="我正在休假")
        gao = rec.delivery(issue, "高明远")
        rec.set_delivery(gao, bounced_at=utcnow())
        rec.feedback("bounce", delivery=gao, channel="email")
    finally:
        rec.close()
    return Sent(issue, a, b)


def test_the_figures_follow_the_counting_rules(dispatch):
    sent = _readers_did(dispatch)
    data = json.loads(dispatch.ok("report", str(sent.issue), "--json"))
    email, wecom, total = data["channels"]["email"], data["channels"]["wecom"], data["totals"]
    # 18 readers have an email address and an email channel; 王建国's WeChat Work copy went
    # too, the other 18 WeChat Work copies wait for the channel.
    assert (email["sent"], wecom["sent"], total["sent"], data["readers"]) == (18, 1, 19, 18)
    assert (wecom["pending"], total["failed"], total["bounced"]) == (18, 0, 1)
    # Opened by a person: 王建国 (both copies), 刘卫国 (a click proves it, no pixel),
    # 孙丽娟 (her web read outweighs the proxy); machine only: 陈晓东, 周文博.
    assert (email["opened_human"], email["opened_machine_only"]) == (3, 2)
    assert (wecom["opened_human"], total["opened_human"]) == (1, 4)
    assert total["open_rate"] == round(4 / 19, 4)
    # Clicks: events not by a machine (王建国's two count twice, once as a delivery).
    assert (email["clicks"], email["clicked"], total["clicks"], total["clicked"]) == (3, 2, 4, 3)
    assert (total["web_reads"], total["web_readers"]) == (1, 1)

    first, second = data["articles"][:2]
    assert (first["id"], first["rank"], first["clicks"], first["clicked"]) == (sent.a, 1, 3, 2)
    assert (first["useful"], first["not_useful"], first["comments"]) == (2, 1, 1)
    assert (second["id"], second["clicked"], second["useful"]) == (sent.b, 1, 1)
    assert first["section"] == "行业动态"

    industries = {i["code"]: i for i in data["industries"]}
    assert len(industries) == 13 and industries["all"]["name"] == "全部"
    # 全部: 王建国 and 刘卫国 opened, 陈晓东's open was a proxy's.
    assert (industries["all"]["readers"], industries["all"]["opened"]) == (3, 2)
    assert industries["all"]["open_rate"] == round(2 / 3, 4)
    # 孙丽娟 follows 装备制造 among five other readers who did nothing.
    assert (industries["machinery"]["readers"], industries["machinery"]["opened"]) == (6, 1)
    # 周文博's only event was a scanner's.
    assert industries["chemical"]["opened"] == 0

    assert data["feedback"] == {"useful": 3, "not_useful": 1, "comment": 1, "reply": 1,
                                "auto_reply": 1, "bounce": 1, "from_readers": 6}

    out = dispatch.ok("report", str(sent.issue), env={"COLUMNS": "80"})
    assert "发出 19 份（18 人），21.1% 打开，4 次点击，6 条反馈" in out
    assert "另有 2 份只被机器打开，不计入" in out
    # The articles first, ranked; then industries; then channels; then feedback.
    order = [out.index(w) for w in ("文章（按点击、有用排序）", "各产业的读者", "各渠道", "反馈：")]
    assert order == sorted(order)
    assert out.index("未来产业是培育新质生产力的重要引擎") < out.index("让知识产权更好护航")
    assert "反馈：有用 3、没用 1、留言 1、回复 1、自动回复 1、退信 1" in out
    assert "dispatch feedback list --issue" in out


def test_json_keys_are_stable(dispatch_sqlite):
    sent = _readers_did(dispatch_sqlite)
    data = json.loads(dispatch_sqlite.ok("report", str(sent.issue), "--json"))
    delivery_keys = {"planned", "sent", "failed", "bounced", "pending", "cancelled",
                     "opened_human", "opened_machine_only", "open_rate", "clicks", "clicked",
                     "web_reads", "web_readers"}
    assert set(data) == {"issue", "as_of", "readers", "totals", "channels", "articles",
                         "industries", "feedback", "issue_votes"}
    assert data["issue_votes"] == {"useful": 0, "not_useful": 0}  # WeChat Work's card buttons
    assert set(data["issue"]) == {"id", "title", "number", "status", "publish_at",
                                  "first_sent_at", "last_sent_at"}
    assert set(data["totals"]) == delivery_keys
    assert set(data["channels"]) == {"email", "wecom"}
    assert all(set(c) == delivery_keys for c in data["channels"].values())
    assert set(data["articles"][0]) == {"rank", "id", "title", "section", "kind", "industries",
                                        "clicks", "clicked", "reads", "readers", "useful",
                                        "not_useful", "comments"}
    assert set(data["industries"][0]) == {"code", "name", "readers", "opened", "open_rate"}
    # Times in Asia/Shanghai, with the offset.
    assert data["as_of"].endswith("+08:00") and data["issue"]["first_sent_at"].endswith("+08:00")


def test_csv_opens_in_excel_with_the_articles_ranked(dispatch_sqlite, tmp_path):
    sent = _readers_did(dispatch_sqlite)
    path = tmp_path / "报告.csv"
    out = dispatch_sqlite.ok("report", str(sent.issue), "--csv", str(path))
    assert f"已写入 {path}" in out
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # what Excel opens right
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    summary = dict(r for r in rows[: rows.index([])] if len(r) == 2)
    assert summary["期刊编号"] == str(sent.issue) and summary["打开率"] == "21.1%"
    assert summary["发出"] == "19" and summary["读者反馈合计（回复、留言、投票）"] == "6"
    header = next(r for r in rows if r and r[0] == "排名")
    assert header == ["排名", "文章编号", "文章", "栏目", "产业", "点击人数", "点击次数",
                      "阅读人数", "阅读次数", "有用", "没用", "留言"]
    start = rows.index(header) + 1
    articles = rows[start: rows.index([], start)]
    assert len(articles) == 4
    first = dict(zip(header, articles[0], strict=True))
    assert (first["文章编号"], first["点击人数"], first["有用"]) == (str(sent.a), "2", "2")
    assert any(r[:1] == ["产业"] for r in rows) and any(r[:1] == ["渠道"] for r in rows)


def test_an_issue_not_sent_is_reported_as_such_and_an_unknown_one_refused(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    with MailServer() as server:
        send_sample(d, server)
    draft = json.loads(d.ok("issues", "ingest", str(SAMPLE_ISSUE), "--json", "--again"))["id"]
    out = d.ok("report", str(draft))
    assert "本期尚未发送（草稿）" in out and "还没有投递" in out
    data = json.loads(d.ok("report", str(draft), "--json"))
    assert data["issue"]["status"] == "draft" and data["totals"]["sent"] == 0
    assert data["totals"]["open_rate"] is None

    missing = d("report", "99")
    assert missing.exit_code == 1 and "期刊 99 不存在" in missing.stderr
    wrong = d("report", str(draft), "--csv", str(tmp_path / "报告.xlsx"))
    assert wrong.exit_code == 1 and "只能写成 CSV 文件" in wrong.stderr
    assert not (tmp_path / "报告.xlsx").exists()


@pytest.mark.parametrize("width", [80, 120])
def test_the_report_fits_the_terminal_and_speaks_chinese(dispatch_sqlite, width):
    sent = _readers_did(dispatch_sqlite)
    out = dispatch_sqlite.ok("report", str(sent.issue), env={"COLUMNS": str(width)})
    assert english_words(out) == []
    for line in out.splitlines():
        assert cell_len(line) <= width, line
    # Titles wrap between characters, never cut: each word of every title is there.
    flat = "".join(line.strip("│┃ ") for line in out.splitlines())
    assert "上海国际科技创新中心" in flat.replace(" ", "").replace("│", "")
    helps = [dispatch_sqlite.ok("report", "--help", env={"COLUMNS": "80"})]
    for text in helps:
        assert english_words(text) == [] and max(cell_len(x) for x in text.splitlines()) <= 80
