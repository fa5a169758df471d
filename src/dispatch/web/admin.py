"""The staff web under /admin: sign-in, sign-out, the first page, the account list.

    GET  /admin/login[?next=PATH]  the sign-in form        POST /admin/login   sign in
    POST /admin/logout             sign out (ends every session of the account)
    GET  /admin                    欢迎 and the newest issues
    GET  /admin/staff              the accounts (admin only)

Nothing else answers without a session: a GET is sent to the sign-in page (303), a POST
refused (403). Every POST carries a form token (dispatch.staff.sessions) and must not say
it came from another site (web.forms.cross_site); else 403 and nothing changes. Times
come from `clock` (Unix seconds), injected by tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, quote

from jinja2 import Environment
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from dispatch.clock import show
from dispatch.db.models import Issue, Staff
from dispatch.db.session import transaction
from dispatch.runtime import Runtime
from dispatch.staff import accounts, sessions, throttle
from dispatch.statewords import ISSUE_WORDS
from dispatch.web.forms import cross_site, read_capped

log = logging.getLogger(__name__)

Clock = Callable[[], float]
MAX_FORM_BYTES = 8 * 1024
NEWEST_ISSUES = 20
TITLES = {403: "无权访问", 404: "页面不存在"}


@dataclass(frozen=True)
class Signed:
    """The staff member of a request with a good session, and its cookie's value."""

    id: int
    name: str
    display_name: str
    role: str
    cookie: str


