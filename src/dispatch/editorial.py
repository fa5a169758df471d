"""The editor's work on an issue: store what ingest parsed, tag, override, finalize
(the change of state itself is dispatch.lifecycle's).

Every function takes an open Session inside a transaction and either does all of
its work or raises Refused (the caller's transaction then writes nothing).

Each change staff make is kept in the issue's change log (log_change) by the function
that makes it, in the same transaction: `by` is the staff member's id in the staff
web, None for the CLI on the server. A refused change raises before it is logged.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePath
from typing import TypedDict

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from dispatch import clock, lifecycle
from dispatch.content_hash import SectionContent, issue_content_hash
from dispatch.db.models import Article, ArticleTag, Issue, IssueChange, Section
from dispatch.deliver import leases
from dispatch.errors import Hinted, Refused
from dispatch.industries import GENERAL, TAG_CODES, describe, name_of
from dispatch.ingest.document import ParsedIssue
from dispatch.masthead import BULLETIN
from dispatch.statewords import ISSUE_WORDS
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


class SameContent(Refused):
    """The file's content was ingested already: `issues` holds (id, status) of each issue
    that has it, oldest first."""

    def __init__(self, source_file: str, issues: list[tuple[int, str]]):
        self.issues = issues
        which = "、".join(f"{i}（{ISSUE_WORDS[status]}）" for i, status in issues)
        super().__init__(
            f"{source_file}：内容与已入库的期刊 {which}相同，没有再入库；"
            f"确要再建一期：dispatch issues ingest {shlex.quote(source_file)} --again"
        )


def _content(issue: Issue) -> list[SectionContent]:
    return [
        (s.title, [
            (a.kind, a.title, a.source, [{"kind": b["kind"], "text": b["text"]} for b in a.blocks])
            for a in s.articles
        ])
        for s in issue.sections
    ]


def store_issue(
    session: Session, parsed: ParsedIssue, source_file: str, rules: Rules, *,
    again: bool = False, by: int | None = None,
) -> Issue:
    """A draft of what ingest parsed. Content already stored in another issue is refused
    (SameContent) unless `again`. Logged as "ingested" with the file's name."""
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
    issue.content_hash = issue_content_hash(
        issue.title, issue.number, issue.issue_date, _content(issue)
    )
    if not again:
        earlier = session.execute(
            select(Issue.id, Issue.status)
            .where(Issue.content_hash == issue.content_hash)
            .order_by(Issue.id)
        ).all()
        if earlier:
            raise SameContent(source_file, [(i, status) for i, status in earlier])
    session.add(issue)
    session.flush()
    log_change(session, issue.id, "ingested", by=by, new=PurePath(source_file).name)
    return issue


def get_issue(session: Session, issue_id: int) -> Issue:
    issue = session.scalar(
        select(Issue)
        .where(Issue.id == issue_id)
        .options(selectinload(Issue.sections).selectinload(Section.articles).selectinload(Article.tags))
    )
    if issue is None:
        raise lifecycle.not_found(issue_id)
    return issue


def list_issues(session: Session) -> list[Issue]:
    return list(session.scalars(select(Issue).order_by(Issue.id.desc())))


def frozen_reason(issue: Issue, action: str) -> str | None:
    """Why `action` (改标签, 删除 …) can't be done to the issue: it is no longer a draft;
    None for a draft."""
    if issue.status == "draft":
        return None
    return f"期刊 {issue.id} {ISSUE_WORDS[issue.status]}，内容已冻结，不能{action}"


def _editable(issue: Issue, action: str) -> None:
    """Refuses `action` (tag, retag, finalize, delete: in Chinese) on an issue that is no
    longer a draft, saying what can still be done with it."""
    reason = frozen_reason(issue, action)
    if reason is None:
        return
    n = issue.id
    again = (
        "要改内容或标签，把文件作为新一期再入库："
        f"dispatch issues ingest {shlex.quote(issue.source_file)} --again"
    )
    if issue.status == "finalized":
        still = (
            f'改发布时间：dispatch issues reschedule {n} --publish-at "YYYY-MM-DD HH:MM"；'
            f"预览：dispatch preview {n} --recipient KEY；立即发送：dispatch send {n}；{again}"
        )
    else:
        still = f"发送进度：dispatch status {n}；{again}"
    raise Hinted(reason, f"。还可以：{still}")


