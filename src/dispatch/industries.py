"""The city's 6 + 3 + 3 industries, and the one place that knows their names.

Codes are what the database stores; names are what staff and readers see.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from dispatch.errors import Refused

GENERAL = "general"
GENERAL_NAME = "综合"
ALL_NAME = "全部"


@dataclass(frozen=True)
class Industry:
    code: str
    name: str
    tier: str


INDUSTRIES: tuple[Industry, ...] = (
    Industry("it", "新一代信息技术", "战略性新兴产业"),
    Industry("materials", "新材料", "战略性新兴产业"),
    Industry("biomed", "生物医药", "战略性新兴产业"),
    Industry("equipment", "智能装备", "战略性新兴产业"),
    Industry("nev", "新能源汽车", "战略性新兴产业"),
    Industry("green", "节能环保", "战略性新兴产业"),
    Industry("machinery", "装备制造", "优势主导产业"),
    Industry("food", "食品", "优势主导产业"),
    Industry("hair", "发制品", "优势主导产业"),
    Industry("building", "建材", "传统产业"),
    Industry("chemical", "化工", "传统产业"),
    Industry("textile", "轻纺", "传统产业"),
)

CODES: tuple[str, ...] = tuple(i.code for i in INDUSTRIES)
BY_CODE: dict[str, Industry] = {i.code: i for i in INDUSTRIES}
BY_NAME: dict[str, Industry] = {i.name: i for i in INDUSTRIES}
# Tag codes an article may carry: the twelve plus 综合.
TAG_CODES: tuple[str, ...] = (*CODES, GENERAL)


def by_tier() -> list[tuple[str, tuple[Industry, ...]]]:
    """The twelve grouped 6 + 3 + 3, in the city's order: for checkboxes and charts."""
    tiers: dict[str, list[Industry]] = {}
    for industry in INDUSTRIES:
        tiers.setdefault(industry.tier, []).append(industry)
    return [(tier, tuple(members)) for tier, members in tiers.items()]


# Separators staff use between industries in one spreadsheet cell or CLI flag.
SEPARATORS = re.compile(r"[、，,;；|\s/／]+")


class UnknownIndustry(Refused, ValueError):
    """A name that is neither an industry's code nor its Chinese name."""

    def __init__(self, word: str, suggestion: str | None):
        self.word = word
        self.suggestion = suggestion
        hint = f"，是否应为“{suggestion}”？" if suggestion else ""
        super().__init__(f"未知产业“{word}”{hint}")


def name_of(code: str) -> str:
    if code == GENERAL:
        return GENERAL_NAME
    return BY_CODE[code].name


def suggest(word: str) -> str | None:
    """The valid industry name closest to a misspelt one, if any is close."""
    names = [i.name for i in INDUSTRIES] + [GENERAL_NAME, ALL_NAME]
    match = difflib.get_close_matches(word, names, n=1, cutoff=0.5)
    if match:
        return match[0]
    codes = difflib.get_close_matches(word.lower(), list(TAG_CODES), n=1, cutoff=0.6)
    return name_of(codes[0]) if codes else None


def code_of(word: str, *, allow_general: bool = False) -> str:
    """Code for a name or code as staff write it; raises UnknownIndustry."""
    w = word.strip()
    if w in BY_NAME:
        return BY_NAME[w].code
    if w.lower() in BY_CODE:
        return w.lower()
    if allow_general and (w == GENERAL_NAME or w.lower() == GENERAL):
        return GENERAL
    raise UnknownIndustry(w, suggest(w))


def parse_list(text: str, *, allow_general: bool = False) -> tuple[bool, list[str]]:
    """Parse '生物医药、nev' or '全部' into (follows_all, [codes]) in canonical order.

    Raises UnknownIndustry for the first word that is not an industry.
    """
    words = [w for w in SEPARATORS.split(text.strip()) if w]
    if any(w == ALL_NAME or w.lower() == "all" for w in words):
        return True, []
    codes = {code_of(w, allow_general=allow_general) for w in words}
    return False, [c for c in TAG_CODES if c in codes]


def describe(follows_all: bool, codes: list[str] | tuple[str, ...]) -> str:
    """Words for a set of industries, as staff and readers read them."""
    if follows_all:
        return ALL_NAME
    return "、".join(name_of(c) for c in codes)
