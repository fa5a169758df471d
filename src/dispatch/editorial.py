"""The editor's work on an issue: store what ingest parsed, tag, override, finalize
(the change of state itself is dispatch.lifecycle's).

Every function takes an open Session inside a transaction and either does all of
its work or raises Refused (the caller's transaction then writes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from dispatch import clock, lifecycle
from dispatch.db.models import Article, ArticleTag, Issue, Section
from dispatch.errors import Refused
from dispatch.industries import GENERAL, TAG_CODES, describe, name_of
from dispatch.ingest.document import ParsedIssue
from dispatch.masthead import BULLETIN
from dispatch.tagging.rules import Rules
from dispatch.tagging.tagger import tag_article

# A publication time this far in the past is almost surely a typo, not a wish to send now.
PAST_TOLERANCE = timedelta(minutes=5)


def _texts(article: Article) -> list[str]:
    return [b["text"] for b in article.blocks]


def auto_tag(article: Article, rules: Rules) -> None:
    """Rewrite the automatic tags only; the editor's override rows are left alone."""
    article.tags = [t for t in article.tags if t.origin != "auto"]
    if article.kind == "note":
        # The editor's note opens every digest: it is for everyone.
        article.tags.append(ArticleTag(industry=GENERAL, origin="auto", score=0.0))
        return
    result = tag_article(article.title, _texts(article), rules)
    for code in result.codes:
        article.tags.append(
            ArticleTag(industry=code, origin="auto", score=round(result.scores.get(code, 0.0), 2))
        )


def store_issue(session: Session, parsed: ParsedIssue, source_file: str, rules: Rules) -> Issue:
    issue = Issue(
        title=parsed.title or BULLETIN,
        number=parsed.number,
        issue_date=parsed.published_on,
        source_file=source_file,
        source_format=parsed.source_format,
    )  # a draft: see dispatch.lifecycle
    for s_pos, ps in enumerate(parsed.sections):
        section = Section(position=s_pos, title=ps.title)
        issue.sections.append(section)
        for a_pos, pa in enumerate(ps.articles):
            article = Article(
                position=a_pos,
                kind=pa.kind,
                title=pa.title,
                blocks=[{"kind": b.kind, "text": b.text} for b in pa.blocks],
                source=pa.source,
            )
            section.articles.append(article)
            auto_tag(article, rules)
    session.add(issue)
    session.flush()
    return issue


def get_issue(session: Session, issue_id: int) -> Issue:
    issue = session.scalar(
        select(Issue)
        .where(Issue.id == issue_id)
        .options(selectinload(Issue.sections).selectinload(Section.articles).selectinload(Article.tags))
    )
    if issue is None:
        raise Refused(f"issue {issue_id} not found (see `dispatch issues list`)")
    return issue


def list_issues(session: Session) -> list[Issue]:
    return list(session.scalars(select(Issue).order_by(Issue.id.desc())))


def _editable(issue: Issue) -> None:
    if issue.status != "draft":
        raise Refused(
            f"issue {issue.id} is {issue.status}: its content is frozen "
            "(ingest the corrected file as a new issue)"
        )


def get_article(session: Session, article_id: int) -> Article:
    article = session.get(Article, article_id)
    if article is None:
        raise Refused(f"article {article_id} not found (see `dispatch issues show ISSUE`)")
    return article


def set_tags(session: Session, article_id: int, codes: list[str] | None) -> Article:
    """The editor's override (codes), or back to automatic tags (None)."""
    article = get_article(session, article_id)
    _editable(article.section.issue)
    article.tags = [t for t in article.tags if t.origin != "editor"]
    if codes is not None:
        if not codes:
            raise Refused("an override needs at least one industry (or 综合)")
        if GENERAL in codes and len(codes) > 1:
            raise Refused("综合 (general) goes to everyone; it can't be combined with industries")
        for code in codes:
            article.tags.append(ArticleTag(industry=code, origin="editor", score=0.0))
    session.flush()
    return article


def retag(session: Session, issue: Issue, rules: Rules) -> None:
    _editable(issue)
    for article in issue.articles:
        auto_tag(article, rules)
    session.flush()


def finalize(session: Session, issue_id: int, publish_at: datetime | None) -> Issue:
    """Freeze the content and set when it goes out (naive UTC; None = now)."""
    issue = get_issue(session, issue_id)
    _editable(issue)
    now = clock.utcnow()
    if publish_at is None:
        publish_at = now
    elif publish_at < now - PAST_TOLERANCE:
        raise Refused(
            f"publication time {clock.show(publish_at)} (Asia/Shanghai) is in the past; "
            "omit --publish-at to publish now"
        )
    if not issue.articles:
        raise Refused(f"issue {issue.id} has no article")
    lifecycle.finalize(session, issue, publish_at, now)
    return issue


def delete_draft(session: Session, issue_id: int) -> None:
    issue = get_issue(session, issue_id)
    _editable(issue)
    session.execute(delete(Issue).where(Issue.id == issue.id))


@dataclass(frozen=True)
class TagView:
    codes: list[str]
    overridden: bool
    auto: list[str]

    @property
    def words(self) -> str:
        return describe(False, self.codes)


def tag_view(article: Article) -> TagView:
    return TagView(article.industries, article.overridden, article.tag_codes("auto"))


class ArticleJson(TypedDict):
    id: int
    title: str
    kind: str
    industries: list[str]
    industry_names: list[str]
    overridden: bool
    auto_industries: list[str]
    source: str | None
    paragraphs: int
    subheadings: list[str]


class SectionJson(TypedDict):
    title: str
    articles: list[ArticleJson]


class IssueJson(TypedDict):
    id: int
    title: str
    number: str | None
    status: str
    publish_at: str | None
    source_format: str
    sections: list[SectionJson]


def issue_json(issue: Issue) -> IssueJson:
    """The stable JSON of `issues ingest --json` (other tools rely on it): id and
    sections → articles → industries; more keys may be added, none removed."""
    return {
        "id": issue.id,
        "title": issue.title,
        "number": issue.number,
        "status": issue.status,
        "publish_at": clock.show(issue.publish_at) or None,
        "source_format": issue.source_format,
        "sections": [
            {
                "title": s.title,
                "articles": [
                    {
                        "id": a.id,
                        "title": a.title,
                        "kind": a.kind,
                        "industries": a.industries,
                        "industry_names": [name_of(c) for c in a.industries],
                        "overridden": a.overridden,
                        "auto_industries": a.tag_codes("auto"),
                        "source": a.source,
                        "paragraphs": sum(1 for b in a.blocks if b["kind"] == "paragraph"),
                        "subheadings": [b["text"] for b in a.blocks if b["kind"] == "subheading"],
                    }
                    for a in s.articles
                ],
            }
            for s in issue.sections
        ],
    }


def parse_tag_codes(text: str) -> list[str]:
    """'生物医药,新能源汽车' or '综合' → codes; raises UnknownIndustry."""
    from dispatch.industries import parse_list

    follows_all, codes = parse_list(text, allow_general=True)
    if follows_all:
        raise Refused("全部 is for readers; an article is tagged with industries or 综合")
    return [c for c in TAG_CODES if c in codes]
