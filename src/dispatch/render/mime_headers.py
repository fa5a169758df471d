"""Header fields in SMTP wire form: validation, RFC 2047 encoded words, folding.

`message` joins the fields made here as plain strings, relying on these invariants:

- Every field is ASCII and ends in CRLF; a fold is CRLF + one space, so unfolding
  (RFC 5322 2.2.3) gives back the single space that was there.
- A line is at most 78 characters (MAX_HEADER_LINE) unless one word is longer: a
  display-name word of up to _MAX_WORD characters stays whole on a line of its own.
  The hard limit of 998 is checked by the caller on the whole block it assembles.
- No value written here holds a control character: `check_text` and CONTROL refuse
  them before anything is written (CR or LF would inject headers), and the encoders
  below assume it rather than check again.
- Encoded words are RFC 2047 'B' words of whole UTF-8 characters, at most 75
  characters each, so no decoder sees half a character.
- Text holding "=?" is always encoded, never sent as is: decoders take it for an
  encoded word even inside quotes.
"""

from __future__ import annotations

import email.policy
import re
from binascii import b2a_base64

from dispatch.render.slots import TOKEN

CRLF = "\r\n"
MAX_HEADER_LINE = 78  # RFC 5322 "SHOULD"; 998 is the hard limit
MAX_LINE = 998
_EW_MAX_BYTES = 45  # 60 base64 chars: "=?utf-8?b?" + 60 + "?=" = 72 ≤ 75 (RFC 2047)
_EW_OVERHEAD = len("=?utf-8?b??=")
_MAX_WORD = 900  # longest header word sent as is, on a line of its own if need be

# Characters no header value or greeting may hold: C0/C1 controls (CR and LF among
# them: header injection), DEL, and the Unicode line/paragraph separators.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_ATOM = re.compile(f"[{_ATEXT}]+")
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DOMAIN = re.compile(f"{_LABEL}(?:\\.{_LABEL})*")
_ADDR = re.compile(f"[{_ATEXT}]+(?:\\.[{_ATEXT}]+)*@{_LABEL}(?:\\.{_LABEL})*")
BASE_URL = re.compile(r"https?://[!#-;=?-\[\]-~]+")  # printable ASCII, not space " < > \
_MAX_ADDR = 254


# ---------------------------------------------------------------- validation


def check_text(value: str, what: str) -> None:
    """A str free of control characters, or TypeError / ValueError naming `what`."""
    if not isinstance(value, str):
        raise TypeError(f"{what}: expected str, got {type(value).__name__}")
    if CONTROL.search(value):
        raise ValueError(f"{what}: contains a line break or control character")


def check_addr(addr: str, what: str) -> str:
    """A plain ASCII addr-spec (IDN domains are converted to their A-labels): what
    goes between < > as is, since nothing SMTPUTF8 is sent."""
    if not isinstance(addr, str):
        raise TypeError(f"{what}: expected str, got {type(addr).__name__}")
    if len(addr) <= _MAX_ADDR and _ADDR.fullmatch(addr):
        return addr
    local, at, domain = addr.rpartition("@")
    if at and local.isascii() and not domain.isascii() and not CONTROL.search(domain):
        try:
            ascii_addr = f"{local}@{domain.encode('idna').decode('ascii')}"
        except UnicodeError:
            pass
        else:
            if len(ascii_addr) <= _MAX_ADDR and _ADDR.fullmatch(ascii_addr):
                return ascii_addr
    if len(addr) > _MAX_ADDR:
        raise ValueError(f"{what}: address longer than {_MAX_ADDR} characters")
    raise ValueError(f"{what}: not a plain address (user@domain, ASCII local part): {addr!r}")


def parse_from(from_addr: str) -> tuple[str, str]:
    """'Display Name <user@domain>' → (display name, checked addr-spec)."""
    check_text(from_addr, "from_addr")
    header = email.policy.default.header_factory("From", from_addr)
    addresses = header.addresses
    if len(addresses) != 1 or header.defects:
        raise ValueError(f"from_addr: expected one 'Name <user@domain>', got {from_addr!r}")
    return addresses[0].display_name, check_addr(addresses[0].addr_spec, "from_addr")


