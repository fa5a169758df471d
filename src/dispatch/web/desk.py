"""What every page of the staff web (/admin) shares: who is signed in, what their role
allows, rendering a page, reading a form (small, or carrying one file), and the guards
every route goes through.

A page module (web.admin_issues, web.admin_readers, …) gives `routes(desk)` built with
`desk.view(path, handler)` for GETs and `desk.action(path, handler)` for POSTs:

- no session: a GET goes to the sign-in page (303), a POST is refused (403);
- a role below the route's (`role="admin"`): 403 in Chinese;
- a POST whose form token (dispatch.staff.sessions) is missing or wrong, that says it came
  from another site (web.forms.cross_site), or that is too long: 403 / 413, and the
  handler is never called, so nothing changes.

Handlers are plain functions run in the thread pool (they use the synchronous sessions of
dispatch.db): `view(request, who) -> Response`, `action(request, who, posted) -> Response`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from urllib.parse import parse_qs, quote

from jinja2 import Environment
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from dispatch import industries
from dispatch.clock import as_utc
from dispatch.db.models import Staff
from dispatch.runtime import Runtime
from dispatch.staff import sessions
from dispatch.web.forms import cross_site, read_capped

log = logging.getLogger(__name__)

Clock = Callable[[], float]
MAX_FORM_BYTES = 64 * 1024  # a reader's fields, a set of tags: never near this
ROLE_RANK = {"editor": 1, "admin": 2}
TITLES = {403: "无权访问", 404: "页面不存在", 413: "文件太大", 400: "请求无效"}
# The id columns' range (PostgreSQL's integer). A larger number in a path names nothing:
# refused before any query, as PostgreSQL would refuse to compare it (SQLite, past 2**63).
MAX_ID = 2**31 - 1

# The staff pages run one script of ours (/admin/static/live.js, the live counts) and
# may frame our own preview pages; nothing from elsewhere, as on the reader pages.
ADMIN_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "script-src 'self'; connect-src 'self'; frame-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


DOWNLOAD_TYPES = {  # the tables staff download
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def attachment(fallback: str, name: str) -> str:
    """A download's Content-Disposition: `name` (Chinese) as RFC 6266's filename*, and an
    ASCII `fallback` for a client that reads only filename."""
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def page_number(request: Request) -> int:
    """?page=N of a staff list; 1 for anything that is not a page number."""
    text = request.query_params.get("page", "1")
    return int(text) if text.isdigit() and 0 < len(text) < 7 else 1


def admin_headers(reader_headers: dict[str, str]) -> dict[str, str]:
    """The reader pages' security headers with the staff web's policy."""
    return {**reader_headers, "Content-Security-Policy": ADMIN_CSP}


def frameable(headers: dict[str, str]) -> dict[str, str]:
    """For a page shown inside a staff page of ours (a preview): framed by us only, and
    running no script at all."""
    return {**headers, "X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")}


@dataclass(frozen=True)
class Signed:
    """The staff member of a request with a good session, and its cookie's value."""

    id: int
    name: str
    display_name: str
    role: str
    cookie: str

    def may(self, role: str) -> bool:
        return ROLE_RANK.get(self.role, 0) >= ROLE_RANK[role]


@dataclass(frozen=True)
class Uploaded:
    """A file sent with a form: its name as the browser gave it, and its bytes."""

    filename: str
    data: bytes


@dataclass
class Posted:
    """A POST's fields (every value of a repeated name kept: checkboxes) and files."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, Uploaded] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        return list(self.fields.get(name, []))


Handler = Callable[..., Response]
UPLOADED_NAME_CHARS = 200


def uploaded_name(filename: str, default: str = "上传的文件") -> str:
    """An uploaded file's name as stored and shown: its last part only (a browser may send
    a whole Windows path), printable, at most UPLOADED_NAME_CHARS with its extension kept
    (the extension says the format), never empty."""
    name = PurePosixPath(filename.replace("\\", "/")).name.strip()
    name = "".join(ch for ch in name if ch.isprintable())
    if len(name) > UPLOADED_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: UPLOADED_NAME_CHARS - len(ext) - 1] + dot + ext if dot
                else name[:UPLOADED_NAME_CHARS])
    return name or default


class Guarded(Route):
    """A route behind the desk's guards; `role` is the least role it lets in (the guard
    tests read it off the app's route table)."""

    def __init__(self, path: str, endpoint: Callable[..., object], method: str, role: str):
        super().__init__(path, endpoint, methods=[method])
        self.role = role


