"""The reader-facing web app: the pages behind the links in a digest.

    GET /w/{token}[?page=N]        the issue, every article in full, a large one page
                                   by page (web.pages.PAGE_ARTICLES a page; 404 if no page N)
    GET /w/{token}/a/{article_id}  one article in full (404 if not in that issue)
    GET /i/{key}[?page=N], /i/{key}/a/{article_id}  the issue's own pages, for messages
                                   without personal links (web.issue_pages)
    GET /c/{token}/{n}             302 to the article page of the issue's link n
    GET /o/{token}.gif             the open pixel: the same 1×1 GIF for any path under /o/
    GET /u/{token}, POST /u/{token}  unsubscribe (the page; RFC 8058 one-click)
    GET|POST /p/{token}            the reader's own settings (web.preferences)
    GET|POST /f/{token}/{id}/{v}   有用 / 没用 under an article (web.votes)
    GET|POST /wecom/callback       WeChat Work's callback (web.wecom_callback), when configured
    GET|POST /admin…               the staff web (web.admin): a session needed but to sign in
    GET /healthz                   200 "ok" when the database answers and every part of
                                   `dispatch run` is up; else 503 naming what is down

Endpoints that need the database are plain functions: Starlette runs them in its thread
pool, where they use the synchronous sessions of dispatch.db. The pixel and the click are
`async`: the pixel never touches the database, and the click only when its token or its
issue is not cached yet (then in the thread pool). Tokens are looked up through a bounded
cache (track.deliveries), issues' views are built once and kept (web.views_cache); every
target comes from the stored issue (render.views.link_targets), never from the request.
Pages are server-rendered from templates/ and carry no JavaScript.

Recording what readers do belongs to the track stage: it passes `on_event`
(track.recorder.Recorder.record under `dispatch run`), called with a PageEvent before
each page, redirect or pixel is returned; it must not block. Without it nothing is
recorded.

For other reader pages (preferences, votes): `ReaderPages.open(token)` gives the
delivery, its reader's digest and links (None for a token that names nothing), through
the same caches; call it from a plain (thread-pool) endpoint.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from jinja2 import Environment
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session, selectinload
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from dispatch.db.models import Delivery, Issue, Reader, ReaderIndustry
from dispatch.db.session import transaction
from dispatch.editorial import get_issue
from dispatch.errors import Refused
from dispatch.faults import describe
from dispatch.health import Health
from dispatch.render import templates
from dispatch.render.pipeline import ReaderView
from dispatch.render.views import Digest
from dispatch.runtime import Runtime
from dispatch.track import events
from dispatch.track.deliveries import Delivered, DeliveryLookup, normal_token
from dispatch.track.events import USER_AGENT_CHARS, EventHook, PageEvent
from dispatch.track.links import Links
from dispatch.track.tokens import is_token
from dispatch.web import admin, issue_pages, pages, preferences, wecom_callback
from dispatch.web.desk import Clock
from dispatch.web.forms import read_capped
from dispatch.web.views_cache import IssueEntry, IssueViews, TokenPage
from dispatch.web.votes import Votes

__all__ = ["PIXEL_GIF", "EventHook", "Opened", "PageEvent", "ReaderPages", "create_app"]

log = logging.getLogger(__name__)

# Pages hold a reader's token in their URL: keep them out of caches, referrers, indexes
# and frames, and let nothing but inline styles and our own images run.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "private, no-store",
}


# The open pixel: a transparent 1×1 GIF89a (43 bytes), the same for every request under
# /o/, known token or not, so the answer tells nothing and never fails.
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
PIXEL_HEADERS = {
    # Every open must reach us: no browser, proxy or mail client may keep a copy.
    "Cache-Control": "no-store, no-cache, must-revalidate, private, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
_PIXEL_PATH = re.compile(r"([A-Za-z2-7]{32})\.gif")

# A reader's interests, built once: constructing the statement per request would cost
# more than running it.
_INTERESTS = (
    select(Reader.follows_all, ReaderIndustry.industry)
    .outerjoin(ReaderIndustry, ReaderIndustry.reader_id == Reader.id)
    .where(Reader.id == bindparam("reader_id"))
)


@dataclass(frozen=True)
class Opened:
    """A delivery found by its token, with the digest its reader got."""

    delivery_id: int
    digest: Digest
    links: Links
    delivered: Delivered | None = None  # reader_id, issue_id, sent_at
    reader: ReaderView | None = None


def _html(body: str | bytes, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _pixel() -> Response:
    return Response(PIXEL_GIF, media_type="image/gif", headers=PIXEL_HEADERS)


class ReaderPages:
    def __init__(
        self, runtime: Runtime, env: Environment, on_event: EventHook | None,
        health: Health | None = None,
    ):
        self.runtime = runtime
        self.env = env
        self.on_event = on_event
        self.health = health
        self.lookup = DeliveryLookup()
        self.views = IssueViews(env, runtime.config)

    # -- looking a delivery up (blocking: thread pool) -----------------------------------

    def _delivered(self, token: str) -> Delivered | None:
        delivered = self.lookup.cached(token)
        if delivered is None:
            with self.runtime.sessions() as session:
                delivered = self.lookup.find(session, token)
        return delivered

    def _load_issue(self, issue_id: int) -> Issue | None:
        with self.runtime.sessions() as session:
            try:
                return get_issue(session, issue_id)
            except Refused:  # deleted since (only a draft can be)
                return None

    def _entry(self, issue_id: int) -> IssueEntry | None:
        return self.views.issue(issue_id, self._load_issue)

    def _reader(self, reader_id: int) -> ReaderView | None:
        """The reader as now, all of them (for open())."""
        with self.runtime.sessions() as session:
            reader = session.scalar(
                select(Reader).where(Reader.id == reader_id)
                .options(selectinload(Reader.industry_rows))
            )
            return ReaderView.of(reader) if reader else None

    def _interests(self, reader_id: int) -> ReaderView | None:
        """What of the reader picks a page: their industries, read afresh for every page
        (the reader or staff may change them any time, from any process). One prepared
        query, as cheap as /healthz's; name and addresses are not read."""
        with self.runtime.engine.connect() as conn:
            rows = conn.execute(_INTERESTS, {"reader_id": reader_id}).all()
        if not rows:
            return None
        # Codes that are no industry (none are stored) would select nothing and show
        # no words: the page is the same with or without them.
        codes = frozenset(code for _, code in rows if code)
        return ReaderView(id=reader_id, name="", follows_all=bool(rows[0][0]), industries=codes)

    def _reading(self, request: Request) -> tuple[str, Delivered, IssueEntry, ReaderView]:
        """The token of a reader page's URL, its delivery, issue and reader; 404 if any
        is missing. An unknown token costs one indexed query and builds nothing."""
        token = normal_token(request.path_params["token"])
        delivered = self._delivered(token) if token else None
        if token is None or delivered is None:
            raise HTTPException(404)
        entry = self._entry(delivered.issue_id)
        reader = self._interests(delivered.reader_id) if entry else None
        if entry is None or reader is None:
            raise HTTPException(404)
        return token, delivered, entry, reader

    def open(self, token: str) -> Opened | None:
        """The delivery behind a token and its reader's digest; None if there is none.
        Through the caches: the same digest the pages show. Blocking: thread pool."""
        token_ = normal_token(token)
        delivered = self._delivered(token_) if token_ else None
        if token_ is None or delivered is None:
            return None
        entry = self._entry(delivered.issue_id)
        reader = self._reader(delivered.reader_id) if entry else None
        if entry is None or reader is None:
            return None
        # The same path as the worker and `dispatch preview`: the page shows the
        # digest the reader's message was made from.
        return Opened(
            delivered.delivery_id, self.views.digest(entry, reader),
            entry.renderer.links(token_), delivered, reader,
        )

    # -- the hook for the track stage ------------------------------------------------

    def _record(
        self, request: Request, kind: str, token: str, delivered: Delivered | None,
        article_id: int | None = None, n: int | None = None,
    ) -> None:
        if self.on_event is None:
            return
        event = PageEvent(
            kind=kind,
            token=token,
            delivery=delivered,
            article_id=article_id,
            n=n,
            user_agent=request.headers.get("user-agent", "")[:USER_AGENT_CHARS],
            client_ip=request.client.host if request.client else None,
        )
        try:
            self.on_event(event)
        except Exception:  # a failed record must not cost the reader the page
            log.exception("recording a %s failed", kind)

    # -- endpoints -------------------------------------------------------------------

    def issue(self, request: Request) -> Response:
        number = _page_number(request)
        token, delivered, entry, reader = self._reading(request)
        page = self.views.issue_page(entry, reader, number)
        if page is None:
            raise HTTPException(404)
        self._record(request, events.WEB_VIEW, token, delivered)
        return _html(page.fill(token))

    def article(self, request: Request) -> Response:
        token, delivered, entry, reader = self._reading(request)
        article_id = request.path_params["article_id"]
        page: TokenPage | None = self.views.article_page(entry, reader, article_id)
        if page is None:
            raise HTTPException(404)
        self._record(request, events.ARTICLE_VIEW, token, delivered, article_id=article_id)
        return _html(page.fill(token))

    async def click(self, request: Request) -> Response:
        """In memory once the token and the issue are cached; the database (thread pool)
        only for the first click of a token or of an issue."""
        token = normal_token(request.path_params["token"])
        if token is None:
            raise HTTPException(404)
        delivered = self.lookup.cached(token) or await run_in_threadpool(self._delivered, token)
        if delivered is None:
            raise HTTPException(404)
        entry = self.views.cached(delivered.issue_id) or await run_in_threadpool(
            self._entry, delivered.issue_id
        )
        n = request.path_params["n"]
        article_id = entry.targets.get(n) if entry else None
        if entry is None or article_id is None:
            raise HTTPException(404)
        self._record(request, events.CLICK, token, delivered, article_id=article_id, n=n)
        return RedirectResponse(
            entry.renderer.links(token).article(article_id), status_code=302,
            headers=SECURITY_HEADERS,
        )

    async def pixel(self, request: Request) -> Response:
        """/o/TOKEN.gif: the GIF, whatever the path; an open recorded for a well-formed
        token on a GET (a HEAD shows no image). The token is looked up by the recorder,
        off the request: no database here, so a flood of opens costs no connections."""
        match = _PIXEL_PATH.fullmatch(request.path_params["rest"])
        if match and request.method == "GET":
            token = match.group(1).lower()
            self._record(request, events.OPEN, token, self.lookup.cached(token))
        return _pixel()

    def healthz(self, request: Request) -> Response:
        """For a load balancer, the status: 200 or 503. For an operator's curl, the body:
        the verdict on the first line (`ok`, or `unavailable: PART, …`), then one line
        per part: `database: ok`, `worker: down for 12s: OperationalError: …`."""
        lines: list[str] = []
        down: list[str] = []
        try:
            with self.runtime.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            lines.append("database: ok")
        except Exception as exc:
            lines.append(f"database: unavailable: {describe(exc)}")
            down.append("database")
        for name, part in (self.health.parts.items() if self.health else ()):
            up, status = part.status()
            lines.append(f"{name}: {status}")
            if not up:
                down.append(name)
        verdict = f"unavailable: {', '.join(down)}" if down else "ok"
        return PlainTextResponse(
            "\n".join([verdict, *lines]) + "\n",
            status_code=503 if down else 200,
            headers={"Cache-Control": "no-store"},
        )

    # -- unsubscribe (RFC 8058 one-click, and the page behind the email's link) -------------

    @staticmethod
    def _holder(session: Session, token: str) -> Reader | None:
        """The reader of the delivery behind a token; None if none."""
        token = token.lower()
        if not is_token(token):
            return None
        return session.scalar(
            select(Reader).join(Delivery, Delivery.reader_id == Reader.id)
            .where(Delivery.token == token)
        )

    def _unsubscribe_action(self, token: str) -> str:
        config = self.runtime.config
        return Links(config.web.base_url, config.smtp.reply_domain, token.lower()).unsubscribe()

    def unsubscribe_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        with self.runtime.sessions() as session:
            reader = self._holder(session, token)
            if reader is None:
                raise HTTPException(404)
            state = "already" if reader.status == "unsubscribed" else "confirm"
            name = reader.name
        return _html(pages.unsubscribe_page(self.env, state, name, self._unsubscribe_action(token)))

    async def unsubscribe(self, request: Request) -> Response:
        """POST: a mail provider's one-click unsubscribe (RFC 8058: the body says
        `List-Unsubscribe=One-Click`, no cookies, no page), or the button of the page
        above, which posts the same and says it came from the page."""
        try:
            body = await read_capped(request, MAX_FORM_BYTES)
        except ClientDisconnect:  # gone mid-body (or its chunks were garbage): no one to answer
            return Response(status_code=400)
        if body is None or not _one_click(body):
            # Not an unsubscribe request (or not one we can read): ask, change nothing.
            return await run_in_threadpool(self.unsubscribe_page, request)
        source = "page" if _form(body).get("from") == "page" else "one-click"
        return await run_in_threadpool(self._unsubscribe, request.path_params["token"], source)

    def _unsubscribe(self, token: str, source: str) -> Response:
        from dispatch.readers.apply import set_status

        with transaction(self.runtime.sessions) as session:
            reader = self._holder(session, token)
            if reader is None:
                raise HTTPException(404)
            if reader.status != "unsubscribed":
                # A mail provider may post twice at once: take the reader's row (a no-op
                # UPDATE: its row lock on PostgreSQL, the write lock on SQLite) and read it
                # again under it, so only one of them finds it active and records the change.
                session.execute(
                    update(Reader).where(Reader.id == reader.id)
                    .values(status=Reader.status, updated_at=Reader.updated_at)
                    .execution_options(synchronize_session=False)
                )
                session.refresh(reader)
            changed = set_status(session, reader, "unsubscribed", source=source)
            name = reader.name
        state = "done" if changed else "already"
        return _html(pages.unsubscribe_page(self.env, state, name, self._unsubscribe_action(token)))

    # -- errors ------------------------------------------------------------------------

    def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        headers = dict(SECURITY_HEADERS)
        if isinstance(exc, HTTPException) and exc.headers:
            headers.update(exc.headers)  # e.g. Allow on 405
        return HTMLResponse(pages.error_page(self.env, status), status_code=status, headers=headers)

    def server_error(self, request: Request, exc: Exception) -> Response:
        return _html(pages.error_page(self.env, 500), 500)


