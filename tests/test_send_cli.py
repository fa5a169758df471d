"""`dispatch send | status | retry` against real SMTP servers on loopback."""

from __future__ import annotations

import email
import email.policy
import json

import pytest
from cli_language import english_words
from conftest import SAMPLE_ISSUE
from rich.cells import cell_len
from smtp_servers import DROP_IN_DATA, MailServer, make_certificates, rcpt

from dispatch.plan.reconcile import reconcile

READERS_CSV = """姓名,职务,邮箱,企业微信账号,关注产业,接收方式
甲一,局长,a1@example.gov.cn,,生物医药,
乙二,,b2@example.gov.cn,,新能源汽车、新材料,
丙三,主任,c3@example.gov.cn,c3wx,全部,邮件、企业微信
丁四,,,d4wx,发制品,
戊五,总经理,e5@example.com,,食品,
己六,,f6@example.com,,装备制造,
"""


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


def _install(dispatch, tmp_path, server: MailServer, readers_csv: str = READERS_CSV, **smtp) -> int:
    settings = {"host": server.host, "port": server.port, "rate_per_minute": 0, **smtp}
    with dispatch.config.open("a", encoding="utf-8") as f:
        f.write("[smtp]\n")
        for k, v in settings.items():
            f.write(f"{k} = {json.dumps(v)}\n")
        f.write('reply_domain = "example.gov.cn"\n')
        f.write("[delivery]\nidle_seconds = 0.1\nretry_base_seconds = 0.5\n")
    readers = tmp_path / "readers.csv"
    readers.write_text(readers_csv, encoding="utf-8")
    dispatch.ok("recipients", "import", str(readers))
    issue = json.loads(dispatch.ok("issues", "ingest", str(SAMPLE_ISSUE), "--json"))["id"]
    dispatch.ok("issues", "finalize", str(issue))
    return issue


def test_send_wait_delivers_each_email_reader_once_over_starttls_and_auth(
    dispatch, tmp_path, certificates
):
    with MailServer(security="starttls", certificates=certificates,
                    users={"bulletin": "s3cret"}) as server:
        issue = _install(dispatch, tmp_path, server, security="starttls", username="bulletin",
                         tls_ca_file=str(certificates.ca_file))
        r = dispatch("send", str(issue), "--wait", "--json",
                     env={"DISPATCH_SMTP_PASSWORD": "s3cret"})
        assert r.exit_code == 0, r.stderr
        data = json.loads(r.stdout)
        assert data["counts"]["email"]["sent"] == 5
        # 丁四 only has WeChat Work, 丙三 both: those rows wait for the channel, queued.
        assert data["counts"]["wecom"]["queued"] == 2 and data["counts"]["wecom"]["failed"] == 0
        assert data["pending"] == 2 and data["status"] == "sending"
        got = sorted(m.rcpt_tos[0] for m in server.accepted)
        assert got == sorted(["a1@example.gov.cn", "b2@example.gov.cn", "c3@example.gov.cn",
                              "e5@example.com", "f6@example.com"])
        for m in server.accepted:
            msg = email.message_from_bytes(m.data, policy=email.policy.default)
            token = msg["Message-ID"].strip("<>").split("@")[0]
            assert m.mail_from == f"bounces+{token}@example.gov.cn"
            assert msg["Reply-To"] == f"feedback+{token}@example.gov.cn"
            assert f"/w/{token}" in msg.get_body(("html",)).get_content()
        # Sending again plans nothing new and sends nothing twice.
        dispatch.ok("send", str(issue), "--wait", env={"DISPATCH_SMTP_PASSWORD": "s3cret"})
        assert len(server.accepted) == 5


