"""A text part's body in base64, prepared once per variant around its slots.

Canonical form. A body is encoded as UTF-8 with CRLF line ends, every line (the last
too) ended by one: exactly what EmailMessage.set_content makes (bytes.splitlines,
joined and ended by CRLF). The bodies are cut into lines before the values go in,
which is the same as after except where an empty value changes the lines (below).

Base64 splicing. base64(a + b) == base64(a) + base64(b) exactly when len(a) is a
multiple of 3. Cut the canonical body as P0 S0 P1 S1 … Pn (static parts P, slots S).
Walking it, keep the `pending` bytes not yet encoded (always fewer than 3 after a
static part). At each static part P with `pending` p (which ends with a slot's value):
take k = (-len(p)) % 3 head bytes of P so that p + P[:k] is a whole number of 3-byte
groups and encode it per reader (a "window"); encode the largest 3-aligned middle of
the rest of P once per variant; its 0–2 tail bytes start the next `pending`. A part
shorter than k joins the window whole. So:

- every piece encodes a multiple of 3 bytes, except the very last, which is the only
  one with "=" padding: the pieces' concatenation is the base64 of the whole body;
- lines are cut only at 4-character quantum boundaries (line-by-line decoders are
  fine), at most 76 characters (MAX_BODY_LINE); those around slots are shorter,
  which RFC 2045 allows;
- which k applies to each part depends only on the values' UTF-8 lengths mod 3 (the
  "residues"): `Body.segments` takes them and nothing else of the reader;
- a static part's middle depends on the values before it only through its k (only
  whole 3-byte groups may be encoded apart, and no padding may be added): each part
  has at most three encodings, built once and shared by every set of residues
  (`Body._middles`). A variant thus holds at most three times its bodies' base64.

Empty values. Where an empty value changes the lines, not just the text: a run of
slots ending the body right after a line break (the filled text then ends with its
line break: no empty last line), or standing between a bare CR and an LF (one line
break then, not two). Such runs (of GREETING and INTERESTS only: the token is never
empty) are found by `is_fragile`; `without_empty_runs` gives the body to prepare when
the greeting and/or the interests are empty.
"""

from __future__ import annotations

import re
from binascii import b2a_base64

from dispatch.render.slots import GREETING, INTERESTS, TOKEN

MAX_BODY_LINE = 76  # RFC 2045, base64
B64_LINE_BYTES = MAX_BODY_LINE // 4 * 3  # 57 bytes encode to one full line
_CRLF = b"\r\n"

# Per-reader values, by index: the token, then each variable slot as text and as
# escaped HTML (a body's marker points at the form of its part). `message` builds the
# values tuple and the residues in this order.
TOKEN_VALUE, GREETING_TEXT, GREETING_HTML, INTERESTS_TEXT, INTERESTS_HTML = range(5)
TEXT, HTML = 0, 1  # a body's form: which of a marker's two value indexes it uses
# marker → (value index in the text part, value index in the HTML part)
_MARKERS = {
    TOKEN.encode("ascii"): (TOKEN_VALUE, TOKEN_VALUE),
    GREETING.encode("ascii"): (GREETING_TEXT, GREETING_HTML),
    INTERESTS.encode("ascii"): (INTERESTS_TEXT, INTERESTS_HTML),
}
_SLOT_SPLIT = re.compile(b"(" + b"|".join(map(re.escape, _MARKERS)) + b")")

_EMPTIABLE = f"(?:{re.escape(GREETING)}|{re.escape(INTERESTS)})+"
_FRAGILE = re.compile(rf"(?<=[\r\n]){_EMPTIABLE}\Z|(?<=\r){_EMPTIABLE}(?=\n)")

# (const, value index, const, value index, …, const): bytes around the values of one
# window, encoded per reader. Always odd-length, bytes at even positions.
Window = tuple[bytes | int, ...]


def is_fragile(body: str) -> bool:
    """Whether the body has a run of slots where empty values change the lines."""
    maybe = "\r" in body or body.endswith((GREETING, INTERESTS))  # (the regex is slower)
    return maybe and _FRAGILE.search(body) is not None


