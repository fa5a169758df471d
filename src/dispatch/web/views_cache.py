"""The reader pages' views, built once and kept: an issue's renderer, each kind of
reader's digest, and each page rendered once with a marker where the token goes.

When it is safe: only a draft's content can change (dispatch.lifecycle: `finalize`
freezes it; editorial refuses to tag, retag or delete anything but a draft, and no
state leads back to draft; `reschedule` moves the publication time, which dates an
issue without a date of its own, only while the issue has no delivery, so never under a
page). So an issue is kept once it is no longer a draft, and a draft (which has
deliveries only in tests) is built again for every request.

What is per reader is not kept here: the reader's industries are read for each page
(they change whenever the reader or staff change them, from any process), and only
select which kept digest and page are shown. Nothing is built for a token that names no
delivery: the caller looks the token up first.

Bounded: a handful of issues, a few dozen digests per issue, and rendered pages up to
MAX_PAGE_BYTES in all. A page of /w/TOKEN holds at most web.pages.PAGE_ARTICLES
articles (tens of KB), each kept per (issue, kind of reader, page number): the pages
readers actually open stay, the rest of a large issue's hundreds are rendered on demand.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from jinja2 import Environment

from dispatch.config import Config
from dispatch.db.models import Issue
from dispatch.render import slots
from dispatch.render.pipeline import IssueRenderer, ReaderView
from dispatch.render.views import Digest, link_targets
from dispatch.track.links import IssueLinks, Links
from dispatch.web import pages

# Whom the issue's own pages (/i/KEY) are for: no one in particular, so the whole issue,
# as a reader following 全部 sees it.
EVERYONE = ReaderView(id=0, name="", follows_all=True)

MAX_ISSUES = 4
MAX_DIGESTS = 64  # per issue: readers with the same interests share one
MAX_PAGE_BYTES = 128 * 1024 * 1024

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """A thread-safe LRU bounded by a count or by the sum of `size(value)`."""

    def __init__(self, limit: int, size: Callable[[V], int] = lambda _: 1):
        self.limit = limit
        self.size = size
        self.total = 0
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> V:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.total -= self.size(old)
            self._items[key] = value
            self.total += self.size(value)
            # The newest stays even if it alone is over the limit: it is being served.
            while self.total > self.limit and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self.total -= self.size(dropped)
            return value

    def __len__(self) -> int:
        return len(self._items)


class _Once:
    """One builder per key at a time: 32 first requests for an issue build it once."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def lock(self, key: Hashable) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def done(self, key: Hashable) -> None:
        with self._lock:
            self._locks.pop(key, None)


@dataclass(frozen=True)
class TokenPage:
    """A rendered page cut where the token goes (UTF-8, ready to send)."""

    parts: tuple[bytes, ...]

    @classmethod
    def of(cls, html: str) -> TokenPage:
        # Content that happened to hold the marker would show the reader their own token.
        return cls(tuple(p.encode("utf-8") for p in html.split(slots.TOKEN)))

    def fill(self, token: str) -> bytes:
        return token.encode("ascii").join(self.parts)

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.parts)


@dataclass
class IssueEntry:
    """One issue's renderer and what is derived from it alone."""

    renderer: IssueRenderer
    frozen: bool  # its content can no longer change: safe to keep
    targets: dict[int, int]  # link number → article id
    article_ids: frozenset[int]
    digests: _Lru[tuple[bool, frozenset[str]], Digest] = field(
        default_factory=lambda: _Lru(MAX_DIGESTS)
    )

    @property
    def issue_id(self) -> int:
        return self.renderer.view.id


