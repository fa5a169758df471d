"""The staff web's whole path, as an editor walks it on publication day, in Debian's
headless Chromium against a real `dispatch run` (an instance made by `dispatch init`,
started from / with only its config) delivering to a real SMTP server on loopback
(STARTTLS and AUTH): sign in, upload the sample issue, fix a tag, import a list (first
with an error, then corrected), preview as a reader, finalize, watch it send live, and
see a reader's open and 有用 land in the report. Screenshots of every step are kept
(tests/browser.py: test-artifacts/screenshots/test_admin_whole_path/)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import cast

import pytest
from admin_site import Site
from browser import (
    DESKTOP,
    TABLET,
    Browsing,
    Tab,
    browsing,  # noqa: F401  (the fixture)
)
from conftest import SAMPLE_ISSUE
from smtp_servers import MailServer, free_port, make_certificates
from waiting import wait_for

from dispatch import clock

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "the editor's pass 1"
SMTP_USER, SMTP_PASSWORD = "bulletin", "smtp-s3cret"
PHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 "
         "(KHTML, like Gecko) Mobile/15E148")
HEADER = "姓名,单位,职务,分组,邮箱,企业微信账号,关注产业,接收方式,状态\n"
READERS = [
    "周明,许昌市发展和改革委员会,主任,市直部门,zhouming@example.gov.cn,,全部,邮件,正常",
    "孙丽,许昌瑞贝卡发制品有限公司,总经理,重点企业,sunli@example.com,,发制品、新材料,邮件,正常",
    "钱伟,许昌开普检测研究院,院长,重点企业,{email},,智能装备,邮件,正常",
]


@dataclass
class Service:
    url: str
    env: dict[str, str]
    config: Path
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> None:
        assert self.process.poll() is None, self.log.read_text(encoding="utf-8")


def fetch(url: str, user_agent: str = PHONE) -> int:
    request = urllib.request.Request(url, headers={"User-Agent": user_agent})
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()
        return int(answer.status)


def healthy(url: str) -> bool:
    try:
        return fetch(url + "/healthz") == 200
    except OSError:
        return False


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[MailServer]:
    certificates = make_certificates(tmp_path / "certs")
    with MailServer(security="starttls", certificates=certificates,
                    users={SMTP_USER: SMTP_PASSWORD}) as server:
        yield server


@pytest.fixture
def service(tmp_path: Path, mail: MailServer) -> Iterator[Service]:
    """An instance of its own, served by `dispatch run` started from /."""
    inst = tmp_path / "inst"
    dispatch = [sys.executable, "-m", "dispatch"]
    subprocess.run([*dispatch, "init", str(inst)], check=True, capture_output=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    assert mail.certificates is not None
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")},
        "DISPATCH_CONFIG": str(inst / "config.toml"),
        "DISPATCH_WEB__LISTEN": f"127.0.0.1:{port}",
        "DISPATCH_WEB__BASE_URL": url,
        "DISPATCH_SMTP__PORT": str(mail.port),
        "DISPATCH_SMTP__SECURITY": "starttls",
        "DISPATCH_SMTP__USERNAME": SMTP_USER,
        "DISPATCH_SMTP__TLS_CA_FILE": str(mail.certificates.ca_file),
        "DISPATCH_SMTP_PASSWORD": SMTP_PASSWORD,
        "DISPATCH_SCHEDULE__TICK_SECONDS": "1",
        # The reader here acts seconds after sending, when a real one would be a mail
        # gateway fetching ahead: a person's read counts at once.
        "DISPATCH_TRACKING__MACHINE_OPEN_SECONDS": "0",
    }
    added = subprocess.run([*dispatch, "staff", "add", "wang", "--role", "editor",
                            "--display-name", "王丽"], input=f"{PASSWORD}\n{PASSWORD}\n",
                           env=env, capture_output=True, text=True, cwd="/")
    assert added.returncode == 0, added.stderr
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen([*dispatch, "--config", str(inst / "config.toml"), "run"],
                                   env=env, cwd="/", stdout=out, stderr=subprocess.STDOUT)
    served = Service(url, env, inst / "config.toml", process, log)
    try:
        wait_for(lambda: served.alive() or healthy(url), "/healthz")
        yield served
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_an_editor_publishes_an_issue_from_the_browser(
    browsing: Browsing, service: Service, mail: MailServer, tmp_path: Path,  # noqa: F811
) -> None:
    site = cast(Site, service)  # the browser needs only its address
    tab = browsing.signed_in(site, "wang", DESKTOP, password=PASSWORD)
    page = tab.page
    tab.shot("01-home")

    # -- upload the sample issue: its sections and articles ------------------------------
    tab.open("/admin/issues/new")
    page.set_input_files("#file", str(SAMPLE_ISSUE))
    tab.submit("上传并入库")
    issue_path = tab.path
    assert re.fullmatch(r"/admin/issues/\d+(\?.*)?", issue_path), issue_path
    issue_path = issue_path.split("?")[0]
    sample = SAMPLE_ISSUE.read_text(encoding="utf-8")
    titles = page.locator("div.article h4").all_inner_texts()
    assert len(titles) >= 4 and all(t.split(" ")[0] in sample for t in titles), titles
    tab.shot("02-issue-uploaded")

    # -- fix a tag: the first article that is not 编者的话 is 发制品's (and not 综合) ------
    article = page.locator("div.article", has=page.locator("form")).filter(
        has_not=page.locator(".badge")).first
    article_id = article.get_attribute("id")
    hair = article.locator("input[value=hair]")
    assert not hair.is_checked()
    hair.check()
    article.locator("input[value=general]").uncheck()
    with page.expect_navigation():
        article.get_by_role("button", name="保存标签").click()
    fixed = page.locator(f"#{article_id}")
    assert fixed.locator("input[value=hair]").is_checked()
    assert "编辑指定" in fixed.locator("legend").inner_text()
    assert "发制品" in page.locator("#changes").inner_text()  # the change log: who, what
    assert "王丽" in page.locator("#changes").inner_text()
    retagged = fixed.locator("h4").inner_text()

    # -- import a list: an error first, shown by row and column, nothing written ---------
    bad = tmp_path / "名单.csv"
    bad.write_text(HEADER + "\n".join(READERS).format(email="qianwei@example") + "\n",
                   encoding="utf-8")
    tab.open("/admin/readers/import")
    page.set_input_files("#f-file", str(bad))
    _submit_any(tab, "检查名单")  # refused: the page again, with the errors
    errors = page.locator("table.data").first.inner_text()
    assert "4" in errors and "邮箱" in errors, errors  # row 4 (the header is row 1)
    assert "确认导入" not in page.content()
    tab.shot("03-import-error")
    tab.open("/admin/readers")
    assert "周明" not in page.content()

    good = tmp_path / "名单（改）.csv"
    good.write_text(HEADER + "\n".join(READERS).format(email="qianwei@example.cn") + "\n",
                    encoding="utf-8")
    tab.open("/admin/readers/import")
    page.set_input_files("#f-file", str(good))
    tab.submit("检查名单")
    preview = page.locator("main").inner_text()
    assert "3" in preview and "确认导入" in page.content()
    tab.shot("04-import-preview")
    tab.submit("确认导入")
    tab.open("/admin/readers")
    listed = page.locator("main").inner_text()
    assert all(name in listed for name in ("周明", "孙丽", "钱伟")), listed

    # -- preview as a reader: 孙丽 follows 发制品, so the retagged article is hers ---------
    tab.open(issue_path + "/preview?q=孙丽")
    reader_value = page.locator("#reader option", has_text="孙丽").first.get_attribute("value")
    assert reader_value
    tab.open(f"{issue_path}/preview?reader={reader_value}")
    frame = page.frame_locator("#email-frame")
    wait_for(lambda: "孙丽" in frame.locator("body").inner_text(), "the email's greeting", 15)
    assert titles_in(frame.locator("body").inner_text(), [retagged])
    tab.shot("05-preview")

    # -- finalize for now, and watch it go out without reloading the page ----------------
    tab.open(issue_path)
    page.fill("form[action$='/finalize'] #publish_at", clock.local_input(clock.utcnow()))
    with page.expect_navigation():
        page.get_by_role("button", name="定稿", exact=True).click()
    live = page.locator("[data-live]")
    assert live.count() == 1
    loaded_at = page.evaluate("Date.now()")
    # live.js replaces the counts in place until the fragment says it is done.
    wait_for(lambda: page.locator("[data-live] [data-live-done]").count() == 1
             and int(live.get_attribute("data-live-updated") or 0) > loaded_at,
             "the send to finish on the page", 90)
    counts = page.locator("#progress-counts").inner_text()
    assert len(mail.accepted) == 3, counts
    assert {r for m in mail.accepted for r in m.rcpt_tos} == {
        "zhouming@example.gov.cn", "sunli@example.com", "qianwei@example.cn"}
    assert mail.logins and all(ok for _, ok in mail.logins)  # AUTH over STARTTLS
    tab.shot("06-sent")

    # -- a reader opens it on a phone and presses 有用 -------------------------------------
    received = next(m for m in mail.accepted if "sunli@example.com" in m.rcpt_tos)
    html = message_from_bytes(received.data, policy=policy.default).get_body(("html",))
    body = html.get_content()  # type: ignore[union-attr]
    pixel = re.search(r'src="([^"]*/o/[a-z2-7]+\.gif)"', body)
    vote = re.search(r'href="([^"]*/f/[a-z2-7]+/\d+/useful)"', body)
    assert pixel and vote, body[:2000]
    assert fetch(pixel.group(1)) == 200 and fetch(vote.group(1)) == 200

    # -- the report shows them -----------------------------------------------------------
    issue_id = issue_path.rsplit("/", 1)[1]

    def report_shows() -> bool:
        tab.open(f"/admin/reports/{issue_id}")
        text = page.locator("main").inner_text()
        return "发出 3 份（3 人），33.3% 打开" in text and "有用 1" in text.replace("有用：", "有用 ")

    wait_for(report_shows, "the open and the vote in the report", 30)
    assert page.locator("main svg").count() >= 3  # the charts, drawn by the server
    tab.shot("07-report")
    assert tab.overflow() == 0 and tab.errors == [], tab.errors

    # -- and at 768 px every page of the path is still usable, at 1280 legible -----------
    for width in (DESKTOP, TABLET):
        tab = browsing.signed_in(site, "wang", width, password=PASSWORD)
        for name, path in (("home", "/admin"), ("issues", "/admin/issues"),
                           ("issue", issue_path), ("audience", issue_path + "/audience"),
                           ("preview", f"{issue_path}/preview?reader={reader_value}"),
                           ("readers", "/admin/readers"), ("import", "/admin/readers/import"),
                           ("feedback", "/admin/feedback"), ("reports", "/admin/reports"),
                           ("report", f"/admin/reports/{issue_id}"), ("account", "/admin/account")):
            tab.open(path)
            assert tab.overflow() == 0, (name, width)  # wide tables scroll in their box
            assert tab.small_text() == [], (name, width, tab.small_text())
            assert tab.cut_off("nav a") == [], (name, width)  # every menu item in reach
            tab.shot(f"08-{name}")
        assert tab.errors == [], tab.errors
    service.alive()


def titles_in(text: str, titles: list[str]) -> bool:
    return all(t.split(" ")[0] in text for t in titles)


def _submit_any(tab: Tab, button: str) -> None:
    """Press `button` and wait for the page, whatever its status (a refusal is a page)."""
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name=button, exact=True).click()