# ---------------------------------------------------------------- encoding and folding


def _encoded_words(text: str, first_bytes: int) -> list[str]:
    """RFC 2047 'B' encoded words of whole UTF-8 characters, ≤ 75 characters each;
    the first holds at most `first_bytes` bytes (what fits after 'Name: ')."""
    data = text.encode("utf-8")
    words = []
    start, size = 0, first_bytes
    while start < len(data):
        end = min(start + size, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # not inside a character
            end -= 1
        chunk = b2a_base64(data[start:end], newline=False).decode("ascii")
        words.append(f"=?utf-8?b?{chunk}?=")
        start, size = end, _EW_MAX_BYTES
    return words


def _first_ew_bytes(name: str) -> int:
    """Bytes the first encoded word may hold to fit on the 'Name: ' line."""
    room = MAX_HEADER_LINE - len(name) - 2 - _EW_OVERHEAD
    return max(4, min(_EW_MAX_BYTES, room // 4 * 3))


def fold(name: str, words: list[str], extra: int = 0) -> str:
    """'Name: w1 w2 …' + CRLF, folded before a word when the line would pass 78.

    Folds only between words, never inside one (a quoted string may hold spaces).
    `extra` is added to the measured width of each TOKEN marker a word
    holds: the marker is replaced by the token per reader, after folding."""
    out = [name, ":"]
    width = len(name) + 1
    for word in words:
        size = len(word) + (word.count(TOKEN) * extra if extra else 0)
        if width + 1 + size > MAX_HEADER_LINE and width > len(name) + 1:
            out.append("\r\n ")
            width = 1
        else:
            out.append(" ")
            width += 1
        out.append(word)
        width += size
    out.append(CRLF)
    return "".join(out)


def _quote(word: str) -> str:
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _phrase(name: str, header: str) -> list[str]:
    """A display name as header words: atoms and quoted strings when it is ASCII
    with single spaces, RFC 2047 encoded words otherwise (and whenever it holds '=?').
    A word too long for a line stays whole on a line of its own (up to _MAX_WORD)."""
    if name.isascii() and "=?" not in name:
        words = name.split(" ")
        if all(words):
            out = [w if _ATOM.fullmatch(w) else _quote(w) for w in words]
            if all(len(w) < _MAX_WORD for w in out):
                return out
        elif len(name) + len(header) + 4 <= MAX_HEADER_LINE:
            return [_quote(name)]  # odd spacing kept inside one quoted string
    return _encoded_words(name, _first_ew_bytes(header))


def mailbox_header(header: str, name: str, addr: str) -> str:
    """'To: name <addr>' folded. `name` must be free of control characters and
    `addr` a checked addr-spec (`check_addr`): neither is checked again here."""
    if not name:
        return f"{header}: {addr}{CRLF}"
    # Fast paths for the common short names (this runs once per reader): one atom,
    # or one encoded word.
    if name.isascii():
        if _ATOM.fullmatch(name) and "=?" not in name:
            line = f"{header}: {name} <{addr}>{CRLF}"
            if len(line) <= MAX_HEADER_LINE + 2:
                return line
    elif len(name) <= _EW_MAX_BYTES // 4:  # at most 4 bytes a character: one word
        word = b2a_base64(name.encode("utf-8"), newline=False).decode("ascii")
        line = f"{header}: =?utf-8?b?{word}?= <{addr}>{CRLF}"
        if len(line) <= MAX_HEADER_LINE + 2:
            return line
    return fold(header, [*_phrase(name, header), f"<{addr}>"])


def unstructured_header(header: str, value: str) -> str:
    """An unstructured header (Subject) folded, non-ASCII encoded. `value` must be
    free of control characters (`check_text`)."""
    if value.isascii() and "=?" not in value:
        if len(header) + 2 + len(value) <= MAX_HEADER_LINE:
            return f"{header}: {value}{CRLF}"
        words = value.split(" ")
        if all(words) and all(len(w) < _MAX_WORD for w in words):
            return fold(header, words)  # unfolding gives the single spaces back
    return fold(header, _encoded_words(value, _first_ew_bytes(header)))
