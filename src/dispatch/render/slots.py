"""Per-reader slots in a rendered variant.

A variant is rendered once with these ASCII markers where reader-specific values go;
the per-reader step only splices values in. They are plain ASCII so Jinja's
autoescape, premailer/lxml (which escapes non-ASCII in href) and MIME encoders leave
them untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TOKEN = "x7dsptokenx7"
GREETING = "x7dspgreetingx7"
# The reader's industries in words (the footer's "why you get this"): per reader, so
# that readers whose digests differ only in it share one variant.
INTERESTS = "x7dspinterestsx7"
SLOTS = (TOKEN, GREETING, INTERESTS)
_SPLIT = re.compile(f"({TOKEN}|{GREETING}|{INTERESTS})")


@dataclass(frozen=True)
class Spliced:
    """A text cut at its slots: parts[0] slot[0] parts[1] slot[1] … parts[-1]."""

    parts: tuple[str, ...]
    slots: tuple[str, ...]

    def fill(self, values: dict[str, str]) -> str:
        out = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            out.append(values[slot])
            out.append(part)
        return "".join(out)


def splice(text: str) -> Spliced:
    pieces = _SPLIT.split(text)
    return Spliced(tuple(pieces[0::2]), tuple(pieces[1::2]))


def check_free_of_slots(text: str, where: str) -> None:
    """Content must not contain a marker, or a reader's value would land in it."""
    if _SPLIT.search(text):
        raise ValueError(f"{where}: contains a reserved marker")
