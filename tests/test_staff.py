"""Staff accounts and the staff web's sign-in (issue 12, point 1): the CLI, and /admin
over real HTTP (tests/served.py) on SQLite, with the clock injected."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from urllib.parse import quote, urlencode

import pytest
from cli_language import english_words
from conftest import REPO, SAMPLE_ISSUE
from served import Answer, listening_socket, request, serve
from sqlalchemy import select
from starlette.routing import Route

from dispatch import editorial
from dispatch.config import Config
from dispatch.db.models import LoginFailure, Staff, StaffChange
from dispatch.db.session import make_engine, session_factory, transaction
from dispatch.ingest import parse_file
from dispatch.runtime import Runtime
from dispatch.staff import accounts, passwords, sessions, throttle
from dispatch.web.app import create_app

PASSWORD = "correct horse 1"
# argon2 at its default cost takes ~0.15 s a hash here: made once, for every account.
PASSWORD_HASH = passwords.hash_password(PASSWORD)
T0 = 1_800_000_000.0


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Site:
    url: str
    runtime: Runtime
    clock: Clock
    routes: list[Route] = field(default_factory=list)
    login_token: str = ""

    def get(self, path: str, cookie: str = "", **headers: str) -> Answer:
        if cookie:
            headers["Cookie"] = f"{sessions.COOKIE}={cookie}"
        return request(self.url, "GET", path, headers=headers)

    def post(self, path: str, fields: dict[str, str], cookie: str = "", **headers: str) -> Answer:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        if cookie:
            headers["Cookie"] = f"{sessions.COOKIE}={cookie}"
        return request(self.url, "POST", path, urlencode(fields).encode(), headers)

    def login(self, name: str, password: str = PASSWORD, address: str = "") -> Answer:
        if not self.login_token:  # one form's token serves many tries, as in a browser
            self.login_token = _csrf(self.get("/admin/login").text)
        extra = {"X-Forwarded-For": address} if address else {}
        return self.post("/admin/login", {"csrf": self.login_token, "name": name,
                                          "password": password, "next": "/admin"}, **extra)

    def signed_in(self, name: str) -> str:
        answer = self.login(name)
        assert answer.status == 303, answer.text
        return _cookie(answer)

    def staff(self, name: str) -> Staff:
        with self.runtime.sessions() as s:
            return s.scalars(select(Staff).where(Staff.name == name)).one()


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return unescape(found.group(1))


def _cookie(answer: Answer) -> str:
    set_cookie = answer.headers["set-cookie"]
    for attr in ("HttpOnly", "SameSite=strict", "Path=/admin"):
        assert attr.lower() in set_cookie.lower(), set_cookie
    return set_cookie.split(";")[0].split("=", 1)[1]


def _visible(page: str) -> str:
    """What a staff member reads of a page: no style, no tags, no login names (data)."""
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    page = re.sub(r"\b(zhang|li)\b", " ", page)
    return unescape(re.sub(r"<[^>]+>", "\n", page))


@pytest.fixture
def site(sqlite_url) -> Iterator[Site]:
    sock = listening_socket()
    config = Config(base_dir=REPO)
    config.database.url = sqlite_url
    config.web.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runtime = Runtime(config)
    with transaction(runtime.sessions) as s:
        editorial.store_issue(s, parse_file(SAMPLE_ISSUE), str(SAMPLE_ISSUE), runtime.rules)
        for name, role, shown in (("zhang", "admin", "张三"), ("li", "editor", "李四")):
            s.add(Staff(name=name, display_name=shown, role=role, password_hash=PASSWORD_HASH))
    clock = Clock()
    app = create_app(runtime, clock=clock)
    try:
        with serve(app, sock) as url:
            yield Site(url, runtime, clock, [r for r in app.routes if isinstance(r, Route)])
    finally:
        runtime.engine.dispose()


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
    out = site.post("/admin/logout", {"csrf": _csrf(home.text)}, cookie)
    assert out.status == 303 and out.headers["location"] == "/admin/login"
    assert site.get("/admin", cookie).status == 303  # the old cookie is void


def test_every_admin_route_refuses_without_a_session(site: Site) -> None:
    admin_routes = [r for r in site.routes
                    if r.path.startswith("/admin") and r.path != "/admin/login"]
    assert {r.path for r in admin_routes} >= {"/admin", "/admin/logout", "/admin/staff"}
    for route in admin_routes:
        path = route.path.replace("{rest:path}", "anything")
        for method in route.methods or ():
            if method == "GET":
                answer = site.get(path)
                assert answer.status == 303, path
                assert answer.headers["location"] == f"/admin/login?next={quote(path, safe='')}"
            elif method == "POST":
                assert site.post(path, {}).status == 403, path


def test_post_without_a_form_token_changes_nothing(site: Site) -> None:
    cookie = site.signed_in("zhang")
    epoch = site.staff("zhang").session_epoch
    assert site.post("/admin/logout", {}, cookie).status == 403
    assert site.post("/admin/logout", {"csrf": "1.forged"}, cookie).status == 403
    other = site.signed_in("li")  # a token of another session is no good either
    other_token = _csrf(site.get("/admin", other).text)
    assert site.post("/admin/logout", {"csrf": other_token}, cookie).status == 403
    token = _csrf(site.get("/admin", cookie).text)
    cross = site.post("/admin/logout", {"csrf": token}, cookie, Origin="https://evil.example")
    assert cross.status == 403
    assert site.staff("zhang").session_epoch == epoch
    assert site.get("/admin", cookie).status == 200
    # The sign-in form wants its own token too.
    assert site.post("/admin/login", {"name": "zhang", "password": PASSWORD}).status == 403


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
    assert english_words(_visible(slowed.text)) == []
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
        assert english_words(_visible(page.text)) == [], page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
