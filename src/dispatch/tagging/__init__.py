"""Automatic industry tagging by keyword rules kept as data (rules/industries.toml)."""

from .rules import (
    IndustryRule,
    Keyword,
    Rules,
    RulesError,
    Settings,
    load_rules,
)
from .tagger import TagResult, explain, tag_article

__all__ = [
    "IndustryRule",
    "Keyword",
    "Rules",
    "RulesError",
    "Settings",
    "TagResult",
    "explain",
    "load_rules",
    "tag_article",
]
