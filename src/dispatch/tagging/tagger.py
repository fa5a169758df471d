"""Tag an article with industries by keyword rules. Pure: text and rules in, tags out.

Scoring, per industry: for each of its keywords with weight w, hit t times in the title
and b times in the body,

    w * (title_weight * f(t) + f(b)),   f(0) = 0, f(n) = 1 + log2(n)

so repetition counts, with diminishing returns. Matching is longest-match-first over all
industries' keywords at once (新能源汽车 is not also 新能源), case-insensitive, and Latin
keywords match whole words only (AI is not found in MAIL).

Then: if at least breadth_count industries score breadth_score or more, the article
concerns everything, i.e. nothing in particular: 综合 (general). Otherwise the industries
scoring at least threshold and at least min_share of the best score, best first, at most
max_tags of them, in canonical order. None: general.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from dispatch.industries import GENERAL, GENERAL_NAME, TAG_CODES, name_of

from .rules import Rules, Term, is_latin, normalize

Reason = Literal["tagged", "no_hits", "below_threshold", "breadth"]


@dataclass(frozen=True)
class TagResult:
    # Industry codes in canonical order (dispatch.industries.TAG_CODES), or ["general"].
    codes: list[str]
    # Score of every industry with at least one hit, rounded to 0.1.
    scores: dict[str, float] = field(default_factory=dict)
    # Per industry: (keyword, hits in the title, hits in the body), biggest contribution first.
    hits: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)
    # Why: tagged; general because nothing matched, nothing cleared the threshold, or breadth.
    reason: Reason = "tagged"
    # For general-by-breadth: how many industries were broad enough (for explain()).
    breadth: int = 0


def find_terms(text: str, rules: Rules) -> list[Term]:
    """All non-overlapping term occurrences, leftmost first, longest at each position."""
    s = normalize(text)
    n = len(s)
    trie = rules.trie
    found: list[Term] = []
    i = 0
    while i < n:
        node = trie
        best: tuple[Term, int] | None = None
        j = i
        while j < n:
            child = node.children.get(s[j])
            if child is None:
                break
            node = child
            j += 1
            term = node.term
            if term is not None and _bounded(s, i, j, term):
                best = (term, j)
        if best is None:
            i += 1
        else:
            found.append(best[0])
            i = best[1]
    return found


def _bounded(s: str, start: int, end: int, term: Term) -> bool:
    if term.latin_start and start > 0 and is_latin(s[start - 1]):
        return False
    return not (term.latin_end and end < len(s) and is_latin(s[end]))


def _damp(n: int) -> float:
    return 0.0 if n <= 0 else 1.0 + math.log2(n)


def _count(texts: list[str], rules: Rules) -> dict[str, int]:
    counts: dict[str, int] = {}
    for text in texts:
        for term in find_terms(text, rules):
            if term.entries:  # ignored phrases only block
                counts[term.text] = counts.get(term.text, 0) + 1
    return counts


def tag_article(title: str, texts: list[str], rules: Rules) -> TagResult:
    """Tag one article from its title and its body texts (paragraphs, subheadings)."""
    st = rules.settings
    in_title = _count([title], rules)
    in_body = _count(texts, rules)

    entries_of: dict[str, tuple[tuple[str, float], ...]] = {}
    for term_text in (*in_title, *in_body):
        if term_text not in entries_of:
            entries_of[term_text] = _entries(term_text, rules)

    raw: dict[str, float] = {}
    contrib: dict[str, list[tuple[float, str, int, int]]] = {}
    for term_text, entries in entries_of.items():
        t, b = in_title.get(term_text, 0), in_body.get(term_text, 0)
        base = st.title_weight * _damp(t) + _damp(b)
        for code, weight in entries:
            raw[code] = raw.get(code, 0.0) + weight * base
            contrib.setdefault(code, []).append((weight * base, term_text, t, b))

    scores = {c: round(raw[c], 1) for c in TAG_CODES if c in raw}
    hits = {
        c: [(kw, t, b) for _, kw, t, b in sorted(contrib[c], key=lambda x: (-x[0], -x[2] - x[3]))]
        for c in scores
    }

    if not scores:
        return TagResult([GENERAL], scores, hits, "no_hits")
    broad = sum(1 for s in scores.values() if s >= st.breadth_score)
    if broad >= st.breadth_count:
        return TagResult([GENERAL], scores, hits, "breadth", broad)
    best = max(scores.values())
    passing = [c for c, s in scores.items() if s >= st.threshold and s >= st.min_share * best]
    if not passing:
        return TagResult([GENERAL], scores, hits, "below_threshold")
    # Best first (ties in canonical order), then back to canonical order.
    chosen = set(sorted(passing, key=lambda c: -scores[c])[: st.max_tags])
    return TagResult([c for c in TAG_CODES if c in chosen], scores, hits, "tagged")


def _entries(term_text: str, rules: Rules) -> tuple[tuple[str, float], ...]:
    node = rules.trie
    for ch in normalize(term_text):
        node = node.children[ch]
    # term_text came from find_terms, so the trie holds it.
    assert node.term is not None
    return node.term.entries


def _describe(code: str, result: TagResult, top: int) -> str:
    parts = []
    for kw, t, b in result.hits[code][:top]:
        mark = "（标题）" if t else ""
        parts.append(f"{kw}×{t + b}{mark}")
    more = "…" if len(result.hits[code]) > top else ""
    return f"{name_of(code)} {result.scores[code]:.1f}（{'、'.join(parts)}{more}）"


def explain(result: TagResult, top: int = 3) -> str:
    """One line for an editor: which industries, with which score, because of which words."""
    if result.reason == "tagged":
        by_score = sorted(result.codes, key=lambda c: -result.scores[c])
        return "；".join(_describe(c, result, top) for c in by_score)
    ranked = sorted(result.scores, key=lambda c: -result.scores[c])
    if result.reason == "no_hits":
        return f"{GENERAL_NAME}：未命中任何产业关键词"
    if result.reason == "breadth":
        names = "、".join(name_of(c) for c in ranked[:4])
        return (
            f"{GENERAL_NAME}：涉及 {result.breadth} 个产业（{names}等），面向所有产业，按综合处理"
        )
    return f"{GENERAL_NAME}：没有产业得分达到阈值；最高为 {_describe(ranked[0], result, top)}"
