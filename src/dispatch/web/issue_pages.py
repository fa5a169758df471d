"""The issue's own pages, behind the links of messages without personal links
(`[wecom] personal_links = false`, track.links.IssueLinks):

    GET /i/{key}[?page=N]          the whole issue, as a reader following 全部 sees it,
                                   paged like /w/TOKEN (404 if no page N)
    GET /i/{key}/a/{article_id}    one article in full (404 if not in that issue)

`key` is the issue's unguessable `web_key`; an unknown one is the app's 404. The same
templates and kept views as the reader pages (web.views_cache, `public=True`), without
what belongs to a delivery: no votes, no 调整关注 or 退订, no pixel. Nothing is recorded:
there is no delivery to record it for (the operator turned tracking off).

Plain endpoints: Starlette runs them in its thread pool, where the key is looked up with
one indexed query and the issue's view comes from the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy import select
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from dispatch.db.models import Issue
from dispatch.runtime import Runtime
from dispatch.track.deliveries import normal_token
from dispatch.web import pages
from dispatch.web.views_cache import EVERYONE, IssueEntry, IssueViews, TokenPage


class IssuePages:
    def __init__(
        self, runtime: Runtime, views: IssueViews, entry: Callable[[int], IssueEntry | None],
        headers: Mapping[str, str],
    ):
        self.runtime = runtime
        self.views = views
        self.entry = entry  # issue id → its kept view (ReaderPages._entry)
        self.headers = dict(headers)

    def routes(self) -> list[Route]:
        return [
            Route("/i/{key}", self.issue, methods=["GET"]),
            Route("/i/{key}/a/{article_id:int}", self.article, methods=["GET"]),
        ]

    def _issue_entry(self, request: Request) -> IssueEntry:
        # A key has a token's form (track.tokens): anything else is looked up nowhere.
        key = normal_token(request.path_params["key"])
        if key is None:
            raise HTTPException(404)
        with self.runtime.sessions() as session:
            issue_id = session.scalar(select(Issue.id).where(Issue.web_key == key))
        entry = self.entry(issue_id) if issue_id is not None else None
        if entry is None:
            raise HTTPException(404)
        return entry

    def _html(self, page: TokenPage | None) -> Response:
        if page is None:
            raise HTTPException(404)
        return HTMLResponse(page.fill(""), headers=self.headers)  # no token to put in

    def issue(self, request: Request) -> Response:
        number = pages.page_param(request.query_params.getlist("page"))
        if number is None:
            raise HTTPException(404)
        entry = self._issue_entry(request)
        return self._html(self.views.issue_page(entry, EVERYONE, number, public=True))

    def article(self, request: Request) -> Response:
        entry = self._issue_entry(request)
        article_id = request.path_params["article_id"]
        return self._html(self.views.article_page(entry, EVERYONE, article_id, public=True))
