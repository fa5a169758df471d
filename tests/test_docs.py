"""Every relative link in README.md and docs/*.md leads to a file in the repository (and,
with a #fragment, to a heading of that file): what a reader clicking it would find."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+).+?\1", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def prose(text: str) -> str:
    """The text without code blocks and code spans, where `[a](b)` is not a link."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(path: Path) -> list[str]:
    return [m[1] for m in LINK.finditer(prose(path.read_text(encoding="utf-8")))]


def anchors(path: Path) -> set[str]:
    """The heading ids GitHub gives a Markdown file: lower case, punctuation dropped,
    spaces as hyphens, a repeated id numbered -1, -2 …"""
    ids: set[str] = set()
    counts: dict[str, int] = {}
    for title in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n = counts.get(slug, 0)
        counts[slug] = n + 1
        ids.add(slug if n == 0 else f"{slug}-{n}")
    return ids


def test_the_docs_are_found() -> None:
    names = {p.name for p in DOCS}
    assert {"README.md", "CONTEXT.md", "architecture.md"} <= names


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_in_the_repository(doc: Path) -> None:
    broken = []
    for target in links(doc):
        if SCHEME.match(target):
            continue  # a web address, not a file
        file_part, _, fragment = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.is_relative_to(REPO):
            broken.append(f"{target}: outside the repository")
        elif not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading #{fragment}")
    assert broken == [], f"{doc.relative_to(REPO)}: broken links"


def test_links_are_seen_and_code_is_not_taken_for_links() -> None:
    readme = links(REPO / "README.md")
    assert "docs/CONTEXT.md" in readme and "docs/architecture.md" in readme
    # docs/ingest-rules.md shows `[text](url)` as Markdown syntax, in a code span.
    assert "url" not in links(REPO / "docs" / "ingest-rules.md")