def test_temporary_and_permanent_failures_and_retry_on_request(dispatch, tmp_path):
    faults = {
        "a1@example.gov.cn": [rcpt("451 4.7.1 greylisted, try again")],  # once, then fine
        "b2@example.gov.cn": rcpt("550 5.1.1 user unknown"),  # always
        "e5@example.com": [DROP_IN_DATA],  # the connection drops once mid-DATA
    }
    with MailServer(faults=faults) as server:
        issue = _install(dispatch, tmp_path, server)
        data = json.loads(dispatch.ok("send", str(issue), "--wait", "--json"))
        email_counts = data["counts"]["email"]
        assert email_counts["sent"] == 4 and email_counts["failed"] == 1
        [failure] = data["failures"]
        assert failure["name"] == "乙二" and "550" in failure["reason"]
        # a1 was greylisted once and came through on the retry: one copy only.
        assert len(server.accepted_for("a1@example.gov.cn")) == 1
        assert len(server.accepted_for("f6@example.com")) == 1
        # The drop came after the server took e5's message: the retry may deliver it
        # again, and then with the same Message-ID.
        ids = {email.message_from_bytes(m.data)["Message-ID"]
               for m in server.accepted_for("e5@example.com")}
        assert len(ids) == 1

        status = dispatch.ok("status", str(issue))
        # The server's reply, word for word, after a Chinese lead-in.
        assert "邮件服务器回复：550 5.1.1 user unknown" in status and "乙二" in status
        server.faults.pop("b2@example.gov.cn")
        assert "1 个失败的投递已重新排队" in dispatch.ok("retry", str(issue))
        data = json.loads(dispatch.ok("send", str(issue), "--wait", "--json"))
        assert data["counts"]["email"]["sent"] == 5 and data["failures"] == []
        assert len(server.accepted_for("b2@example.gov.cn")) == 1


def test_dry_run_shows_who_gets_what_and_sends_nothing(dispatch_sqlite, tmp_path):
    with MailServer() as server:
        issue = _install(dispatch_sqlite, tmp_path, server)
        data = json.loads(dispatch_sqlite.ok("send", str(issue), "--dry-run", "--json"))
        by_name = {r["name"]: r for r in data["readers"]}
        assert by_name["丙三"]["whole_issue"] is True
        assert by_name["甲一"]["recommended"][0].startswith("上海国际科技创新中心")
        assert data["by_channel"] == {"email": 5, "wecom": 2}
        status = json.loads(dispatch_sqlite.ok("status", str(issue), "--json"))
        assert status["status"] == "finalized" and status["pending"] == 0
        assert server.accepted == []


def test_test_copy_goes_to_one_address_only(dispatch_sqlite, tmp_path):
    with MailServer() as server:
        issue = _install(dispatch_sqlite, tmp_path, server)
        out = dispatch_sqlite.ok("send", str(issue), "--to", "editor@example.gov.cn",
                                 "--recipient", "a1@example.gov.cn")
        assert "editor@example.gov.cn" in out
        [m] = server.accepted
        assert list(m.rcpt_tos) == ["editor@example.gov.cn"]
        assert "尊敬的甲一局长：" in email.message_from_bytes(
            m.data, policy=email.policy.default).get_body(("html",)).get_content()
        status = json.loads(dispatch_sqlite.ok("status", str(issue), "--json"))
        assert status["status"] == "finalized" and status["pending"] == 0


def test_status_works_whatever_smtp_says(dispatch_sqlite, tmp_path):
    """An [smtp] the email channel refuses stops sending, not reading an issue's state."""
    with MailServer() as server:
        issue = _install(dispatch_sqlite, tmp_path, server, host="mail.example.gov.cn",
                         security="tls", tls_verify=False)
    r = dispatch_sqlite("send", str(issue), "--to", "editor@example.gov.cn")
    assert r.exit_code == 1 and "tls_verify" in r.stderr
    # Planning needs no mail server; the status it prints names the channels served.
    assert "新排入发件箱 邮件 5、企业微信 2" in dispatch_sqlite.ok("send", str(issue))
    out = dispatch_sqlite.ok("status", str(issue))
    assert "发送中" in out and "2 条企业微信投递留在排队中" in out
    assert "邮件渠道尚未配置" not in out


def test_send_refuses_a_draft(dispatch_sqlite):
    issue = json.loads(dispatch_sqlite.ok("issues", "ingest", str(SAMPLE_ISSUE), "--json"))["id"]
    r = dispatch_sqlite("send", str(issue))
    assert r.exit_code == 1 and "草稿" in r.stderr
    assert f"dispatch issues finalize {issue}" in r.stderr