# An unsubscribe POST is a line of form data; anything longer is not one.
MAX_FORM_BYTES = 8 * 1024




def _form(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body; multipart/form-data fields too, the
    other encoding RFC 8058 allows (read without a multipart parser: a few short fields)."""
    text_ = body.decode("utf-8", "replace")
    fields = {k: v[0] for k, v in parse_qs(text_).items()}
    for name, value in re.findall(r'name="([^"]+)"\r?\n(?:[^\r\n]+\r?\n)*\r?\n([^\r\n]*)', text_):
        fields.setdefault(name, value.strip())
    return fields


def _page_number(request: Request) -> int:
    """?page=N of /w/TOKEN (pages.page_param); 404 for a value that is no page."""
    number = pages.page_param(request.query_params.getlist("page"))
    if number is None:
        raise HTTPException(404)
    return number


def _one_click(body: bytes) -> bool:
    return _form(body).get("List-Unsubscribe") == "One-Click"


def create_app(
    runtime: Runtime, *, on_event: EventHook | None = None, health: Health | None = None,
    wecom_replier: wecom_callback.Replier | None = None, clock: Clock = time.time,
) -> Starlette:
    """The reader web app on a dispatch.runtime.Runtime; `health`: the parts /healthz
    reports on besides the database (`dispatch run`'s scheduler and worker); `wecom_replier`:
    how the WeChat Work callback answers a reader (a WecomApi); `clock`: the staff web's
    time (sessions, sign-in throttle), for tests."""
    reader_pages = ReaderPages(runtime, templates.environment(runtime.config), on_event, health)
    routes = [
        Route("/w/{token}", reader_pages.issue, methods=["GET"]),
        Route("/w/{token}/a/{article_id:int}", reader_pages.article, methods=["GET"]),
        Route("/c/{token}/{n:int}", reader_pages.click, methods=["GET"]),
        Route("/o/{rest:path}", reader_pages.pixel, methods=["GET"]),
        Route("/u/{token}", reader_pages.unsubscribe_page, methods=["GET"]),
        Route("/u/{token}", reader_pages.unsubscribe, methods=["POST"]),
        Route("/healthz", reader_pages.healthz, methods=["GET"]),
        *preferences.routes(runtime, reader_pages.env, SECURITY_HEADERS),
        *Votes(runtime, reader_pages.env, SECURITY_HEADERS).routes(),
        *issue_pages.IssuePages(
            runtime, reader_pages.views, reader_pages._entry, SECURITY_HEADERS
        ).routes(),
        *wecom_callback.routes(runtime, wecom_replier),  # none unless [wecom] is configured
        *admin.routes(runtime, reader_pages.env, SECURITY_HEADERS, clock),  # the staff web
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: reader_pages.http_error,
            Exception: reader_pages.server_error,
        },
    )
    # Its caches (lookup, views) and their counters, for whoever serves or tests it.
    app.state.pages = reader_pages
    return app