def get_article(session: Session, article_id: int) -> Article:
    article = session.get(Article, article_id)
    if article is None:
        raise Refused(f"文章 {article_id} 不存在（文章编号见 dispatch issues show ID）")
    return article


def tag_words(article: Article) -> str:
    """An article's tags and whose they are, as the change log keeps them:
    生物医药、新材料（编辑指定）."""
    view = tag_view(article)
    return f"{view.words}（{'编辑指定' if view.overridden else '自动'}）"


def set_tags(
    session: Session, article_id: int, codes: list[str] | None, *, by: int | None = None
) -> Article:
    """The editor's override (codes), or back to automatic tags (None). Logged as "tags"
    (before and after) when what the article gets changed."""
    article = get_article(session, article_id)
    _editable(article.section.issue, "改标签")
    before = tag_words(article)
    article.tags = [t for t in article.tags if t.origin != "editor"]
    if codes is not None:
        if not codes:
            raise Refused("指定标签至少要有一个产业（或 综合）")
        if GENERAL in codes and len(codes) > 1:
            raise Refused("综合 表示发给所有读者，不能与产业同时指定")
        for code in codes:
            article.tags.append(ArticleTag(industry=code, origin="editor", score=0.0))
    session.flush()
    after = tag_words(article)
    if after != before:
        log_change(session, article.section.issue_id, "tags", by=by, old=before, new=after,
                   article_id=article_id)
    return article


@dataclass(frozen=True)
class Retagged:
    """An article whose automatic tags the rules changed; `overridden`: the editor's tags,
    kept, are still what readers get."""

    article_id: int
    before: list[str]
    after: list[str]
    overridden: bool

    @property
    def words(self) -> tuple[str, str]:
        """(before, after) as staff read them: 生物医药、新材料（自动）."""
        kept = "；编辑指定的标签保留" if self.overridden else ""
        return (f"{describe(False, self.before) or '无'}（自动）",
                f"{describe(False, self.after) or '无'}（自动{kept}）")


def retag(session: Session, issue: Issue, rules: Rules, *, by: int | None = None) -> list[Retagged]:
    """Run the keyword rules again on a draft's articles; the editor's tags are kept.
    Returns the articles whose automatic tags changed, in the issue's order. Logged as
    "retagged": each changed article's tags before and after, then the sum of it (even
    when nothing changed: someone ran it)."""
    _editable(issue, "重新打标签")
    changed = []
    for article in issue.articles:
        before = article.tag_codes("auto")
        auto_tag(article, rules)
        after = article.tag_codes("auto")
        if after != before:
            changed.append(Retagged(article.id, before, after, article.overridden))
    session.flush()
    for c in changed:  # each article's, then the whole (the log is read newest first)
        old, new = c.words
        log_change(session, issue.id, "retagged", by=by, old=old, new=new,
                   article_id=c.article_id)
    log_change(session, issue.id, "retagged", by=by, new=retag_words(changed))
    return changed


def retag_words(changed: list[Retagged]) -> str:
    """What a retag did, in a line: for the change log and the command line."""
    if not changed:
        return "自动标签都没有变化"
    kept = sum(1 for c in changed if c.overridden)
    note = f"（其中 {kept} 篇由编辑指定标签，读者收到的不变）" if kept else ""
    return f"{len(changed)} 篇文章的自动标签有变化{note}"


