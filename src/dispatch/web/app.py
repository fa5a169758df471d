"""The reader-facing web app: the pages behind the links in a digest.

    GET /w/{token}                 the whole issue, every article in full
    GET /w/{token}/a/{article_id}  one article in full (404 if not in that issue)
    GET /c/{token}/{n}             302 to the article page of the issue's link n
    GET|POST /p/{token}            the reader's own settings (web.preferences)
    GET|POST /f/{token}/{id}/{v}   有用 / 没用 under an article (web.votes)
    GET /healthz                   200 "ok" when the database answers and every part of
                                   `dispatch run` is up; else 503 naming what is down

Endpoints are plain functions: Starlette runs them in its thread pool, where they use
the synchronous sessions of dispatch.db. A token is looked up in the deliveries table;
every target comes from the stored issue (render.views.link_targets), never from the request.
Pages are server-rendered from templates/ and carry no JavaScript.

Recording what readers do (web reads, clicks) belongs to the track stage: it passes
`on_event`, called with a PageEvent before each page or redirect is returned. Without
it nothing is recorded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from jinja2 import Environment
from sqlalchemy import select, text
from sqlalchemy.orm import Session, selectinload
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from dispatch.db.models import Delivery, Reader
from dispatch.db.session import transaction
from dispatch.editorial import get_issue
from dispatch.faults import describe
from dispatch.health import Health
from dispatch.render import templates
from dispatch.render.pipeline import IssueRenderer, ReaderView
from dispatch.render.views import Digest, link_targets
from dispatch.runtime import Runtime
from dispatch.track.links import Links
from dispatch.track.tokens import is_token
from dispatch.web import pages, preferences
from dispatch.web.votes import Votes

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


@dataclass(frozen=True)
class PageEvent:
    """Something a reader did through the web app, for the track stage to record."""

    kind: str  # "web_view" (/w/T) | "article_view" (/w/T/a/ID) | "click" (/c/T/N)
    delivery_id: int
    article_id: int | None
    n: int | None  # the link number, for clicks
    user_agent: str
    client_ip: str | None


EventHook = Callable[[PageEvent], None]


@dataclass(frozen=True)
class Opened:
    """A delivery found by its token, with the digest its reader got."""

    delivery_id: int
    digest: Digest
    links: Links


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


class ReaderPages:
    def __init__(
        self, runtime: Runtime, env: Environment, on_event: EventHook | None,
        health: Health | None = None,
    ):
        self.runtime = runtime
        self.env = env
        self.on_event = on_event
        self.health = health

    # -- looking a delivery up -------------------------------------------------------

    def open(self, token: str) -> Opened | None:
        """The delivery behind a token and its reader's digest; None if there is none."""
        token = token.lower()
        if not is_token(token):
            return None
        with self.runtime.sessions() as session:
            delivery = session.scalar(select(Delivery).where(Delivery.token == token))
            if delivery is None:
                return None
            reader = session.scalar(
                select(Reader)
                .where(Reader.id == delivery.reader_id)
                .options(selectinload(Reader.industry_rows))
            )
            if reader is None:
                return None
            issue = get_issue(session, delivery.issue_id)
            # The same path as the worker and `dispatch preview`: the page shows the
            # digest the reader's message was made from.
            renderer = IssueRenderer.for_issue(issue, self.env, self.runtime.config)
            return Opened(
                delivery.id, renderer.digest_for(ReaderView.of(reader)), renderer.links(token)
            )

    def _open_or_404(self, request: Request) -> Opened:
        opened = self.open(request.path_params["token"])
        if opened is None:
            raise HTTPException(404)
        return opened

    # -- the hook for the track stage ------------------------------------------------

    def _record(
        self, request: Request, kind: str, opened: Opened,
        article_id: int | None = None, n: int | None = None,
    ) -> None:
        if self.on_event is None:
            return
        event = PageEvent(
            kind=kind,
            delivery_id=opened.delivery_id,
            article_id=article_id,
            n=n,
            user_agent=request.headers.get("user-agent", ""),
            client_ip=request.client.host if request.client else None,
        )
        try:
            self.on_event(event)
        except Exception:  # a failed record must not cost the reader the page
            log.exception("recording %s of delivery %s failed", kind, opened.delivery_id)

    # -- endpoints (plain def: run in the thread pool) -------------------------------

    def issue(self, request: Request) -> Response:
        opened = self._open_or_404(request)
        body = pages.issue_page(self.env, opened.digest, opened.links)
        self._record(request, "web_view", opened)
        return _html(body)

    def article(self, request: Request) -> Response:
        opened = self._open_or_404(request)
        article_id = request.path_params["article_id"]
        body = pages.article_page(self.env, opened.digest, opened.links, article_id)
        if body is None:
            raise HTTPException(404)
        self._record(request, "article_view", opened, article_id=article_id)
        return _html(body)

    def click(self, request: Request) -> Response:
        opened = self._open_or_404(request)
        n = request.path_params["n"]
        article_id = link_targets(opened.digest.issue).get(n)
        if article_id is None:
            raise HTTPException(404)
        self._record(request, "click", opened, article_id=article_id, n=n)
        return RedirectResponse(
            opened.links.article(article_id), status_code=302, headers=SECURITY_HEADERS
        )

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
        body = await _small_body(request)
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


async def _small_body(request: Request) -> bytes | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    return body


def _form(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body; multipart/form-data fields too, the
    other encoding RFC 8058 allows (read without a multipart parser: a few short fields)."""
    text_ = body.decode("utf-8", "replace")
    fields = {k: v[0] for k, v in parse_qs(text_).items()}
    for name, value in re.findall(r'name="([^"]+)"\r?\n(?:[^\r\n]+\r?\n)*\r?\n([^\r\n]*)', text_):
        fields.setdefault(name, value.strip())
    return fields


def _one_click(body: bytes) -> bool:
    return _form(body).get("List-Unsubscribe") == "One-Click"


def create_app(
    runtime: Runtime, *, on_event: EventHook | None = None, health: Health | None = None
) -> Starlette:
    """The reader web app on a dispatch.runtime.Runtime; `health`: the parts /healthz
    reports on besides the database (`dispatch run`'s scheduler and worker)."""
    reader_pages = ReaderPages(runtime, templates.environment(runtime.config), on_event, health)
    routes = [
        Route("/w/{token}", reader_pages.issue, methods=["GET"]),
        Route("/w/{token}/a/{article_id:int}", reader_pages.article, methods=["GET"]),
        Route("/c/{token}/{n:int}", reader_pages.click, methods=["GET"]),
        Route("/u/{token}", reader_pages.unsubscribe_page, methods=["GET"]),
        Route("/u/{token}", reader_pages.unsubscribe, methods=["POST"]),
        Route("/healthz", reader_pages.healthz, methods=["GET"]),
        *preferences.routes(runtime, reader_pages.env, SECURITY_HEADERS),
        *Votes(runtime, reader_pages.env, SECURITY_HEADERS).routes(),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: reader_pages.http_error,
            Exception: reader_pages.server_error,
        },
    )
