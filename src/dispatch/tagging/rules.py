"""Industry keyword rules: load, validate and index rules/industries.toml.

The rules are data that staff edit. Anything wrong with the file is reported as a
RulesError naming the file and the dotted key, in Chinese, because staff read it.
"""

from __future__ import annotations

import difflib
import tomllib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatch.errors import Refused, os_reason
from dispatch.industries import CODES, name_of

# Every [settings] key, with the kind of value it takes. All are required, so that
# the file documents the values in force; none has a hidden default.
SETTINGS_KEYS: dict[str, type] = {
    "title_weight": float,
    "threshold": float,
    "min_share": float,
    "max_tags": int,
    "breadth_count": int,
    "breadth_score": float,
}


class RulesError(Refused, ValueError):
    """The rule file is unreadable or wrong; says which file and which key."""

    def __init__(self, file: str, key: str | None, reason: str):
        self.file = file
        self.key = key
        self.reason = reason
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {reason}")


# Builds the RulesError for a dotted key (None: the whole file) and a reason.
Fail = Callable[[str | None, str], RulesError]


@dataclass(frozen=True)
class Settings:
    title_weight: float  # a keyword hit in the title counts this many times a body hit
    threshold: float  # an industry needs at least this score to be tagged
    min_share: float  # ... and at least this share of the best industry's score
    max_tags: int  # at most this many industries per article
    breadth_count: int  # this many industries scoring >= breadth_score ...
    breadth_score: float  # ... make the article 综合 (general)


@dataclass(frozen=True)
class Keyword:
    text: str  # as written in the file (NFKC-normalised), shown to editors
    weight: float


@dataclass(frozen=True)
class IndustryRule:
    code: str
    keywords: tuple[Keyword, ...]


@dataclass(frozen=True)
class Term:
    """One entry of the match index: a keyword of one or more industries, or an
    ignored phrase (no entries) that only stops shorter keywords matching inside it."""

    text: str
    entries: tuple[tuple[str, float], ...]  # (industry code, weight)
    latin_start: bool  # needs a word boundary before it
    latin_end: bool  # needs a word boundary after it


@dataclass(slots=True)
class TrieNode:
    """A node of the character trie over lower-cased term texts."""

    children: dict[str, TrieNode] = field(default_factory=dict)
    term: Term | None = None  # the term ending here


@dataclass(frozen=True)
class Rules:
    settings: Settings
    industries: tuple[IndustryRule, ...]  # in canonical order
    ignore: tuple[str, ...] = ()
    source: str = "<rules>"
    trie: TrieNode = field(default_factory=TrieNode, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "trie", _build_trie(self))


def normalize(text: str) -> str:
    """The form both keywords and article text are matched in: NFKC (full-width
    letters and digits become ASCII), lower-cased."""
    return unicodedata.normalize("NFKC", text).lower()


