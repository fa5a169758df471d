"""The staff web in a real browser: Debian's headless Chromium driven by Playwright.

Playwright's own browser download is never used (no `playwright install`): Chromium is
the Debian package (scripts/system-deps installs it and the CJK fonts). A test module
gets one Chromium for all its tests and opens tabs at the widths under test:

    from browser import DESKTOP, TABLET, Browsing, browsing  # noqa: F401  (the fixture)

    @pytest.mark.browser
    def test_something(browsing: Browsing, site: Site) -> None:
        tab = browsing.signed_in(site, "zhang", TABLET)   # through the real sign-in form
        tab.open("/admin/staff")
        tab.page.fill("#name", "wang")                      # the Playwright Page
        tab.submit("添加账号")                              # press a button, wait for the page
        assert tab.overflow() == 0 and tab.small_text() == [] and tab.errors == []
        tab.shot("staff-added")   # test-artifacts/screenshots/<module>/staff-added-768.png

Screenshots go to $DISPATCH_TEST_ARTIFACTS/screenshots/<module>/ (default
<repo>/test-artifacts/, which git ignores); the folder is printed when the module ends.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from admin_site import PASSWORD, Site
from conftest import REPO

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page
    from playwright.sync_api import Response as PageResponse

CHROMIUM = "/usr/bin/chromium"
INSTALL = "apt-get install -y chromium fonts-noto-cjk (or run scripts/system-deps as root)"
DESKTOP = (1280, 800)
TABLET = (768, 1024)
VIEWPORTS = {"1280": DESKTOP, "768": TABLET}  # for parametrize: ids are the widths
MIN_FONT_PX = 14
TIMEOUT_MS = 10_000

# Text a staff member reads set smaller than MIN_FONT_PX: each as "tag 13px: its text".
SMALL_TEXT = """(min) => {
  const small = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    const el = node.parentElement;
    if (!text || !el || !el.getClientRects().length) continue;  // blank or not shown
    const size = parseFloat(getComputedStyle(el).fontSize);
    if (size < min) small.push(`${el.tagName.toLowerCase()} ${size}px: ${text.slice(0, 40)}`);
  }
  return small;
}"""


def artifacts() -> Path:
    root = os.environ.get("DISPATCH_TEST_ARTIFACTS")
    return (Path(root) if root else REPO / "test-artifacts") / "screenshots"


@dataclass
class Tab:
    """A page in its own browser context (its own cookies) at one viewport, and what the
    browser reported on its console: errors (a CSP refusal among them) and uncaught
    exceptions of our script."""

    page: Page
    base_url: str
    width: int
    folder: Path
    errors: list[str] = field(default_factory=list)

    def open(self, path: str, status: int = 200) -> PageResponse:
        """Go to `path` of the site (redirects followed) and expect `status` at the end."""
        response = self.page.goto(self.base_url + path)
        assert response is not None and response.status == status, (
            path, response and response.status, self.page.content()[:2000])
        if status >= 400:  # the browser says so on the console: expected here
            self.errors[:] = [e for e in self.errors if not e.endswith(f"({response.url})")]
        return response

    def submit(self, button: str, status: int = 200) -> PageResponse:
        """Press the form button labelled `button` and wait for the page it leads to."""
        with self.page.expect_navigation() as navigation:
            self.page.get_by_role("button", name=button, exact=True).click()
        response = navigation.value
        assert response is not None and response.status == status, (
            button, response and response.status, self.page.content()[:2000])
        return response

    @property
    def path(self) -> str:
        return self.page.url.removeprefix(self.base_url)

    def overflow(self) -> int:
        """How many pixels the page is wider than the window (0: no sideways scrolling;
        a wide table scrolls inside its .table-wrap instead)."""
        return int(self.page.evaluate(
            "document.documentElement.scrollWidth - window.innerWidth"))

    def small_text(self, min_px: int = MIN_FONT_PX) -> list[str]:
        """Shown text set smaller than `min_px` (none, on a legible page)."""
        return list(self.page.evaluate(SMALL_TEXT, min_px))

    def cut_off(self, selector: str) -> list[str]:
        """The elements matching `selector` (their text) that are hidden or reach past the
        window's right edge: none, when a menu is usable at this width."""
        return list(self.page.eval_on_selector_all(selector, """(els) => els.filter((el) => {
            const box = el.getBoundingClientRect();
            return !box.width || box.right > window.innerWidth;
        }).map((el) => el.textContent.trim())"""))

    def shot(self, name: str, full_page: bool = True) -> Path:
        """A screenshot, NAME-WIDTH.png in the module's artifacts folder."""
        target = self.folder / f"{name}-{self.width}.png"
        self.page.screenshot(path=str(target), full_page=full_page)
        return target


class Browsing:
    """One Chromium for a test module; `tab` and `signed_in` open pages in it."""

    def __init__(self, browser: Browser, folder: Path):
        self.browser = browser
        self.folder = folder

    def tab(self, site: Site, viewport: tuple[int, int] = DESKTOP) -> Tab:
        width, height = viewport
        context = self.browser.new_context(viewport={"width": width, "height": height},
                                           locale="zh-CN", timezone_id="Asia/Shanghai")
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        # The sites' addresses are 127.0.0.1 (the form guard compares the Origin with
        # base_url): the same here, never localhost.
        tab = Tab(page, site.url, width, self.folder)
        page.on("console", lambda m: _console(tab, m))
        page.on("pageerror", lambda e: tab.errors.append(f"pageerror: {e}"))
        return tab

    def signed_in(self, site: Site, name: str, viewport: tuple[int, int] = DESKTOP,
                  password: str = PASSWORD) -> Tab:
        """A tab signed in as `name` through the sign-in form, on the first page."""
        tab = self.tab(site, viewport)
        tab.open("/admin/login")
        tab.page.fill("#name", name)
        tab.page.fill("#password", password)
        tab.submit("登录")
        assert tab.path == "/admin", (tab.path, tab.page.content()[:2000])
        return tab


def _console(tab: Tab, message: ConsoleMessage) -> None:
    if message.type in ("error", "warning"):
        where = message.location.get("url", "")
        tab.errors.append(f"console {message.type}: {message.text} ({where})")


@pytest.fixture(scope="module")
def browsing(request: pytest.FixtureRequest) -> Iterator[Browsing]:
    """Headless Chromium, launched once for the module; screenshots in its own folder."""
    if not Path(CHROMIUM).exists() or not shutil.which("fc-list"):
        pytest.fail(f"headless Chromium is needed for this test; install it with: {INSTALL}")
    folder = artifacts() / request.module.__name__.rsplit(".", 1)[-1]
    folder.mkdir(parents=True, exist_ok=True)
    # Imported here: a run that leaves the browser tests out needs no Playwright.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright adds --no-sandbox (chromium_sandbox is off by default): the tests
        # run as root in CI, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield Browsing(browser, folder)
        finally:
            browser.close()
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is not None and any(folder.iterdir()):
        with capture.global_and_fixture_disabled():
            print(f"\nscreenshots: {folder}")