def without_empty_runs(body: str, greeting_empty: bool, interests_empty: bool) -> str:
    """The body without the fragile runs whose values are all empty: the same text
    once filled, cut into the lines the filled text has."""
    filled = [m for m, e in ((GREETING, greeting_empty), (INTERESTS, interests_empty)) if not e]

    def drop(run: re.Match[str]) -> str:
        return run[0] if any(m in run[0] for m in filled) else ""

    return _FRAGILE.sub(drop, body)


def wrap(encoded: bytes) -> bytes:
    """Cut one encoded run into ≤ 76-character lines (at quantum boundaries), without
    a CRLF at the end."""
    step = MAX_BODY_LINE
    return _CRLF.join([encoded[i : i + step] for i in range(0, len(encoded), step)])


def _b64_lines(data: bytes) -> bytes:
    """Base64 of data in full 76-character lines, each ending in CRLF (b'' for b'')."""
    if not data:
        return b""
    return wrap(b2a_base64(data, newline=False)) + _CRLF


class Body:
    """One text part (plain or HTML) of a variant, cut at its slots."""

    __slots__ = ("parts", "slots", "_middles")

    def __init__(self, text: str, form: int) -> None:
        """`form` TEXT for the plain-text part, HTML for the HTML part (whose slots
        take the escaped values)."""
        data = _CRLF.join(text.encode("utf-8").splitlines()) + _CRLF  # canonical form
        pieces = _SLOT_SPLIT.split(data)
        self.parts: tuple[bytes, ...] = tuple(pieces[0::2])
        self.slots: tuple[int, ...] = tuple(_MARKERS[s][form] for s in pieces[1::2])
        # (part index, head bytes taken by the window before it, whether one precedes)
        # → the base64 lines of the part's aligned middle: at most 3 per part, the same
        # objects whatever the residues.
        self._middles: dict[tuple[int, int, bool], bytes] = {}

    def values(self) -> frozenset[int]:
        """The value indexes the body's slots hold."""
        return frozenset(self.slots)

    def segments(self, residues: tuple[int, ...]) -> list[bytes | Window]:
        """The body's base64 as static chunks (bytes) and windows to encode per
        reader, when value i has a length ≡ residues[i] (mod 3).

        Joined in order, with each window's encoding (≤ 76 characters or wrapped, and
        with no CRLF of its own) in its place, they make the part's base64 lines, each
        ending in CRLF: a static chunk that follows a window starts with the CRLF."""
        out: list[bytes | Window] = []
        pending: list[bytes | int] = []  # constants and value indexes not yet encoded
        pending_len = 0  # their length mod 3
        after_window = False

        def static(data: bytes) -> None:
            nonlocal after_window
            if after_window:
                out.append(_CRLF)
                after_window = False
            if data:
                out.append(data)

        def flush() -> None:
            nonlocal after_window
            items: list[bytes | int] = []  # merged: const, slot, const, slot, …, const
            for item in pending:
                if isinstance(item, int):
                    if not items or isinstance(items[-1], int):
                        items.append(b"")
                    items.append(item)
                elif items and isinstance(items[-1], bytes):
                    items[-1] += item
                else:
                    items.append(item)
            if isinstance(items[-1], int):
                items.append(b"")
            if len(items) == 1:  # constants only (the very end): encode now
                assert isinstance(items[0], bytes)
                static(wrap(b2a_base64(items[0], newline=False)) + _CRLF)
            else:
                static(b"")
                out.append(tuple(items))
                after_window = True

        for i, part in enumerate(self.parts):
            if i:
                slot = self.slots[i - 1]
                pending.append(slot)
                pending_len = (pending_len + residues[slot]) % 3
            k = -pending_len % 3
            if len(part) < k:  # too short to realign: joins the window whole
                pending.append(part)
                pending_len = (pending_len + len(part)) % 3
                continue
            if k:
                pending.append(part[:k])
            if pending:
                flush()
            rest = part[k:]
            cut = len(rest) - len(rest) % 3
            key = (i, k, after_window)
            middle = self._middles.get(key)
            if middle is None:  # (a window's encoding has no CRLF: the middle starts one)
                lines = _b64_lines(rest[:cut])
                middle = self._middles[key] = _CRLF + lines if after_window else lines
            if middle:
                out.append(middle)
            after_window = False
            pending = [rest[cut:]] if cut < len(rest) else []
            pending_len = len(rest) - cut
        if pending:  # the last piece: the only one with "=" padding
            flush()
        static(b"")
        return out
