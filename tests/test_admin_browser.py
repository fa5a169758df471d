"""The staff web in headless Chromium (issue 12, points 5 and 6): sign in through the
form, the first page, the staff accounts, a new account added through its form, my
account; at 1280 and 768 px nothing overflows sideways, no text is under 14 px, and the
browser reports no error (a CSP refusal would be one). Screenshots of each page are kept
(tests/browser.py says where)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from admin_site import PASSWORD, Site, admin_site
from browser import DESKTOP, VIEWPORTS, Browsing, Tab, browsing  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser

MENU = ["首页", "快报", "读者", "反馈", "报告", "工作人员"]


@pytest.fixture
def site(sqlite_url) -> Iterator[Site]:
    with admin_site(sqlite_url) as served:
        yield served


def looks_right(tab: Tab, name: str) -> None:
    """The page as a staff member sees it: screenshot, no sideways scrolling, legible
    text, no error in the browser."""
    shot = tab.shot(name)
    assert tab.overflow() == 0, f"{tab.path} at {tab.width} px is wider than the window: {shot}"
    assert tab.small_text() == [], f"{tab.path} at {tab.width} px: {shot}"
    assert tab.errors == [], tab.path


@pytest.mark.parametrize("viewport", VIEWPORTS.values(), ids=VIEWPORTS.keys())
def test_staff_pages_at_each_width(browsing: Browsing, site: Site,  # noqa: F811
                                   viewport: tuple[int, int]) -> None:
    login = browsing.tab(site, viewport)
    login.open("/admin/login")
    looks_right(login, "login")

    tab = browsing.signed_in(site, "zhang", viewport)
    page = tab.page
    assert page.get_by_role("heading", level=1).inner_text() == "欢迎，张三"
    assert tab.cut_off(".sections a") == []  # every menu item shown, inside the window
    assert page.locator(".sections a").all_inner_texts() == MENU
    looks_right(tab, "home")

    with page.expect_navigation():
        page.get_by_role("link", name="工作人员", exact=True).click()
    assert tab.path == "/admin/staff" and "李四" in page.inner_text("table")
    looks_right(tab, "staff-list")

    with page.expect_navigation():
        page.get_by_role("link", name="添加账号").click()
    page.fill("#name", "wang")
    page.fill("#display_name", "王五")
    page.select_option("#role", "editor")
    page.fill("#password", PASSWORD)
    page.fill("#password2", "mistyped password")
    tab.submit("添加账号")
    assert "两次输入的不一样" in page.inner_text(".message.error")
    assert page.input_value("#name") == "wang" and page.input_value("#password") == ""
    looks_right(tab, "staff-refused")
    page.fill("#password", PASSWORD)
    page.fill("#password2", PASSWORD)
    tab.submit("添加账号")
    assert tab.path.startswith("/admin/staff/") and tab.path.endswith("?done=created")
    assert page.inner_text(".message.ok") == "账号已添加。"
    assert "创建账号，角色：编辑" in page.inner_text("table >> nth=-1")
    looks_right(tab, "staff-added")

    with page.expect_navigation():
        page.get_by_role("link", name="张三（管理员）").click()
    assert tab.path == "/admin/account"
    looks_right(tab, "my-account")

    editor = browsing.signed_in(site, "wang", viewport)
    assert editor.page.locator(".sections a").all_inner_texts() == MENU[:-1]
    assert editor.open("/admin/staff", status=403)
    looks_right(editor, "editor-refused")


def test_live_js_runs_under_the_csp(browsing: Browsing, site: Site) -> None:  # noqa: F811
    """Our one script is allowed by the staff pages' CSP and follows a live part: the
    first page as the server sends it (its headers, its CSP), with a live part added, as
    a send's page has. An inline script in the same page is refused, and that refusal is
    what the other tests would see as an error."""
    tab = browsing.signed_in(site, "zhang", DESKTOP)
    probe = ('<div id="probe" data-live="/admin/live-probe" data-every="1">发送中……</div>'
             '<script>document.title = "inline ran";</script>')

    def with_probe(route):  # type: ignore[no-untyped-def]
        response = route.fetch()
        route.fulfill(response=response, body=response.text().replace("<main>", "<main>" + probe))

    fetched: list[str] = []

    def fragment(route):  # type: ignore[no-untyped-def]
        fetched.append(route.request.headers.get("x-live", ""))
        route.fulfill(status=200, content_type="text/html; charset=utf-8",
                      body='<p data-live-done>已全部发出：3 封</p>')

    tab.page.route(f"{site.url}/admin", with_probe)
    tab.page.route(f"{site.url}/admin/live-probe", fragment)
    answer = tab.open("/admin")
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    tab.page.wait_for_selector("#probe [data-live-done]")
    assert tab.page.inner_text("#probe") == "已全部发出：3 封" and fetched == ["1"]
    assert tab.page.title() != "inline ran"
    assert len(tab.errors) == 1 and "Content Security Policy" in tab.errors[0], tab.errors
    tab.shot("live")