def test_scheduler_reconcile_plans_due_issues_once(dispatch, tmp_path):
    from datetime import timedelta

    from dispatch import clock
    from dispatch.db.session import make_engine, session_factory

    with MailServer() as server:
        _install(dispatch, tmp_path, server)
    sessions = session_factory(make_engine(dispatch.db_url))
    later = clock.utcnow() + timedelta(minutes=1)
    first = reconcile(sessions, timedelta(hours=24), now=later)
    assert list(first.planned.values()) == [{"email": 5, "wecom": 2}]
    again = reconcile(sessions, timedelta(hours=24), now=later + timedelta(seconds=30))
    assert again.planned == {}
    # Three days later, an issue finalized for "now" that nobody sent is overdue instead.
    issue2 = json.loads(dispatch.ok("issues", "ingest", str(SAMPLE_ISSUE), "--json", "--again"))["id"]
    dispatch.ok("issues", "finalize", str(issue2))
    late = reconcile(sessions, timedelta(hours=24), now=clock.utcnow() + timedelta(days=3))
    assert late.planned == {} and late.overdue == [issue2]
    assert json.loads(dispatch.ok("status", str(issue2), "--json"))["overdue"] is False


def test_a_test_copy_as_a_reader_who_gets_nothing_warns(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    with MailServer() as server:
        issue = _install(d, tmp_path, server)
        d.ok("recipients", "deactivate", "a1@example.gov.cn")
        r = d("send", str(issue), "--to", "editor@example.gov.cn", "--recipient", "a1@example.gov.cn")
        assert r.exit_code == 0, r.stderr
        assert "停用" in r.stderr and "不会收到任何期刊" in r.stderr
        assert "editor@example.gov.cn" in r.stdout
        [m] = server.accepted
        assert list(m.rcpt_tos) == ["editor@example.gov.cn"]
        # Named by nobody, the copy is rendered as an active 全部 reader: no warning.
        r = d("send", str(issue), "--to", "editor@example.gov.cn")
        assert r.exit_code == 0 and r.stderr == ""


def test_status_says_in_chinese_why_a_delivery_failed(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    with MailServer() as server:
        issue = _install(d, tmp_path, server)
        d.ok("send", str(issue))  # planned for everyone
        d.ok("recipients", "deactivate", "b2@example.gov.cn")
        data = json.loads(d.ok("send", str(issue), "--wait", "--json"))
        [failure] = data["failures"]
        assert failure["name"] == "乙二"
        assert failure["reason"] == "not sent: reader is inactive"  # JSON: as stored
        assert "未发送：读者已停用" in d.ok("status", str(issue))


@pytest.mark.parametrize(("stored", "shown"), [
    ("not sent: reader is unsubscribed", "未发送：读者已退订"),
    ("550 5.1.1 user unknown", "邮件服务器回复：550 5.1.1 user unknown"),
    ("gave up after 14 attempts in 2 d 0 h: 451 4.7.1 greylisted",
     "试了 14 次、历时 2 天 0 小时后放弃：邮件服务器回复：451 4.7.1 greylisted"),
    ("not attempted: could not connect: Connection refused",
     "未尝试发送：连不上邮件服务器：Connection refused"),
    ("not sent: render error: UndefinedError: 'x' is undefined",
     "未发送：生成出错：UndefinedError: 'x' is undefined"),
    ("timed out after 30s: TimeoutError", "30 秒无应答，超时：TimeoutError"),
    ("MAIL FROM refused: 530 5.7.0 Authentication required",
     "邮件服务器拒收发件地址：530 5.7.0 Authentication required"),
])
def test_reasons_are_ours_in_chinese_and_the_servers_word_for_word(stored, shown):
    from dispatch.deliver.report import reason_words

    assert reason_words(stored) == shown


LONG_ADDRESS = "wangjianguo.director@fazhigaiwei.xuchang.gov.cn"
LONG_FILE = "xuchang-bulletin-2025-issue-10-final-revised-by-editor.txt"
REPLY = (f"550 5.1.1 <{LONG_ADDRESS}>: Recipient address rejected: "
         "User unknown in virtual mailbox table")


def test_every_table_fits_80_columns_without_cutting_a_word(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    narrow = {"COLUMNS": "80"}
    readers = READERS_CSV + f"王建国,发展和改革委员会主任,{LONG_ADDRESS},wangjg,全部,邮件、企业微信\n"
    with MailServer(faults={LONG_ADDRESS: rcpt(REPLY)}) as server:
        issue = _install(d, tmp_path, server, readers)
        renamed = tmp_path / LONG_FILE
        renamed.write_bytes(SAMPLE_ISSUE.read_bytes())
        d.ok("issues", "ingest", str(renamed), "--again", env=narrow)
        outputs = {
            "send --dry-run": d.ok("send", str(issue), "--dry-run", env=narrow),
            "send --wait": d.ok("send", str(issue), "--wait", env=narrow),
            "status": d.ok("status", str(issue), env=narrow),
            "issues list": d.ok("issues", "list", env=narrow),
            "issues show": d.ok("issues", "show", str(issue), env=narrow),
        }
    for command, out in outputs.items():
        for line in out.splitlines():
            if line.startswith("文件："):  # a path, whole on its line to be copied
                continue
            assert cell_len(line) <= 80, (command, line)
    status = outputs["status"]
    assert "王建国" in status
    # Each word of the server's reply whole on a line, the address included.
    lines = status.splitlines()
    for word in REPLY.split():
        assert any(word in line for line in lines), word
    # The file's name is never wrapped: whole, or cut short with … at the end.
    listed = outputs["issues list"]
    assert LONG_FILE in listed or f"{LONG_FILE[:20]}" in listed and "…" in listed
    assert "by-editor.txt" not in listed or LONG_FILE in listed


def test_what_these_commands_say_is_chinese(dispatch_sqlite, tmp_path):
    """Output, errors and --help of the issue and delivery commands: no English sentence
    (tests/cli_language.py says what Latin is allowed)."""
    d = dispatch_sqlite
    said: dict[str, str] = {}

    def run(*args: str, code: int = 0) -> None:
        r = d(*args)
        assert r.exit_code == code, (args, r.stdout, r.stderr)
        said[" ".join(args)] = r.stdout + r.stderr

    with MailServer() as server:
        issue = str(_install(d, tmp_path, server))
        draft = json.loads(d.ok("issues", "ingest", str(SAMPLE_ISSUE), "--json", "--again"))
        article = str(draft["sections"][2]["articles"][0]["id"])
        other = tmp_path / "other.txt"
        other.write_text(SAMPLE_ISSUE.read_text(encoding="utf-8").replace("未来", "将来"),
                         encoding="utf-8")
        run("issues", "ingest", str(other))
        run("issues", "ingest", str(SAMPLE_ISSUE), code=1)
        run("issues", "ingest", str(SAMPLE_ISSUE), "--reuse")
        run("issues", "ingest", str(tmp_path / "missing.txt"), code=1)
        run("issues", "list")
        run("issues", "show", str(draft["id"]))
        run("issues", "tag", article, "--set", "生物医药,新能源汽车")
        run("issues", "tag", article, "--auto")
        run("issues", "tag", article, code=2)
        run("issues", "retag", str(draft["id"]))
        run("issues", "reschedule", str(draft["id"]), "--publish-at", "2099-01-01 08:00", code=1)
        run("issues", "finalize", str(draft["id"]), "--publish-at", "2099-01-01 08:00")
        run("issues", "reschedule", str(draft["id"]), "--publish-at", "2099-02-01 08:00")
        run("issues", "tag", article, "--auto", code=1)
        run("issues", "delete", str(draft["id"]), code=1)
        run("issues", "show", "999", code=1)
        run("preview", issue, "-r", "a1@example.gov.cn", "-o", str(tmp_path / "p.html"))
        run("preview", issue, "-r", "d4wx", "--format", "eml", code=1)
        run("send", issue, "--dry-run")
        run("send", issue, "--to", "editor@example.gov.cn", "--recipient", "a1@example.gov.cn")
        run("send", issue, "--wait")
        run("status", issue)
        run("retry", issue)
        d.ok("recipients", "deactivate", "a1@example.gov.cn")  # another helper's command
        run("preview", issue, "-r", "a1@example.gov.cn", "--format", "text")
        run("issues", "reschedule", issue, "--publish-at", "2099-03-01 08:00", code=1)
        run("send", str(json.loads(d.ok("issues", "ingest", str(other), "--json", "--again"))["id"]),
            code=1)
    for command in (("issues", "ingest"), ("issues", "list"), ("issues", "show"), ("issues", "tag"),
                    ("issues", "retag"), ("issues", "finalize"), ("issues", "reschedule"),
                    ("issues", "delete"), ("preview",), ("send",), ("status",), ("retry",),
                    ("run",), ("worker",), ("catcher",)):
        run(*command, "--help")
    for command, text in said.items():
        assert english_words(text) == [], (command, text)
