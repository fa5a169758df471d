"""Which articles a reader's digest recommends, and in what order. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from dispatch.industries import GENERAL

# A general article concerns everyone, but less than one about the reader's own industry.
GENERAL_SCORE = 0.5


@dataclass(frozen=True)
class ArticleTags:
    id: int
    kind: str  # "article" | "note"
    industries: tuple[str, ...]
    # How strongly the article concerns each industry (the tagger's scores); equal
    # weights when an editor set the tags by hand.
    weights: tuple[float, ...] = ()


@dataclass(frozen=True)
class Selection:
    """Article ids of one digest; equal selections render the same body."""

    notes: tuple[int, ...]
    recommended: tuple[int, ...]
    others: tuple[int, ...]
    whole_issue: bool
    # Some article is about the reader's own industries, not only 综合 (the digest says
    # "本期暂无…" to readers it matched nothing for). Part of the selection, so that
    # readers sharing a body always agree on it.
    matched: bool = False


def relevance(
    industries: tuple[str, ...], follows: frozenset[str], weights: tuple[float, ...] = ()
) -> float:
    """0 when the article is not for this reader; otherwise higher is more relevant.

    An article about the reader's industries scores 1 plus the share of its tag weight
    that falls on industries the reader follows: a report mostly about 生物医药 ranks
    above one that mentions it beside a stronger subject. A general article scores
    GENERAL_SCORE, below any specific match.
    """
    if not industries:
        return 0.0
    if len(weights) != len(industries) or sum(weights) <= 0:
        weights = (1.0,) * len(industries)
    matched = sum(w for c, w in zip(industries, weights, strict=True) if c in follows)
    if matched > 0:
        return 1.0 + matched / sum(weights)
    return GENERAL_SCORE if GENERAL in industries else 0.0


def articles_for(articles: list[ArticleTags], follows_all: bool, follows: frozenset[str]) -> Selection:
    """Articles in the issue's order in; the reader's digest out.

    Readers following 全部 get the whole issue in its own order. Others get the
    relevant articles most relevant first (ties keep the issue's order, as sorted()
    is stable), then the remaining ones, so nothing in the issue is hidden.
    """
    notes = tuple(a.id for a in articles if a.kind == "note")
    body = [a for a in articles if a.kind != "note"]
    if follows_all:
        return Selection(notes, tuple(a.id for a in body), (), True, matched=True)
    scored = [(relevance(a.industries, follows, a.weights), a.id) for a in body]
    recommended = tuple(i for s, i in sorted((x for x in scored if x[0] > 0), key=lambda x: -x[0]))
    others = tuple(i for s, i in scored if s == 0)
    matched = any(s > GENERAL_SCORE for s, _ in scored)
    return Selection(notes, recommended, others, False, matched=matched)
