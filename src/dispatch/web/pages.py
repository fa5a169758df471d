"""The reader's web pages as HTML strings: pure functions of the views, no HTTP, no DB.

The web app (web.app) looks the delivery up and calls these; tests call them directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jinja2 import Environment

from dispatch.masthead import BULLETIN
from dispatch.render.selection import GENERAL_SCORE
from dispatch.render.views import ArticleView, Digest, IssueView
from dispatch.track.links import IssueLinks, Links

ISSUE_TEMPLATE = "web_issue.html.j2"
ARTICLE_TEMPLATE = "web_article.html.j2"
ERROR_TEMPLATE = "web_error.html.j2"
UNSUBSCRIBE_TEMPLATE = "web_unsubscribe.html.j2"

# Articles in full on one page of /w/TOKEN: a real issue (a dozen articles) is one page
# as it always was; an issue of thousands is read page by page, each page tens of KB.
PAGE_ARTICLES = 30


@dataclass(frozen=True)
class ErrorText:
    title: str
    message: str


ERRORS: dict[int, ErrorText] = {
    404: ErrorText(
        "页面不存在",
        "您打开的链接无效。请从邮件或企业微信消息中的链接重新打开；如仍有问题，请直接回复邮件或企业微信消息告诉我们。",
    ),
    405: ErrorText("不支持的访问方式", "此页面只能直接打开浏览。"),
    500: ErrorText("服务暂时出现问题", "页面暂时无法显示，请稍后再试。给您带来不便，敬请谅解。"),
}


def _issue_title(digest: Digest) -> str:
    number = digest.issue.number
    if number:
        return f"《{BULLETIN}》{'第' + number + '期' if number.isdigit() else number}"
    return f"《{BULLETIN}》"


def _recommended_ids(digest: Digest) -> frozenset[int]:
    """What the page marks 推荐: articles about the reader's own industries.

    Not the 综合 ones (recommended to everyone, so the mark would say nothing), and
    nothing for a 全部 reader, for whom all articles are equal.
    """
    if digest.whole_issue:
        return frozenset()
    return frozenset(a.id for a in digest.recommended if a.score > GENERAL_SCORE)


Sections = tuple[tuple[str, tuple[ArticleView, ...]], ...]


@dataclass(frozen=True)
class IssuePage:
    """One page of an issue: its articles (the issue's `first`th to `last`th, 1-based)
    under their sections' headings, a section that began on an earlier page marked 续."""

    number: int  # 1-based
    count: int  # pages in the issue
    total: int  # articles in the issue
    first: int
    last: int
    sections: Sections

    @property
    def previous(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.count else None


def page_param(values: list[str]) -> int | None:
    """The page number of ?page=N (every value given): 1 without one; None for anything
    but one plain number from 1 (the issue's last page is checked against the issue)."""
    if not values:
        return 1
    if len(values) > 1 or not re.fullmatch(r"[1-9][0-9]{0,5}", values[0]):
        return None
    return int(values[0])


def page_count(articles: int) -> int:
    """Pages of an issue of `articles` articles; an empty issue is still one page."""
    return max(1, -(-articles // PAGE_ARTICLES))


def issue_slice(issue: IssueView, number: int) -> IssuePage | None:
    """Page `number` of the issue; None if it has no such page."""
    total = sum(len(arts) for _, arts in issue.sections)
    count = page_count(total)
    if not 1 <= number <= count:
        return None
    start = (number - 1) * PAGE_ARTICLES
    end = start + PAGE_ARTICLES
    sections = []
    seen = 0  # articles of the sections before this one
    for title, arts in issue.sections:
        here = arts[max(start - seen, 0):max(end - seen, 0)]
        # A section without articles shows on the page where it falls (the last page
        # takes those at the very end).
        if here or (not arts and start <= seen and (seen < end or number == count)):
            continued = seen < start
            sections.append((f"{title}（续）" if continued else title, here))
        seen += len(arts)
    return IssuePage(number, count, total, start + 1, min(end, total), tuple(sections))


def issue_page(env: Environment, digest: Digest, links: Links | IssueLinks, number: int = 1) -> str | None:
    """Page `number` of the issue, its articles in full, in the issue's own order; None
    if the issue has no such page. An issue of one page is shown without a pager.
    `links`: a delivery's, or the issue's own (IssueLinks: no votes, 调整关注 or 退订)."""
    page = issue_slice(digest.issue, number)
    if page is None:
        return None
    return env.get_template(ISSUE_TEMPLATE).render(
        issue=digest.issue,
        digest=digest,
        links=links,
        page_title=_issue_title(digest) if page.count == 1
        else f"{_issue_title(digest)}（第{page.number}页）",
        recommended_ids=_recommended_ids(digest),
        sections=page.sections,
        pager=page if page.count > 1 else None,
    )


def article_page(
    env: Environment, digest: Digest, links: Links | IssueLinks, article_id: int,
) -> str | None:
    """One article of the issue in full; None if the issue has no such article."""
    articles = digest.issue.articles
    index = next((i for i, a in enumerate(articles) if a.id == article_id), None)
    if index is None:
        return None
    article = articles[index]
    return env.get_template(ARTICLE_TEMPLATE).render(
        issue=digest.issue,
        digest=digest,
        links=links,
        article=article,
        previous=articles[index - 1] if index > 0 else None,
        next=articles[index + 1] if index + 1 < len(articles) else None,
        page_title=f"{article.title} - {_issue_title(digest)}",
        # Back to the page of the issue that holds this article.
        issue_url=links.web_view(index // PAGE_ARTICLES + 1),
    )


def unsubscribe_page(env: Environment, state: str, reader_name: str, action: str) -> str:
    """The page behind /u/TOKEN: `state` is confirm, done or already."""
    return env.get_template(UNSUBSCRIBE_TEMPLATE).render(
        state=state, reader_name=reader_name, action=action,
        page_title=f"退订 - 《{BULLETIN}》",
    )


def error_page(env: Environment, status: int) -> str:
    text = ERRORS.get(status) or ERRORS[500 if status >= 500 else 404]
    return env.get_template(ERROR_TEMPLATE).render(
        status=status,
        title=text.title,
        message=text.message,
        page_title=f"{text.title} - 《{BULLETIN}》",
    )