def is_latin(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _build_trie(rules: Rules) -> TrieNode:
    terms: dict[str, tuple[str, list[tuple[str, float]]]] = {}
    for rule in rules.industries:
        for kw in rule.keywords:
            key = normalize(kw.text)
            display, entries = terms.setdefault(key, (kw.text, []))
            entries.append((rule.code, kw.weight))
    for phrase in rules.ignore:
        terms.setdefault(normalize(phrase), (phrase, []))
    root = TrieNode()
    for key, (display, entries) in terms.items():
        node = root
        for ch in key:
            node = node.children.setdefault(ch, TrieNode())
        node.term = Term(
            text=display,
            entries=tuple(entries),
            latin_start=is_latin(key[0]),
            latin_end=is_latin(key[-1]),
        )
    return root


def load_rules(path: str | Path) -> Rules:
    """Read and validate a rule file; raises RulesError naming the file and key."""
    p = Path(path)
    file = str(p)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise RulesError(file, None, "规则文件不存在") from None
    except OSError as e:
        raise RulesError(file, None, f"无法读取规则文件（{os_reason(e)}）") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RulesError(file, None, "文件不是 UTF-8 编码，请用 UTF-8 保存") from None
    except tomllib.TOMLDecodeError as e:
        raise RulesError(file, None, f"TOML 格式错误：{e}") from None
    return rules_from_dict(data, source=file)


def rules_from_dict(data: dict[str, Any], source: str = "<rules>") -> Rules:
    """Validate parsed TOML data into Rules; `source` names the file in errors."""

    def fail(key: str | None, reason: str) -> RulesError:
        return RulesError(source, key, reason)

    for key in data:
        if key not in ("settings", "industries", "ignore"):
            raise fail(key, "未知的配置项（只允许 settings、industries、ignore）")

    settings = _settings(data.get("settings"), fail)
    industries = _industries(data.get("industries"), fail)
    ignore = _ignore(data.get("ignore", {}), fail)

    all_keywords = {normalize(k.text) for r in industries for k in r.keywords}
    for i, phrase in enumerate(ignore):
        if normalize(phrase) in all_keywords:
            raise fail(f"ignore.phrases[{i}]", f"“{phrase}”同时是关键词，不能既计分又忽略")
    return Rules(settings=settings, industries=industries, ignore=ignore, source=source)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _settings(table: Any, fail: Fail) -> Settings:
    if table is None:
        raise fail("settings", "缺少 [settings] 表")
    if not isinstance(table, dict):
        raise fail("settings", "应为表（[settings]）")
    for key in table:
        if key not in SETTINGS_KEYS:
            close = difflib.get_close_matches(key, list(SETTINGS_KEYS), n=1)
            hint = f"，是否应为“{close[0]}”？" if close else ""
            raise fail(f"settings.{key}", f"未知的设置项{hint}")
    values: dict[str, Any] = {}
    for key, kind in SETTINGS_KEYS.items():
        dotted = f"settings.{key}"
        if key not in table:
            raise fail(dotted, "缺少此设置项")
        v = table[key]
        if kind is int:
            if not isinstance(v, int) or isinstance(v, bool):
                raise fail(dotted, f"应为整数，实际为 {v!r}")
        elif not _is_number(v):
            raise fail(dotted, f"应为数字，实际为 {v!r}")
        values[key] = kind(v)
    s = Settings(**values)
    if s.title_weight < 1:
        raise fail("settings.title_weight", "应不小于 1（标题命中至少与正文命中同等重要）")
    if s.threshold <= 0:
        raise fail("settings.threshold", "应大于 0")
    if not 0 <= s.min_share <= 1:
        raise fail("settings.min_share", "应在 0 到 1 之间")
    if s.max_tags < 1:
        raise fail("settings.max_tags", "应不小于 1")
    if not 2 <= s.breadth_count <= len(CODES) + 1:
        raise fail(
            "settings.breadth_count",
            f"应在 2 到 {len(CODES) + 1} 之间（{len(CODES) + 1} 表示不启用）",
        )
    if s.breadth_score <= 0:
        raise fail("settings.breadth_score", "应大于 0")
    return s


def _industries(table: Any, fail: Fail) -> tuple[IndustryRule, ...]:
    if table is None:
        raise fail("industries", "缺少 [industries.<代码>] 表")
    if not isinstance(table, dict):
        raise fail("industries", "应为表")
    for code in table:
        if code not in CODES:
            close = difflib.get_close_matches(code, list(CODES), n=1, cutoff=0.5)
            hint = f"，是否应为“{close[0]}”（{name_of(close[0])}）？" if close else ""
            raise fail(
                f"industries.{code}",
                f"未知的产业代码“{code}”{hint}产业代码应为 {'、'.join(CODES)} 之一",
            )
    rules = []
    for code in CODES:
        if code not in table:
            raise fail(f"industries.{code}", f"缺少产业“{name_of(code)}”的规则")
        rules.append(_industry(code, table[code], fail))
    return tuple(rules)


def _industry(code: str, table: Any, fail: Fail) -> IndustryRule:
    base = f"industries.{code}"
    if not isinstance(table, dict):
        raise fail(base, "应为表")
    for key in table:
        if key != "keywords":
            raise fail(f"{base}.{key}", "未知的配置项（产业表中只允许 keywords）")
    keywords = table.get("keywords")
    if keywords is None:
        raise fail(f"{base}.keywords", "缺少关键词表")
    if not isinstance(keywords, dict):
        raise fail(f"{base}.keywords", '应为表，每行一个 "关键词" = 权重')
    if not keywords:
        raise fail(f"{base}.keywords", f"产业“{name_of(code)}”至少需要一个关键词")
    seen: dict[str, str] = {}
    out = []
    for text, weight in keywords.items():
        key = f'{base}.keywords."{text}"'
        norm_text = unicodedata.normalize("NFKC", text).strip()
        if not norm_text:
            raise fail(key, "关键词不能为空")
        if norm_text != unicodedata.normalize("NFKC", text):
            raise fail(key, "关键词首尾不能有空格")
        if not _is_number(weight):
            raise fail(key, f"权重应为数字，实际为 {weight!r}")
        if weight <= 0:
            raise fail(key, f"权重应大于 0，实际为 {weight}")
        folded = norm_text.lower()
        if folded in seen:
            raise fail(key, f"与关键词“{seen[folded]}”重复（不区分大小写和全半角）")
        seen[folded] = text
        out.append(Keyword(norm_text, float(weight)))
    return IndustryRule(code=code, keywords=tuple(out))


def _ignore(table: Any, fail: Fail) -> tuple[str, ...]:
    if not isinstance(table, dict):
        raise fail("ignore", "应为表（[ignore]）")
    for key in table:
        if key != "phrases":
            raise fail(f"ignore.{key}", "未知的配置项（只允许 phrases）")
    phrases = table.get("phrases", [])
    if not isinstance(phrases, list):
        raise fail("ignore.phrases", "应为字符串列表")
    out = []
    for i, p in enumerate(phrases):
        if not isinstance(p, str) or not p.strip():
            raise fail(f"ignore.phrases[{i}]", f"应为非空字符串，实际为 {p!r}")
        out.append(unicodedata.normalize("NFKC", p).strip())
    return tuple(out)
