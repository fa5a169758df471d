"""The character rule for text we store: what ends up in a mail header, a title, a web
page or a terminal must be plain visible text.

Applied at the door (issue ingest, reader import, the reader commands), never at send
time, so a stored value can always be sent:

- line breaks and tabs (CR, LF, VT, FF, NEL, U+2028, U+2029, TAB): in issue text they
  become one space (a title wrapped in Word or in YAML is still one title); in a reader's
  cell they are refused, since they usually join two values in one cell;
- invisible characters that copy-and-paste leaves behind (zero-width space and joiners,
  word joiner, BOM, soft hyphen) are removed;
- every other control character — C0 and C1 controls such as NUL and ESC, DEL, the bidi
  overrides and isolates that can make text read backwards, other format characters, and
  lone surrogates — is refused, naming the character.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

# Carry no visible text; removed wherever they are.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
# Whitespace that breaks or tabs a line.
BREAKS = "\r\n\x0b\x0c\x85\u2028\u2029"
TAB = "\t"
# Reorder the text around them: "abc\u202edcba" displays as "abcabcd".
BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

_BREAK_RUN = re.compile(f"(?:[ ]*[{BREAKS}{TAB}])+[ ]*")
_DROP = str.maketrans("", "", INVISIBLE)
# Every Cc, Cf and Cs code point (Unicode 14) and U+2028/U+2029: text with none of them
# needs no look at each character.
_SUSPECT = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\udfff\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]"
)

_NAMES = {"\x00": "NUL", "\x1b": "ESC", "\x7f": "DEL", "\x08": "退格"}

Breaks = Literal["space", "refuse"]


class BadText(ValueError):
    """Text holding a character that may not be stored; the message is for the user."""

    def __init__(self, message: str, char: str):
        super().__init__(message)
        self.message = message
        self.char = char


def describe(ch: str) -> str:
    """Why ``ch`` is refused, for the user."""
    code = f"U+{ord(ch):04X}"
    if ch in BIDI:
        return f"含有文字方向控制字符（{code}），它会让文字显示的顺序与实际不同，请删除"
    name = _NAMES.get(ch)
    return f"含有不可见的控制字符（{code}{'，' + name if name else ''}），请删除"


def clean(text: str, *, breaks: Breaks = "space") -> str:
    """``text`` made fit to store: see the module docstring. Ends are stripped of spaces.

    Raises BadText for a character that is refused (and, with ``breaks="refuse"``, for a
    line break or tab).
    """
    # Every character the rule touches is non-printable: isprintable() settles most texts
    # at C speed (a list import asks for each of its cells).
    if text.isprintable() or not _SUSPECT.search(text):
        return text.strip(" ")
    for ch in text:
        if ch in BREAKS or ch == TAB:
            if breaks == "refuse":
                if ch == TAB:
                    raise BadText("含有制表符（Tab）", ch)
                raise BadText("含有换行符（请删除单元格内的换行）", ch)
            continue
        if ch in INVISIBLE:
            continue
        if ch in BIDI or unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
            raise BadText(describe(ch), ch)
    return _BREAK_RUN.sub(" ", text.translate(_DROP)).strip(" ")


def problem(text: str, *, breaks: Breaks = "space") -> str | None:
    """Why ``text`` can't be stored, or None."""
    try:
        clean(text, breaks=breaks)
    except BadText as e:
        return e.message
    return None
