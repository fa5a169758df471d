"""The staff web over real HTTP for tests: a site on a test database with the sample issue
and two accounts (zhang: admin 张三, li: editor 李四), the clock injected, and what a
browser does (sign in, read a form's token, post a form or a file)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import unescape
from urllib.parse import urlencode

from conftest import REPO, SAMPLE_ISSUE
from served import Answer, listening_socket, request, serve
from sqlalchemy import select
from starlette.routing import Route

from dispatch import editorial
from dispatch.config import Config
from dispatch.db.models import Staff
from dispatch.db.session import transaction
from dispatch.ingest import parse_file
from dispatch.runtime import Runtime
from dispatch.staff import passwords, sessions
from dispatch.web.app import create_app

PASSWORD = "correct horse 1"
# argon2 at its default cost takes ~0.15 s a hash here: made once, for every account.
PASSWORD_HASH = passwords.hash_password(PASSWORD)
T0 = 1_800_000_000.0
ACCOUNTS = (("zhang", "admin", "张三"), ("li", "editor", "李四"))

Fields = dict[str, str] | list[tuple[str, str]]


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
    login_cookie: str = ""  # the sign-in page's own cookie, which the token is bound to

    def get(self, path: str, cookie: str = "", **headers: str) -> Answer:
        if cookie:
            headers["Cookie"] = f"{sessions.COOKIE}={cookie}"
        return request(self.url, "GET", path, headers=headers)

    def post(self, path: str, fields: Fields, cookie: str = "", **headers: str) -> Answer:
        """A form as a browser posts it (repeat a name in a list of pairs: checkboxes)."""
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        if cookie:
            headers["Cookie"] = f"{sessions.COOKIE}={cookie}"
        return request(self.url, "POST", path, urlencode(fields).encode(), headers)

    def post_file(self, path: str, fields: Fields, name: str, filename: str, data: bytes,
                  cookie: str = "", **headers: str) -> Answer:
        """A form with one file, multipart/form-data as a browser sends it."""
        boundary = f"----form{uuid.uuid4().hex}"
        pairs = list(fields.items()) if isinstance(fields, dict) else list(fields)
        body = b""
        for key, value in pairs:
            body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n"
                     f"{value}\r\n").encode()
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                 f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                 ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        if cookie:
            headers["Cookie"] = f"{sessions.COOKIE}={cookie}"
        return request(self.url, "POST", path, body, headers)

    def login(self, name: str, password: str = PASSWORD, address: str = "") -> Answer:
        if not self.login_token:  # one form's token serves many tries, as in a browser
            page = self.get("/admin/login")
            self.login_token = form_token(page.text)
            self.login_cookie = page.headers["set-cookie"].split(";")[0]
        extra = {"X-Forwarded-For": address} if address else {}
        return self.post("/admin/login", {"csrf": self.login_token, "name": name,
                                          "password": password, "next": "/admin"},
                         Cookie=self.login_cookie, **extra)

    def signed_in(self, name: str) -> str:
        """The session cookie's value of `name` signed in."""
        answer = self.login(name)
        assert answer.status == 303, answer.text
        return session_cookie(answer)

    def token(self, cookie: str, path: str = "/admin") -> str:
        """The form token of the session, read off a page as a browser has it."""
        return form_token(self.get(path, cookie).text)

    def staff(self, name: str) -> Staff:
        with self.runtime.sessions() as s:
            return s.scalars(select(Staff).where(Staff.name == name)).one()


def form_token(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return unescape(found.group(1))


def session_cookie(answer: Answer) -> str:
    set_cookie = answer.headers["set-cookie"]
    for attr in ("HttpOnly", "SameSite=strict", "Path=/admin"):
        assert attr.lower() in set_cookie.lower(), set_cookie
    return set_cookie.split(";")[0].split("=", 1)[1]


def visible(page: str) -> str:
    """What a staff member reads of a page: no style or script, no tags, no login names."""
    page = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r"\b(zhang|li)\b", " ", page)
    return unescape(re.sub(r"<[^>]+>", "\n", page))


@contextmanager
def admin_site(db_url: str, *, sample_issue: bool = True) -> Iterator[Site]:
    """A served staff web on `db_url` (already empty or migrated by its fixture)."""
    sock = listening_socket()
    config = Config(base_dir=REPO)
    config.database.url = db_url
    config.web.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runtime = Runtime(config)
    with transaction(runtime.sessions) as s:
        if sample_issue:
            editorial.store_issue(s, parse_file(SAMPLE_ISSUE), str(SAMPLE_ISSUE), runtime.rules)
        for name, role, shown in ACCOUNTS:
            s.add(Staff(name=name, display_name=shown, role=role, password_hash=PASSWORD_HASH))
    clock = Clock()
    app = create_app(runtime, clock=clock)
    try:
        with serve(app, sock) as url:
            yield Site(url, runtime, clock, [r for r in app.routes if isinstance(r, Route)])
    finally:
        runtime.engine.dispose()
