"""The reader's own industries, marked on article badges. Pure.

Readers who get the same articles in the same order share one email body, but not the
industries they follow, and their own badges look different from the others (filled,
with ✓). Rendering a body per set of industries would run premailer (~25 ms) per set,
hundreds per issue. Instead a selection's body is rendered once with both forms of
every badge that may be a reader's own, between markers:

    x7dspownx7 CODE x7dspthenx7 OWN FORM x7dspelsex7 OTHER FORM x7dspendx7

and `resolve` keeps one form of each for a set of codes (a regex pass, microseconds).
The markers share the slots' stem (render.slots), so a marker a template mangled, or one
left unresolved, is caught by email.check_slots like a mangled slot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

from dispatch.industries import GENERAL, TAG_CODES

BEGIN = "x7dspownx7"
THEN = "x7dspthenx7"
ELSE = "x7dspelsex7"
END = "x7dspendx7"
MARKERS = (BEGIN, THEN, ELSE, END)
_CHOICE = re.compile(f"{BEGIN}([a-z]+){THEN}(.*?){ELSE}(.*?){END}", re.DOTALL)

_S = TypeVar("_S", bound=str)


def own_codes(follows_all: bool, follows: frozenset[str]) -> frozenset[str]:
    """The industries whose badges are marked as the reader's own: none for a 全部 reader
    (everything is theirs; marking all says nothing), and never 综合."""
    if follows_all:
        return frozenset()
    return frozenset(follows) - {GENERAL}


@dataclass(frozen=True)
class Own:
    """What templates ask whether a badge is the reader's own: `choose(code, yes, no)`.

    `codes` None: the email variant's, which writes both forms between markers for
    `resolve` to pick per reader. Otherwise the reader's own codes (web pages).
    """

    codes: frozenset[str] | None = None

    def choose(self, code: str, yes: _S, no: _S) -> _S:
        if code not in TAG_CODES:
            raise ValueError(f"not an industry code: {code!r}")
        if code == GENERAL:
            return no
        if self.codes is not None:
            return yes if code in self.codes else no
        # Markup (autoescaped templates) stays Markup: the markers are plain ASCII,
        # which escaping leaves as they are.
        return BEGIN + code + THEN + yes + ELSE + no + END  # type: ignore[return-value]


def codes_in(body: str) -> frozenset[str]:
    """The industries a body has choices for."""
    return frozenset(m.group(1) for m in _CHOICE.finditer(body))


def count(body: str) -> int:
    """How many markers the body holds (whole or not)."""
    return sum(body.count(m) for m in MARKERS)


def check(body: str, where: str) -> None:
    """Every marker in a whole, well-formed choice; raises ValueError naming the template."""
    if count(body) != 4 * len(_CHOICE.findall(body)):
        raise ValueError(
            f"{where}: a badge marker was changed by the template; mark the reader's own "
            "industries only through own.choose(…) (docs/templates.md)"
        )


def resolve(body: str, own: frozenset[str]) -> str:
    """The body with each choice made: the own form for codes in `own`, else the other."""
    if BEGIN not in body:
        return body
    return _CHOICE.sub(lambda m: m.group(2) if m.group(1) in own else m.group(3), body)
