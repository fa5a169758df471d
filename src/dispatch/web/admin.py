"""The staff web under /admin: sign-in, sign-out, the first page, and the page modules.

    GET  /admin/login[?next=PATH]  the sign-in form        POST /admin/login   sign in
    POST /admin/logout             sign out (ends every session of the account)
    GET  /admin                    欢迎 and the newest issues
    GET  /admin/static/{name}      our own script and styles (defaults/static/)
    /admin/issues…                 issues: upload, tags, preview, finalize, send (web.admin_issues)
    /admin/readers…                readers and their lists (web.admin_readers)
    /admin/feedback…, /admin/reports…  the inbox (web.admin_feedback), the reports (web.admin_reports)
    /admin/staff…                  staff accounts, admins only (web.admin_staff)

Every route but the sign-in page goes through web.desk's guards. Anything else under
/admin answers like a missing page of a signed-in session: the sign-in page (GET) or 403
(POST) without one. Times come from `clock` (Unix seconds), injected by tests.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

from jinja2 import Environment
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from dispatch import defaults
from dispatch.db.models import Issue, Staff
from dispatch.db.session import transaction
from dispatch.runtime import Runtime
from dispatch.staff import sessions, throttle
from dispatch.statewords import ISSUE_WORDS
from dispatch.web import admin_feedback, admin_issues, admin_readers, admin_reports, admin_staff
from dispatch.web.desk import Clock, Desk, Posted, Signed, admin_headers
from dispatch.web.forms import cross_site, read_capped

log = logging.getLogger(__name__)

LOGIN_FORM_BYTES = 8 * 1024
NEWEST_ISSUES = 20
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


class Admin:
    def __init__(self, desk: Desk):
        self.desk = desk
        self.runtime = desk.runtime

    def login_page(self, request: Request) -> Response:
        return self._login(request, _safe_next(request.query_params.get("next")), "", "")

    def _login(self, request: Request, next_: str, name: str, message: str,
               status: int = 200) -> Response:
        nonce = request.cookies.get(sessions.LOGIN_COOKIE, "")
        fresh = not sessions.login_nonce_ok(nonce)
        if fresh:
            nonce = sessions.new_login_nonce()
        token = sessions.login_token(self.runtime.signing_key, nonce, self.desk.clock())
        body = self.desk.env.get_template("admin_login.html.j2").render(
            next=next_, name=name, message=message, csrf=token, who=None)
        response = HTMLResponse(body, status_code=status, headers=self.desk.headers)
        if fresh:
            response.set_cookie(sessions.LOGIN_COOKIE, nonce, max_age=sessions.MAX_AGE,
                                path="/admin/login", httponly=True, samesite="strict",
                                secure=self.desk.secure)
        return response

    async def login(self, request: Request) -> Response:
        form = await self._login_form(request)
        nonce = request.cookies.get(sessions.LOGIN_COOKIE, "")
        if form is None or not sessions.login_token_ok(
            self.runtime.signing_key, nonce, form.get("csrf"), self.desk.clock()
        ):
            return self.desk.refused(403, "请求无效：请回到登录页重新登录。")
        address = request.client.host if request.client else ""
        name, password = form.get("name"), form.get("password")
        next_ = _safe_next(form.get("next"))
        now = self.desk.clock()
        with transaction(self.runtime.sessions) as session:
            outcome = throttle.sign_in(session, name, password, address, now)
            staff = outcome.staff
            signed = (staff.id, staff.session_epoch) if staff else None
        if outcome.wait_minutes:
            return self._login(request, next_, name,
                               f"登录失败次数过多，请 {outcome.wait_minutes} 分钟后再试。", 429)
        if signed is None:
            return self._login(request, next_, name, "账号或密码不对。", 200)
        log.info("staff %d signed in", signed[0])
        response = RedirectResponse(next_, status_code=303, headers=self.desk.headers)
        self.desk.set_cookie(response, sessions.issue(self.runtime.signing_key, *signed, now),
                             sessions.MAX_AGE)
        return response

    async def _login_form(self, request: Request) -> Posted | None:
        if cross_site(request.headers, self.runtime.config.web.base_url):
            return None
        try:
            body = await read_capped(request, LOGIN_FORM_BYTES)
        except ClientDisconnect:
            return None
        if body is None:
            return None
        return Posted(fields=parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))

    def logout(self, request: Request, who: Signed, posted: Posted) -> Response:
        with transaction(self.runtime.sessions) as session:
            staff = session.get(Staff, who.id)
            if staff is not None:
                staff.session_epoch += 1  # the cookie is void even if someone kept a copy
        response = self.desk.redirect("/admin/login")
        self.desk.set_cookie(response, "", 0)
        return response

    def home(self, request: Request, who: Signed) -> Response:
        with self.runtime.sessions() as session:
            issues = [
                {"id": i.id, "title": i.title, "status": ISSUE_WORDS.get(i.status, i.status),
                 "created": i.created_at, "publish_at": i.publish_at}
                for i in session.scalars(
                    select(Issue).order_by(Issue.created_at.desc(), Issue.id.desc())
                    .limit(NEWEST_ISSUES)
                )
            ]
        return self.desk.page("admin_home.html.j2", who, issues=issues)

    def missing(self, request: Request, who: Signed) -> Response:
        return self.desk.refused(404, "这个页面不存在。", who)

    def missing_post(self, request: Request, who: Signed, posted: Posted) -> Response:
        return self.desk.refused(404, "请求无效。", who)

    async def static(self, request: Request) -> Response:
        # No session needed: our own script and styles, the same for everyone.
        name = request.path_params["name"]
        kind = STATIC_TYPES.get(name[name.rfind("."):]) if "." in name else None
        folder = defaults.path(defaults.STATIC)
        target = folder / name
        if kind is None or "/" in name or name.startswith(".") or not target.is_file():
            return await run_in_threadpool(self._static_missing, request)
        headers = {**self.desk.headers, "Cache-Control": "private, max-age=3600"}
        return Response(target.read_bytes(), media_type=kind, headers=headers)

    def _static_missing(self, request: Request) -> Response:
        who = self.desk.signed(request)
        return self.desk.to_login(request) if who is None else self.missing(request, who)

    def routes(self) -> list[Route]:
        desk = self.desk
        return [
            Route("/admin/login", self.login_page, methods=["GET"]),
            Route("/admin/login", self.login, methods=["POST"]),
            Route("/admin/static/{name}", self.static, methods=["GET"]),
            desk.action("/admin/logout", self.logout),
            desk.view("/admin", self.home),
            *admin_issues.routes(desk),
            *admin_readers.routes(desk),
            *admin_feedback.routes(desk),
            *admin_reports.routes(desk),
            *admin_staff.routes(desk),
            desk.view("/admin/{rest:path}", self.missing),
            desk.action("/admin/{rest:path}", self.missing_post),
        ]


def _safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of ours under /admin, never another site."""
    if value and value.startswith("/admin") and "//" not in value and "\\" not in value:
        return value
    return "/admin"


def routes(runtime: Runtime, env: Environment, headers: dict[str, str],
           clock: Clock) -> list[Route]:
    return Admin(Desk(runtime, env, admin_headers(headers), clock)).routes()