def finalize(
    session: Session, issue_id: int, publish_at: datetime | None, *, by: int | None = None
) -> Issue:
    """Freeze the content and set when it goes out (naive UTC; None = now). Logged as
    "finalized" with the publication time."""
    issue = get_issue(session, issue_id)
    _editable(issue, "再定稿")
    now = clock.utcnow()
    if publish_at is None:
        publish_at = now
    elif publish_at < now - PAST_TOLERANCE:
        raise Hinted(_past(publish_at), "；要立即发布，去掉 --publish-at")
    if not issue.articles:
        raise Refused(f"期刊 {issue.id} 没有文章")
    lifecycle.finalize(session, issue, publish_at, now)
    log_change(session, issue.id, "finalized", by=by, old=ISSUE_WORDS["draft"],
               new=clock.cn_time(issue.publish_at))
    return issue


def _past(publish_at: datetime) -> str:
    return f"发布时间 {clock.show(publish_at)}（北京时间）已过"


def reschedule(
    session: Session, issue_id: int, publish_at: datetime, *, by: int | None = None
) -> Issue:
    """A finalized issue that has not gone out gets another publication time (naive UTC).
    Logged as "publish_at" (before and after) when the time shown changes."""
    issue = get_issue(session, issue_id)
    before = clock.cn_time(issue.publish_at)
    # The state first (its refusal says what to do instead), then the editor's check on
    # the time: its refusal rolls the move back with the caller's transaction.
    lifecycle.reschedule(session, issue_id, publish_at)
    if publish_at < clock.utcnow() - PAST_TOLERANCE:
        raise Hinted(_past(publish_at), f"；要立即发送：dispatch send {issue_id}")
    session.refresh(issue)
    after = clock.cn_time(issue.publish_at)
    if after != before:
        log_change(session, issue_id, "publish_at", by=by, old=before, new=after)
    return issue


def delete_draft(session: Session, issue_id: int, *, by: int | None = None) -> None:
    """Delete a draft. Its "deleted" record, naming it, is kept after the issue is gone
    (its issue_id becomes NULL: ON DELETE SET NULL)."""
    issue = get_issue(session, issue_id)
    _editable(issue, "删除")
    log_change(session, issue.id, "deleted", by=by, old=f"期刊 {issue.id}《{issue.title}》")
    session.flush()  # the record first: the DELETE then sets its issue_id NULL
    session.execute(delete(Issue).where(Issue.id == issue.id))


def retry_failed(session: Session, issue_id: int, *, by: int | None = None) -> int:
    """Staff's retry: the issue's failed deliveries queued again (deliver.leases does
    it; an issue that does not exist is refused); how many. Logged as "retried" with the
    count, when there were any."""
    n = leases.retry_failed(session, issue_id)
    if n:
        log_change(session, issue_id, "retried", by=by, new=f"{n} 个")
    return n


def log_change(
    session: Session,
    issue_id: int,
    field: str,
    *,
    by: int | None,
    old: str | None = None,
    new: str | None = None,
    article_id: int | None = None,
) -> IssueChange:
    """Keep who (a staff member's id; None: the CLI) changed what of an issue, and when.

    `field` is one of CHANGE_FIELDS; `old` and `new` are in words staff read (a time as
    2026年12月1日 08:30 (clock.cn_time), tags as 生物医药、新材料). In the caller's transaction:
    the change and its record are written together or not at all."""
    if field not in CHANGE_FIELDS:
        raise ValueError(f"unknown issue change {field!r}")
    change = IssueChange(issue_id=issue_id, article_id=article_id, staff_id=by,
                         at=clock.utcnow(), field=field, old=old, new=new)
    session.add(change)  # flushed with the rest: a retag's rows go in one batch
    return change


# What an issue_changes row says happened, in the words staff read.
CHANGE_FIELDS = {
    "ingested": "入库", "tags": "改标签", "finalized": "定稿", "publish_at": "改发布时间",
    "retried": "重试失败的投递", "test_copy": "发测试稿", "deleted": "删除",
    "retagged": "按规则重新打标签",
}


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
        raise Refused("全部 只用于读者；文章的标签是产业或 综合")
    return [c for c in TAG_CODES if c in codes]