class Desk:
    def __init__(self, runtime: Runtime, env: Environment, headers: dict[str, str],
                 clock: Clock):
        self.runtime = runtime
        self.env = env
        self.headers = headers
        self.clock = clock
        self.secure = runtime.config.web.base_url.lower().startswith("https:")
        env.globals.setdefault("industry_tiers", industries.by_tier())

    # -- pages -----------------------------------------------------------------------

    def page(self, template: str, who: Signed | None, status: int = 200,
             **values: object) -> HTMLResponse:
        """A template rendered with `who` and their session's form token (`csrf`)."""
        body = self.env.get_template(template).render(who=who, csrf=self.csrf(who), **values)
        return HTMLResponse(body, status_code=status, headers=self.headers)

    def refused(self, status: int, message: str, who: Signed | None = None) -> HTMLResponse:
        return self.page("admin_message.html.j2", who, status,
                         title=TITLES.get(status, "出错了"), message=message)

    def redirect(self, path: str) -> Response:
        """After a POST that changed something: 303 to the page that shows it."""
        return RedirectResponse(path, status_code=303, headers=self.headers)

    def download(self, data: bytes, kind: str, fallback: str, name: str) -> Response:
        """A table (`kind`: csv or xlsx) to save as `name`; never kept by a cache."""
        headers = {**self.headers, "Content-Disposition": attachment(fallback, name),
                   "Cache-Control": "no-store"}
        return Response(data, media_type=DOWNLOAD_TYPES[kind], headers=headers)

    def now(self) -> datetime:
        """The desk's clock as the tables store times (naive UTC)."""
        return as_utc(self.clock())

    def csrf(self, who: Signed | None) -> str:
        return sessions.form_token(self.runtime.signing_key, who.cookie, self.clock()) if who else ""

    # -- who ---------------------------------------------------------------------------

    def signed(self, request: Request) -> Signed | None:
        cookie = request.cookies.get(sessions.COOKIE, "")
        claim = sessions.read(self.runtime.signing_key, cookie, self.clock()) if cookie else None
        if claim is None:
            return None
        with self.runtime.sessions() as session:
            staff = session.scalar(select(Staff).where(Staff.id == claim.staff_id))
            if staff is None or not staff.active or staff.session_epoch != claim.epoch:
                return None
            return Signed(staff.id, staff.name, staff.display_name, staff.role, cookie)

    def set_cookie(self, response: Response, value: str, max_age: int) -> None:
        response.set_cookie(sessions.COOKIE, value, max_age=max_age, path="/admin",
                            httponly=True, samesite="strict", secure=self.secure)

    def to_login(self, request: Request) -> Response:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/admin/login?next={quote(path, safe='')}", status_code=303,
                                headers=self.headers)

    # -- forms -------------------------------------------------------------------------

    async def read_form(self, request: Request, limit: int) -> Posted | int:
        """A POST's fields and files, or the status to refuse it with (403 cross-site or
        unreadable, 413 longer than `limit`)."""
        if cross_site(request.headers, self.runtime.config.web.base_url):
            return 403
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            return await self._multipart(request, limit)
        try:
            body = await read_capped(request, limit)
        except ClientDisconnect:
            return 400
        if body is None:
            return 413
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return Posted(fields=parsed)

    async def _multipart(self, request: Request, limit: int) -> Posted | int:
        # Starlette's parser spools files to disk without a total cap: refuse by the
        # declared length first, and a body without one (chunked) outright.
        length = request.headers.get("content-length", "")
        if not length.isdigit():
            return 400
        if int(length) > limit:
            return 413
        posted = Posted()
        try:
            async with request.form(max_files=1, max_fields=200,
                                    max_part_size=MAX_FORM_BYTES) as form:
                for name, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        data = await value.read(limit + 1)
                        if len(data) > limit:
                            return 413
                        if value.filename:
                            posted.files[name] = Uploaded(value.filename, data)
                    else:
                        posted.fields.setdefault(name, []).append(value)
        except (MultiPartException, ClientDisconnect):
            return 400
        return posted

    # -- guards --------------------------------------------------------------------------

    def view(self, path: str, handler: Handler, role: str = "editor") -> Route:
        """A GET route for signed-in staff of at least `role`."""
        async def endpoint(request: Request) -> Response:
            who = await run_in_threadpool(self.signed, request)
            if who is None:
                return self.to_login(request)
            if not who.may(role):
                return self.refused(403, "只有管理员可以打开这个页面。", who)
            if _out_of_range(request):
                return self.refused(404, "这个页面不存在。", who)
            return await run_in_threadpool(handler, request, who)

        return Guarded(path, endpoint, "GET", role)

    def action(self, path: str, handler: Handler, role: str = "editor",
               limit: int = MAX_FORM_BYTES) -> Route:
        """A POST route: a session, the role, the form token; `limit` bytes at most."""
        async def endpoint(request: Request) -> Response:
            who = await run_in_threadpool(self.signed, request)
            if who is None:
                return self.refused(403, "请先登录。")
            posted = await self.read_form(request, limit)
            if isinstance(posted, int):
                message = ("请求无效：请刷新页面后再试。" if posted != 413
                           else f"文件太大：最多 {limit / (1024 * 1024):g} MB。" if limit >= 1 << 20
                           else "提交的内容太长。")
                return self.refused(posted, message, who)
            if not sessions.form_token_ok(self.runtime.signing_key, who.cookie,
                                          posted.get("csrf"), self.clock()):
                return self.refused(403, "请求无效：页面已过期或不是从本系统提交的，请刷新页面后再试。",
                                    who)
            if not who.may(role):
                return self.refused(403, "只有管理员可以做这件事。", who)
            if _out_of_range(request):
                return self.refused(404, "请求无效。", who)
            return await run_in_threadpool(handler, request, who, posted)

        return Guarded(path, endpoint, "POST", role)


def _out_of_range(request: Request) -> bool:
    """Whether a number in the path ({id:int}) is past what an id column holds."""
    return any(isinstance(v, int) and v > MAX_ID for v in request.path_params.values())
