"""What ingest produces: a parsed issue, before it is stored. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from dispatch.errors import Refused

BlockKind = Literal["paragraph", "subheading"]
ArticleKind = Literal["article", "note"]


@dataclass
class Block:
    kind: BlockKind
    text: str


@dataclass
class ParsedArticle:
    title: str
    blocks: list[Block] = field(default_factory=list)
    source: str | None = None
    # "note": the untitled editor's note (编者的话); it opens every digest.
    kind: ArticleKind = "article"
    line: int = 0  # where it starts in the file, for messages


@dataclass
class ParsedSection:
    title: str
    articles: list[ParsedArticle] = field(default_factory=list)
    line: int = 0


@dataclass
class ParsedIssue:
    sections: list[ParsedSection]
    source_format: Literal["text", "markdown", "docx"]
    title: str | None = None
    number: str | None = None
    published_on: date | None = None

    @property
    def articles(self) -> list[ParsedArticle]:
        return [a for s in self.sections for a in s.articles]


class IngestError(Refused, ValueError):
    """A file that can't be understood: says which file, which line, and why."""

    def __init__(self, file: str, line: int | None, reason: str):
        self.file = file
        self.line = line
        self.reason = reason
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {reason}")
