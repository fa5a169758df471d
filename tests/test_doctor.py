"""`dispatch doctor`, run as a user runs it, against real servers on loopback: an SMTP
server with STARTTLS and AUTH (tests/smtp_servers.py), Dovecot (tests/imap_server.py), a
port nothing listens on, SQLite files at an old schema. What it prints is Chinese, names
the key or variable to fix, and never holds a secret."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from cli_language import english_words
from conftest import Dispatch, Result
from imap_server import ImapServer
from smtp_servers import Certificates, MailServer, free_port, make_certificates
from sqlalchemy import select
from typer.testing import CliRunner

from dispatch.cli import app
from dispatch.cli.zh import cells
from dispatch.config import load
from dispatch.db.models import WecomToken
from dispatch.db.session import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    session_factory,
)
from dispatch.doctor import aes_key_ok, check_web
from dispatch.wecom_sim import WecomSim

USER, PASSWORD = "bulletin", "s3cret-Pa55"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def relay(certificates) -> Iterator[MailServer]:
    """A relay that wants STARTTLS, then AUTH."""
    with MailServer(security="starttls", certificates=certificates,
                    users={USER: PASSWORD}) as server:
        yield server


def configure(d: Dispatch, text: str) -> None:
    with d.config.open("a", encoding="utf-8") as f:
        f.write(text)


def smtp_section(server: MailServer, *, username: str = USER) -> str:
    return (f'[smtp]\nhost = "{server.host}"\nport = {server.port}\n'
            f'security = "{server.security}"\nusername = "{username}"\n'
            f'tls_ca_file = "{server.certificates.ca_file}"\n')  # type: ignore[union-attr]


def lines(r: Result) -> dict[str, str]:
    """Part → its line and the fix under it, from what doctor printed (checked Chinese)."""
    assert english_words(r.stdout + r.stderr) == [], r.stdout + r.stderr
    found: dict[str, str] = {}
    part = ""
    for line in r.stdout.splitlines():
        if line[:2] in ("✓ ", "! ", "✗ "):
            part = line[2:].split("：", 1)[0]
            found[part] = line
        elif line.startswith("    改法："):
            found[part] += "\n" + line
    return found


def test_all_good_then_a_wrong_password_then_json(dispatch_sqlite, relay):
    d = dispatch_sqlite
    d.ok("db", "upgrade")
    configure(d, smtp_section(relay))

    r = d("doctor", env={"DISPATCH_SMTP_PASSWORD": PASSWORD})
    assert r.exit_code == 0, r.stdout
    found = lines(r)
    assert list(found) == ["配置", "数据库", "邮件发送", "网页"]
    assert all(line.startswith("✓") for line in found.values()), r.stdout
    assert "STARTTLS" in found["邮件发送"] and "登录成功" in found["邮件发送"]
    assert r.stdout.rstrip().endswith("全部正常")
    assert relay.logins[-1] == (USER, True) and relay.accepted == []  # no mail sent

    wrong = "Wr0ng-Secret-xyz"
    r = d("doctor", env={"DISPATCH_SMTP_PASSWORD": wrong})
    assert r.exit_code == 1
    smtp = lines(r)["邮件发送"]
    assert smtp.startswith("✗") and "535" in smtp and "用户名或密码不对" in smtp
    assert "$DISPATCH_SMTP_PASSWORD" in smtp and "[smtp] username" in smtp
    assert wrong not in r.stdout + r.stderr
    assert r.stdout.rstrip().endswith("1 项有问题")

    r = d("doctor", "--json", env={"DISPATCH_SMTP_PASSWORD": wrong})
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert [x["part"] for x in data] == ["配置", "数据库", "邮件发送", "网页"]
    assert all(set(x) == {"part", "status", "message", "fix"} for x in data)
    assert [x["status"] for x in data] == ["ok", "ok", "problem", "ok"]
    assert "$DISPATCH_SMTP_PASSWORD" in data[2]["fix"] and data[0]["fix"] is None
    assert wrong not in r.stdout

    # No password at all: named, and nothing is tried.
    before = len(relay.logins)
    smtp = lines(d("doctor"))["邮件发送"]
    assert smtp.startswith("✗") and "$DISPATCH_SMTP_PASSWORD" in smtp
    assert len(relay.logins) == before


def test_a_relay_that_wants_auth_without_a_username(dispatch_sqlite, relay):
    d = dispatch_sqlite
    d.ok("db", "upgrade")
    configure(d, smtp_section(relay, username=""))
    r = d("doctor")
    smtp = lines(r)["邮件发送"]
    assert r.exit_code == 1 and smtp.startswith("✗")
    assert "要求登录" in smtp and "[smtp] username" in smtp and relay.accepted == []


def test_tls_that_cannot_work_says_which_key(dispatch_sqlite, relay, mail):
    d = dispatch_sqlite
    d.ok("db", "upgrade")
    base = d.config.read_text(encoding="utf-8")
    env = {"DISPATCH_SMTP_PASSWORD": PASSWORD}
    for section, words, key in [
        # The relay's certificate is the test CA's, not trusted without tls_ca_file.
        (smtp_section(relay).replace(f'tls_ca_file = "{relay.certificates.ca_file}"\n', ""),
         "证书不受信任", "[smtp] tls_ca_file"),
        # Implicit TLS to a port that speaks plain SMTP first.
        (smtp_section(relay).replace('"starttls"', '"tls"'), "TLS 握手失败", "[smtp] security"),
        # STARTTLS asked of a server that does not offer it.
        (f'[smtp]\nhost = "{mail.host}"\nport = {mail.port}\nsecurity = "starttls"\n',
         "不支持 STARTTLS", "[smtp] security"),
    ]:
        d.config.write_text(base + section, encoding="utf-8")
        r = d("doctor", env=env)
        smtp = lines(r)["邮件发送"]
        assert r.exit_code == 1 and smtp.startswith("✗") and words in smtp and key in smtp, smtp
        assert PASSWORD not in r.stdout


def test_nothing_listening_and_a_database_behind_its_schema(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    engine = make_engine(d.db_url)
    from alembic import command

    command.upgrade(alembic_config(engine), "0007")  # one behind
    port = free_port()
    configure(d, f'[smtp]\nhost = "127.0.0.1"\nport = {port}\n')

    r = d("doctor")
    assert r.exit_code == 1
    found = lines(r)
    assert found["数据库"].startswith("✗") and "0007" in found["数据库"]
    assert "dispatch db upgrade" in found["数据库"]
    assert found["邮件发送"].startswith("✗") and f"127.0.0.1:{port}" in found["邮件发送"]
    assert "对方拒绝连接" in found["邮件发送"] and "[smtp] port" in found["邮件发送"]
    assert r.stdout.rstrip().endswith("2 项有问题")
    assert current_revision(engine) == "0007"  # doctor did not migrate it
    engine.dispose()
    assert head_revision() != "0007"


def test_a_missing_folder_of_the_config_is_a_finding_not_a_refusal(dispatch_sqlite, tmp_path):
    d = dispatch_sqlite
    d.ok("db", "upgrade")
    d.config.write_text(d.config.read_text(encoding="utf-8").replace(
        "[paths]\n", f'[paths]\nrecipients = "{tmp_path / "gone"}"\n'), encoding="utf-8")
    r = d("doctor")
    found = lines(r)
    assert r.exit_code == 1 and list(found)[:2] == ["配置", "数据库"]
    assert found["配置"].startswith("✗") and "[paths] recipients" in found["配置"]
    assert found["数据库"].startswith("✓")


@pytest.fixture(scope="module")
def imap(certificates) -> Iterator[ImapServer]:
    with ImapServer(certificates) as server:
        yield server


def test_imap_login_refused_names_the_variable(dispatch_sqlite, relay, imap):
    d = dispatch_sqlite
    d.ok("db", "upgrade")
    user = imap.add_user()
    configure(d, smtp_section(relay)
              + f'[imap]\nenabled = true\nhost = "{imap.host}"\nport = {imap.port}\n'
                f'security = "starttls"\nusername = "{user}"\n'
                f'tls_ca_file = "{imap.certificates.ca_file}"\nprocessed_mailbox = "已处理"\n')

    wrong = "n0t-the-Password"
    r = d("doctor", env={"DISPATCH_SMTP_PASSWORD": PASSWORD, "DISPATCH_IMAP_PASSWORD": wrong})
    inbox = lines(r)["收信"]
    assert r.exit_code == 1 and inbox.startswith("✗")
    assert "拒绝登录" in inbox and "$DISPATCH_IMAP_PASSWORD" in inbox
    assert wrong not in r.stdout + r.stderr

    r = d("doctor", env={"DISPATCH_SMTP_PASSWORD": PASSWORD,
                         "DISPATCH_IMAP_PASSWORD": imap.passwords[user]})
    inbox = lines(r)["收信"]
    assert r.exit_code == 0 and inbox.startswith("✓")
    assert "“INBOX”" in inbox and "“已处理”还没有" in inbox  # listed, not made
    client = imap.client(user)
    try:
        assert client.list('""', '"*"')[1] == [b'(\\HasNoChildren) "." INBOX']  # nothing made
    finally:
        client.logout()


@pytest.mark.parametrize("base_url, smtp_host, status", [
    ("https://bulletin.example.gov.cn", "smtp.example.gov.cn", "ok"),
    ("http://bulletin.example.gov.cn", "smtp.example.gov.cn", "warning"),
    ("http://127.0.0.1:8080", "smtp.example.gov.cn", "warning"),
    ("http://127.0.0.1:8080", "127.0.0.1", "ok"),
    ("bulletin.example.gov.cn", "127.0.0.1", "problem"),
])
def test_web_base_url(base_url, smtp_host, status):
    config = load(env={"DISPATCH_WEB__BASE_URL": base_url, "DISPATCH_SMTP__HOST": smtp_host,
                       "XDG_DATA_HOME": "/nonexistent"})
    finding = check_web(config)
    assert finding.status == status
    assert english_words(finding.message + (finding.fix or "")) == []


def test_aes_key_shape():
    assert aes_key_ok("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
    assert not aes_key_ok("abcdefghijklmnopqrstuvwxyz0123456789ABCDEF")  # 42
    assert not aes_key_ok("abcdefghijklmnopqrstuvwxyz0123456789ABCDE!G")


def test_help_is_chinese_fits_80_columns_and_imports_nothing_heavy():
    from test_cli_startup import HEAVY, PROBE

    done = subprocess.run(
        [sys.executable, "-c", PROBE.replace("HEAVY", repr(json.dumps(HEAVY))), "doctor", "--help"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    result = json.loads(done.stderr.strip().splitlines()[-1])
    assert result["code"] == 0 and result["loaded"] == [], done.stderr
    assert english_words(done.stdout) == [], done.stdout
    narrow = CliRunner().invoke(app, ["doctor", "--help"], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0 and max(cells(line) for line in narrow.stdout.splitlines()) <= 80


# -- WeChat Work, against the local stand-in of its API (dispatch.wecom_sim) ---------------

WECOM_SECRET = "Agent-Secret-0123456789-abcdefghij"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
CALLBACK_TOKEN = "CallbackT0ken"


@pytest.fixture(scope="module")
def wecom() -> Iterator[WecomSim]:
    sim = WecomSim(corp_id="wwdoctor01", secret=WECOM_SECRET, agent_id=1000002)
    sim.start()
    yield sim
    sim.stop()


def test_wecom_token_and_callback(dispatch_sqlite, wecom):
    d = dispatch_sqlite
    d.ok("db", "upgrade")
    base = d.config.read_text(encoding="utf-8")

    def run(*, corp: str = "wwdoctor01", url: str = wecom.base_url, kind: str = "news",
            **env: str) -> dict[str, str]:
        d.config.write_text(
            base + f'[wecom]\nenabled = true\ncorp_id = "{corp}"\nagent_id = 1000002\n'
                   f'api_base_url = "{url}"\nmessage_type = "{kind}"\ntimeout_seconds = 5\n',
            encoding="utf-8")
        env = {"DISPATCH_WECOM_SECRET": WECOM_SECRET, "DISPATCH_WECOM_TOKEN": CALLBACK_TOKEN,
               "DISPATCH_WECOM_AES_KEY": AES_KEY, **env}
        r = d("doctor", env=env)
        for secret in {WECOM_SECRET, CALLBACK_TOKEN, AES_KEY, *env.values()} - {""}:
            assert secret not in r.stdout + r.stderr
        return lines(r)

    found = run()
    assert found["企业微信"].startswith("✓") and "新的访问令牌" in found["企业微信"]
    assert found["企业微信回调"].startswith("✓") and "/wecom/callback" in found["企业微信回调"]
    with session_factory(make_engine(d.db_url))() as s:  # fetched, cached, not printed
        [token] = s.scalars(select(WecomToken.access_token)).all()
    assert token and token not in "\n".join(found.values())

    found = run(DISPATCH_WECOM_SECRET="Not-The-Agent-Secret-42")
    assert found["企业微信"].startswith("✗") and "40001" in found["企业微信"]
    assert "$DISPATCH_WECOM_SECRET" in found["企业微信"]

    found = run(corp="wwsomeoneelse")
    assert found["企业微信"].startswith("✗") and "[wecom] corp_id" in found["企业微信"]

    found = run(url=f"http://127.0.0.1:{free_port()}")
    assert found["企业微信"].startswith("✗") and "[wecom] api_base_url" in found["企业微信"]

    found = run(DISPATCH_WECOM_SECRET="")
    assert found["企业微信"].startswith("✗") and "$DISPATCH_WECOM_SECRET" in found["企业微信"]

    # The callback: buttons of a template card lead nowhere without it; a malformed key.
    found = run(kind="template_card", DISPATCH_WECOM_TOKEN="")
    callback = found["企业微信回调"]
    assert callback.startswith("✗") and "$DISPATCH_WECOM_TOKEN" in callback and "按钮" in callback
    assert run(DISPATCH_WECOM_TOKEN="")["企业微信回调"].startswith("!")
    callback = run(DISPATCH_WECOM_AES_KEY=AES_KEY[:-1])["企业微信回调"]
    assert callback.startswith("✗") and "$DISPATCH_WECOM_AES_KEY" in callback
