"""Header values of received mail as text: 8-bit bytes, RFC 2047 words, Chinese charsets.

Messages are parsed with the compat32 policy (what flufl.bounce expects, and the one that
never raises on a malformed header); its values are the raw header text, bytes above
ASCII kept as surrogates. Everything here decodes those values itself, forgivingly: a
charset Python doesn't know or bytes that don't fit become U+FFFD, never an exception.

gb2312 and gbk labels are read as gb18030, the superset: Chinese clients label text
gb2312 that holds characters only gbk/gb18030 have (人名 like 镕, 堃), and Python's
gb2312 codec would turn them into U+FFFD.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email.utils
import quopri
import re
from email.message import Message

CHARSET_ALIASES = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
    "euc-cn": "gb18030", "x-euc-cn": "gb18030", "gb_2312-80": "gb18030", "csgb2312": "gb18030",
    "chinese": "gb18030", "windows-936": "gb18030",
    "utf8": "utf-8", "unicode-1-1-utf-8": "utf-8",
}

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"\s*")
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def codec(charset: str | None, default: str = "utf-8") -> str:
    """The Python codec to decode `charset` with: its gb18030 alias, or `default` when
    the name is missing or unknown."""
    name = (charset or "").strip().strip('"').lower()
    name = name.split("*", 1)[0]  # RFC 2231 language: utf-8*zh
    name = CHARSET_ALIASES.get(name, name)
    if not name:
        return default
    try:
        return codecs.lookup(name).name
    except LookupError:
        return default


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Bytes of a declared (or no) charset as text; undeclared: UTF-8, else GB18030."""
    if charset:
        return data.decode(codec(charset), "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030", "replace")


def _raw_text(value: object) -> str:
    """A stored header value as text: its 8-bit bytes (surrogates) decoded."""
    text = str(value)
    try:
        data = text.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return text  # already text (not from bytes)
    return decode_bytes(data) if any(b > 0x7F for b in data) else text


def _word_bytes(encoding: str, payload: str) -> bytes:
    if encoding in "bB":
        try:
            return base64.b64decode(payload + "=" * (-len(payload) % 4))
        except (binascii.Error, ValueError):
            return payload.encode("ascii", "replace")
    return quopri.decodestring(payload.replace("_", " ").encode("ascii", "replace"), header=True)


def decode_words(text: str) -> str:
    """RFC 2047 encoded words decoded; adjacent words of one charset decoded together
    (encoders split multi-byte characters across words), the space between them dropped."""
    out: list[str] = []
    pos = 0
    pending: list[bytes] = []
    pending_charset = ""

    def flush() -> None:
        if pending:
            out.append(b"".join(pending).decode(codec(pending_charset), "replace"))
            pending.clear()

    for match in _ENCODED_WORD.finditer(text):
        between = text[pos:match.start()]
        charset, encoding, payload = match.groups()
        adjacent = pos > 0 and _BETWEEN_WORDS.fullmatch(between) is not None and bool(pending)
        if not adjacent or codec(charset) != codec(pending_charset):
            flush()
            if not adjacent or pos == 0:
                out.append(between)
        pending.append(_word_bytes(encoding, payload))
        pending_charset = charset
        pos = match.end()
    flush()
    out.append(text[pos:])
    return "".join(out)


def header_text(value: object) -> str:
    """A header's value as one line of text."""
    if value is None:
        return ""
    text = _FOLD.sub("", _raw_text(value))
    return " ".join(decode_words(text).split())


def raw_values(message: Message, name: str) -> list[str]:
    """Every value of the header `name`, as received (unfolded, 8-bit bytes decoded)."""
    wanted = name.lower()
    return [_FOLD.sub("", _raw_text(v)) for k, v in message.raw_items() if k.lower() == wanted]


def first_text(message: Message, name: str) -> str:
    """The first value of `name`, decoded; '' when absent."""
    values = raw_values(message, name)
    return header_text(values[0]) if values else ""


def address_of(message: Message, name: str) -> tuple[str, str]:
    """(display name, address lower-cased) of the first address in `name`; ('', '') if none."""
    values = raw_values(message, name)
    if not values:
        return "", ""
    pairs = email.utils.getaddresses([values[0]])
    for display, address in pairs:
        if "@" in address:
            return header_text(display), address.strip().lower()
    return (header_text(pairs[0][0]), "") if pairs else ("", "")
