"""An issue's content hash: what makes two ingested files "the same issue".

It is taken from what is stored of the issue (title, number, date, sections, articles and
their paragraphs), never from the file's bytes: the same text saved again in another
encoding, with other line ends or spacing, or as Markdown instead of plain text, hashes
the same. Runs of whitespace count as one space, and text is NFC-normalised.

A leaf (stdlib only): `editorial` hashes what it is about to store, and migration 0005
backfills the issues stored before it with the same rule.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import date

# (kind, title, source, blocks), blocks being [{"kind": …, "text": …}] as stored.
ArticleContent = tuple[str, str, str | None, Iterable[Mapping[str, str]]]
SectionContent = tuple[str, Iterable[ArticleContent]]


def _norm(text: str | None) -> str | None:
    if text is None:
        return None
    return " ".join(unicodedata.normalize("NFC", text).split())


def issue_content_hash(
    title: str,
    number: str | None,
    issue_date: date | None,
    sections: Iterable[SectionContent],
) -> str:
    """The SHA-256 (hex) of the issue's normalised content."""
    content = {
        "title": _norm(title),
        "number": _norm(number),
        "date": issue_date.isoformat() if issue_date else None,
        "sections": [
            [
                _norm(section_title),
                [
                    [kind, _norm(a_title), _norm(source),
                     [[b["kind"], _norm(b["text"])] for b in blocks]]
                    for kind, a_title, source, blocks in articles
                ],
            ]
            for section_title, articles in sections
        ],
    }
    canonical = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