class IssueViews:
    """The kept views of the issues readers are reading. Thread-safe."""

    def __init__(
        self, env: Environment, config: Config, *,
        max_issues: int = MAX_ISSUES, max_page_bytes: int = MAX_PAGE_BYTES,
    ):
        self.env = env
        self.config = config
        self._issues: _Lru[int, IssueEntry] = _Lru(max_issues)
        self._pages: _Lru[tuple[object, ...], TokenPage] = _Lru(max_page_bytes, lambda p: p.size)
        self._once = _Once()
        # Observable work, for tests and the bench (never timings):
        self.builds = 0  # IssueRenderers built
        self.renders = 0  # pages rendered

    # -- issues --------------------------------------------------------------------------

    def cached(self, issue_id: int) -> IssueEntry | None:
        """The kept entry of an issue, without touching the database; None if not kept."""
        return self._issues.get(issue_id)

    def issue(self, issue_id: int, load: Callable[[int], Issue | None]) -> IssueEntry | None:
        """The issue's entry: kept, or built from `load(issue_id)` (the issue with its
        sections, articles and tags; None if it is gone). Blocking: call off the loop."""
        entry = self._issues.get(issue_id)
        if entry is not None:
            return entry
        key = ("issue", issue_id)
        with self._once.lock(key):
            entry = self._issues.get(issue_id)
            if entry is not None:
                return entry
            try:
                issue = load(issue_id)
                if issue is None:
                    return None
                entry = self._build(issue)
                if entry.frozen:
                    self._issues.put(issue_id, entry)
                return entry
            finally:
                self._once.done(key)

    def _build(self, issue: Issue) -> IssueEntry:
        self.builds += 1
        renderer = IssueRenderer.for_issue(issue, self.env, self.config)
        articles = renderer.view.articles
        return IssueEntry(
            renderer,
            frozen=issue.status != "draft",
            targets=link_targets(renderer.view),
            article_ids=frozenset(a.id for a in articles),
        )

    # -- per kind of reader --------------------------------------------------------------

    def digest(self, entry: IssueEntry, reader: ReaderView) -> Digest:
        key = (reader.follows_all, reader.industries)
        digest = entry.digests.get(key)
        if digest is None:
            digest = entry.digests.put(key, entry.renderer.digest_for(reader))
        return digest

    def _page(self, entry: IssueEntry, key: tuple[object, ...], render: Callable[[], str]) -> TokenPage:
        if not entry.frozen:
            self.renders += 1
            return TokenPage.of(render())
        key = (entry.issue_id, *key)
        page = self._pages.get(key)
        if page is None:
            page = self._pages.put(key, TokenPage.of(render()))
            self.renders += 1
        return page

    @staticmethod
    def _links(entry: IssueEntry, public: bool) -> Links | IssueLinks:
        """A delivery's links (the token a slot), or the issue's own (/i/KEY: `public`)."""
        return entry.renderer.issue_links() if public else entry.renderer.variant_links()

    def issue_page(
        self, entry: IssueEntry, reader: ReaderView, number: int = 1, *, public: bool = False,
    ) -> TokenPage | None:
        """/w/TOKEN?page=NUMBER for readers with these interests (`public`: /i/KEY?page=N,
        for EVERYONE); None if the issue has no such page (known before anything is built)."""
        if not 1 <= number <= pages.page_count(len(entry.article_ids)):
            return None
        digest = self.digest(entry, reader)
        links = self._links(entry, public)

        def render() -> str:
            html = pages.issue_page(self.env, digest, links, number)
            assert html is not None  # the number is one of the issue's pages
            return html

        key = ("issue", public, reader.follows_all, reader.industries, number)
        return self._page(entry, key, render)

    def article_page(
        self, entry: IssueEntry, reader: ReaderView, article_id: int, *, public: bool = False,
    ) -> TokenPage | None:
        """/w/TOKEN/a/ID (`public`: /i/KEY/a/ID); None if the article is not in the issue."""
        if article_id not in entry.article_ids:
            return None
        digest = self.digest(entry, reader)
        links = self._links(entry, public)

        def render() -> str:
            html = pages.article_page(self.env, digest, links, article_id)
            assert html is not None  # it is one of the issue's articles
            return html

        # The page shows the reader's interests in words, nothing else of theirs.
        return self._page(entry, ("article", public, digest.interests, article_id), render)