class Admin:
    def __init__(self, runtime: Runtime, env: Environment, headers: dict[str, str],
                 clock: Clock):
        self.runtime = runtime
        self.env = env
        self.headers = headers
        self.clock = clock
        self.secure = runtime.config.web.base_url.lower().startswith("https:")

    # -- helpers ---------------------------------------------------------------------

    def _page(self, template: str, status: int = 200, **values: object) -> HTMLResponse:
        body = self.env.get_template(template).render(**values)
        return HTMLResponse(body, status_code=status, headers=self.headers)

    def _refused(self, status: int, message: str, who: Signed | None = None) -> HTMLResponse:
        return self._page("admin_message.html.j2", status, title=TITLES.get(status, "出错了"),
                          message=message, who=who, csrf=self._csrf(who))

    def _csrf(self, who: Signed | None) -> str:
        return sessions.form_token(self.runtime.signing_key, who.cookie, self.clock()) if who else ""

    def _signed(self, request: Request) -> Signed | None:
        cookie = request.cookies.get(sessions.COOKIE, "")
        claim = sessions.read(self.runtime.signing_key, cookie, self.clock()) if cookie else None
        if claim is None:
            return None
        with self.runtime.sessions() as session:
            staff = session.get(Staff, claim.staff_id)
            if staff is None or not staff.active or staff.session_epoch != claim.epoch:
                return None
            return Signed(staff.id, staff.name, staff.display_name, staff.role, cookie)

    def _set_cookie(self, response: Response, value: str, max_age: int) -> None:
        response.set_cookie(sessions.COOKIE, value, max_age=max_age, path="/admin",
                            httponly=True, samesite="strict", secure=self.secure)

    async def _form(self, request: Request) -> dict[str, str] | None:
        """A POST's fields, or None when it is too long, unreadable or cross-site."""
        if cross_site(request.headers, self.runtime.config.web.base_url):
            return None
        try:
            body = await read_capped(request, MAX_FORM_BYTES)
        except ClientDisconnect:
            return None
        if body is None:
            return None
        text = body.decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}

    def _session_post_ok(self, who: Signed | None, form: dict[str, str] | None) -> bool:
        return (who is not None and form is not None and sessions.form_token_ok(
            self.runtime.signing_key, who.cookie, form.get("csrf", ""), self.clock()))

    # -- endpoints -------------------------------------------------------------------

    def login_page(self, request: Request) -> Response:
        return self._login(_safe_next(request.query_params.get("next")), "", "")

    def _login(self, next_: str, name: str, message: str, status: int = 200) -> Response:
        token = sessions.login_token(self.runtime.signing_key, self.clock())
        return self._page("admin_login.html.j2", status, next=next_, name=name,
                          message=message, csrf=token, who=None)

    async def login(self, request: Request) -> Response:
        form = await self._form(request)
        if form is None or not sessions.login_token_ok(
            self.runtime.signing_key, form.get("csrf", ""), self.clock()
        ):
            return self._refused(403, "请求无效：请回到登录页重新登录。")
        address = request.client.host if request.client else ""
        name, password = form.get("name", ""), form.get("password", "")
        next_ = _safe_next(form.get("next"))
        now = self.clock()
        with transaction(self.runtime.sessions) as session:
            outcome = throttle.sign_in(session, name, password, address, now)
            staff = outcome.staff
            signed = (staff.id, staff.session_epoch) if staff else None
        if outcome.wait_minutes:
            return self._login(next_, name, f"登录失败次数过多，请 {outcome.wait_minutes} 分钟后再试。", 429)
        if signed is None:
            return self._login(next_, name, "账号或密码不对。", 200)
        log.info("staff %d signed in", signed[0])
        response = RedirectResponse(next_, status_code=303, headers=self.headers)
        self._set_cookie(response, sessions.issue(self.runtime.signing_key, *signed, now),
                         sessions.MAX_AGE)
        return response

    async def logout(self, request: Request) -> Response:
        who = await run_in_threadpool(self._signed, request)
        form = await self._form(request)
        if not self._session_post_ok(who, form):
            return self._refused(403, "请求无效：请刷新页面后再试。")
        assert who is not None
        with transaction(self.runtime.sessions) as session:
            staff = session.get(Staff, who.id)
            if staff is not None:
                staff.session_epoch += 1  # the cookie is void even if someone kept a copy
        response = RedirectResponse("/admin/login", status_code=303, headers=self.headers)
        self._set_cookie(response, "", 0)
        return response

    def home(self, request: Request) -> Response:
        who = self._signed(request)
        if who is None:
            return _to_login(request, self.headers)
        with self.runtime.sessions() as session:
            issues = [
                {"id": i.id, "title": i.title, "status": ISSUE_WORDS.get(i.status, i.status),
                 "created": show(i.created_at)}
                for i in session.scalars(
                    select(Issue).order_by(Issue.created_at.desc(), Issue.id.desc())
                    .limit(NEWEST_ISSUES)
                )
            ]
        return self._page("admin_home.html.j2", who=who, csrf=self._csrf(who), issues=issues)

    def staff_list(self, request: Request) -> Response:
        who = self._signed(request)
        if who is None:
            return _to_login(request, self.headers)
        if who.role != "admin":
            return self._refused(403, "只有管理员可以查看和管理工作人员账号。", who)
        with self.runtime.sessions() as session:
            rows = [
                {"name": r.name, "display_name": r.display_name,
                 "role": accounts.ROLE_WORDS[r.role], "active": "启用" if r.active else "停用",
                 "last_login": show(r.last_login_at) or "从未登录"}
                for r in accounts.rows(session)
            ]
        return self._page("admin_staff.html.j2", who=who, csrf=self._csrf(who), rows=rows)

    def other_get(self, request: Request) -> Response:
        who = self._signed(request)
        if who is None:
            return _to_login(request, self.headers)
        return self._refused(404, "这个页面不存在。", who)

    async def other_post(self, request: Request) -> Response:
        who = await run_in_threadpool(self._signed, request)
        return self._refused(403 if who is None else 404, "请求无效。", who)

    def routes(self) -> list[Route]:
        return [
            Route("/admin/login", self.login_page, methods=["GET"]),
            Route("/admin/login", self.login, methods=["POST"]),
            Route("/admin/logout", self.logout, methods=["POST"]),
            Route("/admin", self.home, methods=["GET"]),
            Route("/admin/staff", self.staff_list, methods=["GET"]),
            Route("/admin/{rest:path}", self.other_get, methods=["GET"]),
            Route("/admin/{rest:path}", self.other_post, methods=["POST"]),
        ]


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of ours under /admin, never another site."""
    if value and value.startswith("/admin") and "//" not in value and "\\" not in value:
        return value
    return "/admin"


def _to_login(request: Request, headers: dict[str, str]) -> Response:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/admin/login?next={quote(path, safe='')}", status_code=303,
                            headers=headers)


def routes(runtime: Runtime, env: Environment, headers: dict[str, str],
           clock: Clock) -> list[Route]:
    return Admin(runtime, env, headers, clock).routes()
