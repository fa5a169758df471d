"""Staff accounts in the staff web (issue 12, point 1): admins add accounts, change roles,
set passwords, disable and enable, and read each account's change log; everyone changes
their own password. Over real HTTP (tests/admin_site.py) on SQLite."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from admin_site import PASSWORD, Site, admin_site, form_token, session_cookie, visible
from cli_language import english_words
from sqlalchemy import func, select

from dispatch.db.models import Staff, StaffChange

NEW_PASSWORD = "a fresh pass 42"


@pytest.fixture
def site(sqlite_url) -> Iterator[Site]:
    with admin_site(sqlite_url) as served:
        yield served


def chinese(page: str) -> list[str]:
    """The English a staff member would read on `page` (the test's login names aside)."""
    return english_words(re.sub(r"\b(wang|zhao)\b", " ", visible(page)))


def counts(site: Site) -> tuple[int, int]:
    with site.runtime.sessions() as s:
        return (s.scalar(select(func.count()).select_from(Staff)) or 0,
                s.scalar(select(func.count()).select_from(StaffChange)) or 0)


def changes(site: Site, name: str) -> list[tuple[str, str | None, str | None, int | None]]:
    staff = site.staff(name)
    with site.runtime.sessions() as s:
        return [(c.field, c.old, c.new, c.by_staff_id) for c in s.scalars(
            select(StaffChange).where(StaffChange.staff_id == staff.id).order_by(StaffChange.id))]


def post_form(site: Site, cookie: str, page: str, action: str, **fields: str):  # type: ignore[no-untyped-def]
    """Post `fields` to `action` with the form token of `page`, as the browser would."""
    token = form_token(site.get(page, cookie).text)
    return site.post(action, {"csrf": token, **fields}, cookie)


def test_admin_adds_an_account_and_it_signs_in(site: Site) -> None:
    admin = site.signed_in("zhang")
    listing = site.get("/admin/staff", admin)
    assert listing.status == 200 and 'href="/admin/staff/new"' in listing.text
    form = site.get("/admin/staff/new", admin)
    assert form.status == 200 and chinese(form.text) == []
    added = post_form(site, admin, "/admin/staff/new", "/admin/staff/new", name=" wang ",
                      display_name="王五", role="admin", password=PASSWORD, password2=PASSWORD)
    assert added.status == 303, added.text
    wang = site.staff("wang")
    assert added.headers["location"] == f"/admin/staff/{wang.id}?done=created"
    assert (wang.display_name, wang.role, wang.active) == ("王五", "admin", True)
    page = site.get(added.headers["location"], admin)
    assert "账号已添加" in page.text and "创建账号，角色：管理员" in page.text
    assert "张三" in page.text  # who made it
    assert chinese(page.text) == []
    assert changes(site, "wang") == [("created", None, "admin", site.staff("zhang").id)]
    assert "王五" in site.get("/admin/staff", admin).text
    assert site.signed_in("wang")


@pytest.mark.parametrize("fields, reason", [
    ({"name": "wang", "password": "short", "password2": "short"}, "密码：至少 10 个字符"),
    ({"name": "wang", "password": PASSWORD, "password2": PASSWORD + "x"}, "两次输入的不一样"),
    ({"name": "li", "password": PASSWORD, "password2": PASSWORD}, "账号名：“li”已经有了"),
    ({"name": "wang wu", "password": PASSWORD, "password2": PASSWORD}, "不能含空格"),
    ({"name": "", "password": PASSWORD, "password2": PASSWORD}, "账号名：不能为空"),
    ({"name": "wang", "role": "root", "password": PASSWORD, "password2": PASSWORD},
     "角色：请选择编辑或管理员"),
], ids=["short", "mistyped", "taken", "space", "empty", "role"])
def test_a_refused_account_is_not_written(site: Site, fields: dict[str, str], reason: str) -> None:
    admin = site.signed_in("zhang")
    before = counts(site)
    form = {"display_name": "王五", "role": "editor", **fields}
    page = post_form(site, admin, "/admin/staff/new", "/admin/staff/new", **form)
    assert page.status == 200 and reason in page.text
    assert 'class="message error"' in page.text
    assert 'value="王五"' in page.text  # what was typed is kept, the passwords are not
    assert PASSWORD not in page.text and "short" not in page.text
    assert counts(site) == before
    assert chinese(page.text.replace(fields["name"], "")) == []


def test_role_password_disable_enable_each_logged(site: Site) -> None:
    admin, editor = site.signed_in("zhang"), site.signed_in("li")
    li = site.staff("li")
    page = f"/admin/staff/{li.id}"
    role = post_form(site, admin, page, f"{page}/role", role="admin")
    assert role.status == 303 and role.headers["location"] == f"{page}?done=role"
    assert site.get("/admin/staff", editor).status == 200  # the role holds at once
    same = post_form(site, admin, page, f"{page}/role", role="admin")
    assert same.headers["location"] == f"{page}?done=role-same"
    assert post_form(site, admin, page, f"{page}/role", role="editor").status == 303
    assert site.get("/admin/staff", editor).status == 403
    assert site.get("/admin", editor).status == 200  # a role change keeps the sessions

    short = post_form(site, admin, page, f"{page}/password", password="short", password2="short")
    assert short.status == 200 and "至少 10 个字符" in short.text
    assert site.get("/admin", editor).status == 200  # refused: nothing changed
    reset = post_form(site, admin, page, f"{page}/password", password=NEW_PASSWORD,
                      password2=NEW_PASSWORD)
    assert reset.status == 303
    assert site.get("/admin", editor).status == 303  # the new password ended li's sessions
    assert site.login("li").status == 200  # the old password is gone
    assert site.login("li", NEW_PASSWORD).status == 303

    disabled = post_form(site, admin, page, f"{page}/active", active="0")
    assert disabled.headers["location"] == f"{page}?done=disabled"
    assert "账号或密码不对" in site.login("li", NEW_PASSWORD).text
    shown = site.get(f"{page}?done=disabled", admin)
    assert "账号已停用" in shown.text and "启用账号" in shown.text
    assert post_form(site, admin, page, f"{page}/active", active="1").status == 303
    assert site.login("li", NEW_PASSWORD).status == 303

    zhang = site.staff("zhang").id
    assert changes(site, "li") == [
        ("role", "editor", "admin", zhang), ("role", "admin", "editor", zhang),
        ("password", None, None, zhang), ("active", "true", "false", zhang),
        ("active", "false", "true", zhang)]
    log = site.get(page, admin).text
    for line in ("角色：编辑 → 管理员", "角色：管理员 → 编辑", "设置了新密码", "停用账号", "启用账号"):
        assert line in log
    assert NEW_PASSWORD not in log and "argon2" not in log
    assert chinese(log) == []


def test_the_last_admin_keeps_their_role(site: Site) -> None:
    admin = site.signed_in("zhang")
    zhang = site.staff("zhang")
    page = f"/admin/staff/{zhang.id}"
    own = site.get(page, admin)
    assert "（您自己）" in own.text and 'href="/admin/account"' in own.text
    before = counts(site)
    off = post_form(site, admin, page, f"{page}/active", active="0")
    assert off.status == 200 and "不能停用自己：这是唯一启用的管理员账号" in off.text
    down = post_form(site, admin, page, f"{page}/role", role="editor")
    assert down.status == 200 and "不能把自己改为编辑" in down.text
    assert chinese(down.text) == []
    assert counts(site) == before
    assert (site.staff("zhang").role, site.staff("zhang").active) == ("admin", True)
    assert site.get("/admin/staff", admin).status == 200

    # With another admin, zhang may step down (and then is an editor).
    li = site.staff("li").id
    assert post_form(site, admin, page, f"/admin/staff/{li}/role", role="admin").status == 303
    assert post_form(site, admin, page, f"{page}/role", role="editor").status == 303
    assert site.get("/admin/staff", admin).status == 403


def test_an_unknown_account_is_not_found(site: Site) -> None:
    admin = site.signed_in("zhang")
    missing = site.get("/admin/staff/999", admin)
    assert missing.status == 404 and "没有这个账号" in missing.text
    refused = post_form(site, admin, "/admin/staff", "/admin/staff/999/active", active="0")
    assert refused.status == 404


def test_anyone_changes_their_own_password(site: Site) -> None:
    here, elsewhere = site.signed_in("li"), site.signed_in("li")
    page = site.get("/admin/account", here)
    assert page.status == 200 and "我的账号" in page.text and "李四" in page.text
    assert chinese(page.text) == []
    for fields, reason in (
        ({"old_password": "not my password", "password": NEW_PASSWORD,
          "password2": NEW_PASSWORD}, "原密码：不对"),
        ({"old_password": PASSWORD, "password": "short", "password2": "short"}, "至少 10 个字符"),
        ({"old_password": PASSWORD, "password": NEW_PASSWORD, "password2": "other"},
         "两次输入的不一样"),
    ):
        refused = post_form(site, here, "/admin/account", "/admin/account/password", **fields)
        assert refused.status == 200 and reason in refused.text, refused.text
        assert chinese(refused.text) == []
    assert changes(site, "li") == []

    done = post_form(site, here, "/admin/account", "/admin/account/password",
                     old_password=PASSWORD, password=NEW_PASSWORD, password2=NEW_PASSWORD)
    assert done.status == 303 and done.headers["location"] == "/admin/account?done=mine"
    renewed = session_cookie(done)
    assert site.get("/admin", here).status == 303  # the old cookie is void, here too …
    assert site.get("/admin", elsewhere).status == 303  # … and in the other browser
    mine = site.get("/admin/account?done=mine", renewed)
    assert mine.status == 200 and "您的新密码已设置" in mine.text
    assert "设置了新密码" in mine.text and NEW_PASSWORD not in mine.text
    li = site.staff("li").id
    assert changes(site, "li") == [("password", None, None, li)]
    assert site.login("li", NEW_PASSWORD).status == 303


def test_guessing_the_old_password_is_slowed_like_signing_in(site: Site) -> None:
    """A stolen session cannot try passwords at /admin/account faster than at sign-in:
    the guesses count for the account, and the sign-in form then waits too."""
    here = site.signed_in("li")
    last_login = site.staff("li").last_login_at
    for _ in range(5):
        wrong = post_form(site, here, "/admin/account", "/admin/account/password",
                          old_password="a guess 12345", password=NEW_PASSWORD,
                          password2=NEW_PASSWORD)
        assert wrong.status == 200 and "原密码：不对" in wrong.text
    slowed = post_form(site, here, "/admin/account", "/admin/account/password",
                       old_password=PASSWORD, password=NEW_PASSWORD, password2=NEW_PASSWORD)
    assert slowed.status == 429 and "请 15 分钟后再试" in slowed.text  # even the right one
    assert chinese(slowed.text) == []
    assert site.login("li").status == 429
    assert changes(site, "li") == []
    site.clock.now += 15 * 60 + 1
    done = post_form(site, here, "/admin/account", "/admin/account/password",
                     old_password=PASSWORD, password=NEW_PASSWORD, password2=NEW_PASSWORD)
    assert done.status == 303
    assert site.staff("li").last_login_at == last_login  # confirming is not signing in
