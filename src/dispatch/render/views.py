"""The view every template gets: an issue as one variant of readers sees it. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from dispatch.clock import cn_date, to_local
from dispatch.industries import TAG_CODES, describe, name_of
from dispatch.render.marks import Own, own_codes
from dispatch.render.selection import ArticleTags, Selection, relevance

if TYPE_CHECKING:
    from dispatch.db.models import Issue

LEAD_CHARS = 150
# The editor's note opens the email: at 375 px, about five lines, so the first article
# shows on the phone's first screen; the web page has the whole note.
NOTE_LEAD_CHARS = 120
# Sentence ends where a lead may be cut (closing quotes stay with their sentence).
_SENTENCE_END = re.compile(r"[。！？!?；;…]+[”’」』）)]*")


@dataclass(frozen=True)
class Block:
    kind: str  # "paragraph" | "subheading"
    text: str


@dataclass(frozen=True)
class ArticleView:
    id: int
    n: int  # its number among the issue's links: /c/TOKEN/n
    kind: str
    title: str
    section: str
    industries: tuple[str, ...]
    badges: tuple[str, ...]  # industry names, as readers read them
    lead: str
    blocks: tuple[Block, ...]
    source: str | None
    score: float = 0.0  # relevance to this variant's readers
    weights: tuple[float, ...] = ()  # the tagger's score per industry (none for an editor's tags)

    @property
    def paragraphs(self) -> tuple[str, ...]:
        return tuple(b.text for b in self.blocks if b.kind == "paragraph")

    @property
    def badge_items(self) -> tuple[tuple[str, str], ...]:
        """(code, name) of each badge: templates ask own.choose(code, …) with the code."""
        return tuple(zip(self.industries, self.badges, strict=True))


@dataclass(frozen=True)
class IssueView:
    id: int
    title: str
    number: str | None
    date: date | None
    sections: tuple[tuple[str, tuple[ArticleView, ...]], ...]

    @property
    def date_text(self) -> str:
        return cn_date(self.date)

    @property
    def articles(self) -> tuple[ArticleView, ...]:
        return tuple(a for _, arts in self.sections for a in arts)


@dataclass(frozen=True)
class Digest:
    """One variant's content: no reader's name, address or token in here."""

    issue: IssueView
    notes: tuple[ArticleView, ...]
    recommended: tuple[ArticleView, ...]
    others: tuple[ArticleView, ...]
    whole_issue: bool
    interests: str  # the reader's industries in words, for the footer
    # The reader's industries whose badges are marked as theirs (render.marks.own_codes).
    own: frozenset[str] = frozenset()
    # Some article is about the reader's industries (Selection.matched).
    matched: bool = False

    @property
    def own_marks(self) -> Own:
        """For the web pages' badges: m.badges(a, digest.own_marks)."""
        return Own(self.own)

    @property
    def preheader(self) -> str:
        titles = [a.title for a in self.recommended[:3]] or [a.title for a in self.others[:3]]
        return "本期：" + "；".join(titles)

    @property
    def note_lead(self) -> str:
        """The start of the editor's note: its first paragraph, cut at a sentence end
        when that alone is long."""
        if not self.notes or not self.notes[0].paragraphs:
            return ""
        return lead(self.notes[0].paragraphs[:1], NOTE_LEAD_CHARS)

    @property
    def note_has_more(self) -> bool:
        """The note is longer than note_lead (then the email links to the rest)."""
        if not self.notes:
            return False
        note = self.notes[0]
        return len(note.blocks) > 1 or self.note_lead != "".join(p.strip() for p in note.paragraphs)


NO_INTERESTS = "（尚未选择产业）"


def interests_words(follows_all: bool, follows: frozenset[str]) -> str:
    """The reader's industries in words, for "您收到本刊，是因为您关注：…"."""
    if follows_all:
        return "全部产业"
    return describe(False, [c for c in TAG_CODES if c in follows]) or NO_INTERESTS


def lead(paragraphs: tuple[str, ...] | list[str], limit: int = LEAD_CHARS) -> str:
    """About `limit` characters from the start, cut at a sentence end.

    Whole sentences up to the limit; if the first sentence alone is longer, it is cut
    at the limit with an ellipsis, so a lead is never much longer than asked.
    """
    text = "".join(p.strip() for p in paragraphs)
    if len(text) <= limit:
        return text
    cut = 0
    for m in _SENTENCE_END.finditer(text):
        if m.end() > limit:
            break
        cut = m.end()
    if cut >= limit // 3:
        return text[:cut]
    return text[:limit].rstrip("，、；：,;: ") + "……"


def article_views(issue: Issue) -> IssueView:
    """The view of `issue`, its sections, articles and their tags loaded."""
    sections = []
    n = 0
    for s in issue.sections:
        arts = []
        for a in s.articles:
            n += 1
            blocks = tuple(Block(b["kind"], b["text"]) for b in a.blocks)
            codes = tuple(a.industries)
            origin = "editor" if a.overridden else "auto"
            score = {t.industry: t.score for t in a.tags if t.origin == origin}
            weights = tuple(score.get(c, 0.0) for c in codes)
            arts.append(
                ArticleView(
                    id=a.id,
                    n=n,
                    kind=a.kind,
                    title=a.title,
                    section=s.title,
                    industries=codes,
                    weights=weights,
                    badges=tuple(name_of(c) for c in codes),
                    lead=lead([b.text for b in blocks if b.kind == "paragraph"]),
                    blocks=blocks,
                    source=a.source,
                )
            )
        sections.append((s.title, tuple(arts)))
    published = issue.issue_date
    if published is None and issue.publish_at is not None:
        published = to_local(issue.publish_at).date()
    return IssueView(issue.id, issue.title, issue.number, published, tuple(sections))


def tags_of(view: IssueView) -> list[ArticleTags]:
    return [ArticleTags(a.id, a.kind, a.industries, a.weights) for a in view.articles]


def build_digest(
    view: IssueView, selection: Selection, follows_all: bool, follows: frozenset[str]
) -> Digest:
    by_id = {a.id: a for a in view.articles}

    def scored(i: int) -> ArticleView:
        a = by_id[i]
        return ArticleView(**{**a.__dict__, "score": relevance(a.industries, follows, a.weights)})

    return Digest(
        issue=view,
        notes=tuple(by_id[i] for i in selection.notes),
        recommended=tuple(scored(i) for i in selection.recommended),
        others=tuple(by_id[i] for i in selection.others),
        whole_issue=selection.whole_issue,
        interests=interests_words(follows_all, follows),
        own=own_codes(follows_all, follows),
        matched=selection.matched,
    )


def link_targets(view: IssueView) -> dict[int, int]:
    """Link number → article id, for the click redirect: never a URL from the request."""
    return {a.n: a.id for a in view.articles}
