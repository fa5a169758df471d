"""Staff accounts and the staff web's sign-in (issue 12, point 1): the CLI, and /admin
over real HTTP (tests/served.py) on SQLite, with the clock injected."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from admin_site import PASSWORD, Site, admin_site, form_token, visible
from cli_language import english_words
from sqlalchemy import select

from dispatch.db.models import LoginFailure, Staff, StaffChange
from dispatch.db.session import make_engine, session_factory, transaction
from dispatch.staff import accounts, sessions, throttle


@pytest.fixture
def site(sqlite_url) -> Iterator[Site]:
    with admin_site(sqlite_url) as served:
        yield served


# -- the CLI ---------------------------------------------------------------------------


def test_cli_add_list_passwd_disable(dispatch_sqlite) -> None:
    d = dispatch_sqlite
    r = d.runner.invoke(_cli(), [*_cfg(d), "staff", "add", "wang", "--role", "admin",
                                 "--display-name", "王五"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert r.exit_code == 0, r.output
    assert PASSWORD not in r.output
    assert english_words(r.stdout.replace("wang", "")) == []
    short = d.runner.invoke(_cli(), [*_cfg(d), "staff", "add", "zhao"], input="short\nshort\n")
    assert short.exit_code == 1 and "至少 10 个字符" in short.stderr
    differ = d.runner.invoke(_cli(), [*_cfg(d), "staff", "add", "zhao"],
                             input=f"{PASSWORD}\n{PASSWORD}x\n")
    assert differ.exit_code == 1 and "两次输入的不一样" in differ.stderr
    again = d.runner.invoke(_cli(), [*_cfg(d), "staff", "add", "wang"],
                            input=f"{PASSWORD}\n{PASSWORD}\n")
    assert again.exit_code == 1 and "已经有了" in again.stderr
    listed = json.loads(d.ok("staff", "list", "--json"))
    assert [(x["name"], x["display_name"], x["role"], x["active"]) for x in listed] == [
        ("wang", "王五", "admin", True)]
    assert english_words(d.ok("staff", "list").replace("wang", "")) == []
    r = d.runner.invoke(_cli(), [*_cfg(d), "staff", "passwd", "wang"],
                        input="another pass 2\nanother pass 2\n")
    assert r.exit_code == 0, r.output
    assert "已停用" in d.ok("staff", "disable", "wang")
    assert json.loads(d.ok("staff", "list", "--json"))[0]["active"] is False
    assert "已启用" in d.ok("staff", "enable", "wang")
    unknown = d("staff", "disable", "nobody")
    assert unknown.exit_code == 1 and "没有名为" in unknown.stderr
    engine = make_engine(d.db_url)
    try:
        with session_factory(engine)() as s:
            staff = s.scalars(select(Staff)).one()
            assert staff.session_epoch == 2  # passwd and disable each ended the sessions
            changes = [(c.field, c.old, c.new) for c in s.scalars(
                select(StaffChange).order_by(StaffChange.id))]
    finally:
        engine.dispose()
    assert changes == [("created", None, "admin"), ("password", None, None),
                       ("active", "true", "false"), ("active", "false", "true")]


def _cli():  # type: ignore[no-untyped-def]
    from dispatch.cli import app

    return app


def _cfg(d) -> list[str]:  # type: ignore[no-untyped-def]
    return ["--config", str(d.config)]


# -- the web ---------------------------------------------------------------------------


def test_sign_in_first_page_and_sign_out(site: Site) -> None:
    page = site.get("/admin/login")
    assert page.status == 200 and page.headers["x-frame-options"] == "DENY"
    wrong = site.login("zhang", "wrong password")
    assert wrong.status == 200 and "账号或密码不对" in wrong.text and "set-cookie" not in wrong.headers
    unknown = site.login("nobody", "wrong password")
    assert unknown.status == 200 and "账号或密码不对" in unknown.text
    cookie = site.signed_in("zhang")
    home = site.get("/admin", cookie)
    assert home.status == 200 and "欢迎，张三" in home.text
    assert "已定稿" in home.text or "草稿" in home.text  # the stored issue, its status in words
    assert site.staff("zhang").last_login_at is not None
    out = site.post("/admin/logout", {"csrf": form_token(home.text)}, cookie)
    assert out.status == 303 and out.headers["location"] == "/admin/login"
    assert site.get("/admin", cookie).status == 303  # the old cookie is void


def test_expired_and_forged_cookies_are_refused(site: Site) -> None:
    cookie = site.signed_in("li")
    staff_id, epoch, stamp, mac = cookie.split(".")
    forged = f"{site.staff('zhang').id}.{epoch}.{stamp}.{mac}"  # li's MAC, zhang's id
    assert site.get("/admin", forged).status == 303
    assert site.get("/admin", "garbage").status == 303
    site.clock.now += sessions.MAX_AGE - 60
    assert site.get("/admin", cookie).status == 200
    site.clock.now += 120
    assert site.get("/admin", cookie).status == 303


def test_disabled_account_or_new_password_ends_sessions(site: Site) -> None:
    cookie = site.signed_in("li")
    with transaction(site.runtime.sessions) as s:
        accounts.set_active(s, "li", False)
    assert site.get("/admin", cookie).status == 303
    assert "账号或密码不对" in site.login("li").text  # a disabled account cannot sign in
    with transaction(site.runtime.sessions) as s:
        accounts.set_active(s, "li", True)
    cookie = site.signed_in("li")
    with transaction(site.runtime.sessions) as s:
        accounts.set_password(s, "li", "a new password")
    assert site.get("/admin", cookie).status == 303


def test_throttle_by_account(site: Site) -> None:
    for _ in range(5):
        assert site.login("li", "wrong password").status == 200
    slowed = site.login("li")  # even the right password waits
    assert slowed.status == 429 and "请 15 分钟后再试" in slowed.text
    assert english_words(visible(slowed.text)) == []
    _failed(site, 4, name="ghost")  # earlier tries, as the table keeps them
    unknown = [site.login("ghost", "wrong password").status for _ in range(2)]
    assert unknown == [200, 429]  # an unknown name is slowed alike
    site.clock.now += 10 * 60
    assert "请 5 分钟后再试" in site.login("li").text
    site.clock.now += 5 * 60 + 1
    cookie = site.signed_in("li")
    assert site.staff("li").failed_logins == 0
    # A success clears the account's count: four more failures do not lock it.
    for _ in range(4):
        site.login("li", "wrong password")
    assert site.login("li").status == 303 and cookie


def test_throttle_by_address(site: Site) -> None:
    # uvicorn trusts X-Forwarded-For from loopback (its default), as behind a proxy.
    _failed(site, 19, address="10.0.0.1")  # earlier tries, as the table keeps them
    assert site.login("user", "wrong password", address="10.0.0.1").status == 200
    slowed = site.login("zhang", address="10.0.0.1")
    assert slowed.status == 429 and "请 14 分钟后再试" in slowed.text  # the oldest: 1 min ago
    assert site.login("zhang", address="10.0.0.2").status == 303  # another address: no wait
    site.clock.now += 15 * 60 + 1
    assert site.login("zhang", address="10.0.0.1").status == 303


def _failed(site: Site, n: int, name: str = "someone", address: str = "127.0.0.1") -> None:
    """n failed tries a minute ago (each costs an argon2 check over HTTP: too slow for 20)."""
    at = throttle.as_utc(site.clock.now - 60)
    with transaction(site.runtime.sessions) as s:
        s.add_all(LoginFailure(at=at, name=name, address=address) for _ in range(n))


def test_editor_is_refused_the_staff_page(site: Site) -> None:
    editor = site.get("/admin/staff", site.signed_in("li"))
    assert editor.status == 403 and "只有管理员" in editor.text
    admin = site.get("/admin/staff", site.signed_in("zhang"))
    assert admin.status == 200 and "李四" in admin.text and "编辑" in admin.text


def test_pages_are_chinese(site: Site) -> None:
    cookie = site.signed_in("zhang")
    pages = [site.get("/admin/login"), site.get("/admin", cookie),
             site.get("/admin/staff", cookie), site.get("/admin/nothing", cookie),
             site.get("/admin/staff", site.signed_in("li")), site.login("zhang", "wrong pass")]
    for page in pages:
        assert english_words(visible(page.text)) == [], page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
