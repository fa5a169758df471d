"""Per-reader MIME messages, spliced from bytes prepared once per variant.

A variant's HTML and plain-text bodies carry the ASCII slot markers of `slots`
(TOKEN many times inside URLs; GREETING and INTERESTS, the reader's industries in
words, once or a few times each as text). `MessageTemplate.build`
does everything that is the same for all readers of the variant once: validates and
encodes the headers (RFC 2047, folded), normalizes both bodies to CRLF lines, and
base64-encodes every static stretch between slots. `MessageTemplate.render` then only
writes the To, Date and token-bearing headers and base64-encodes a few bytes around
each slot: no `email` package per reader.

The result is the SMTP wire form, ready for DATA: ASCII only, CRLF line ends
throughout (no bare CR or LF), every header line at most 78 characters where the
content allows (never more than 998), every body line at most 76. No line starts with
a dot, so dot-stuffing by the SMTP client has nothing to do.

Base64 splicing. base64(a + b) == base64(a) + base64(b) exactly when len(a) is a
multiple of 3. Cut the normalized body as P0 S0 P1 S1 … Pn (static parts P, slots S).
Walking it, keep the `pending` bytes not yet encoded (always fewer than 3 after a
static part). At each static part P with `pending` p (which ends with a slot's value):
take k = (-len(p)) % 3 head bytes of P so that p + P[:k] is a whole number of 3-byte
groups and encode it per reader (a "window"); encode the largest 3-aligned middle of
the rest of P once per variant; its 0–2 tail bytes start the next `pending`. A part
shorter than k joins the window whole. Every piece therefore encodes a multiple of
3 bytes, except the very last, which is the only one with "=" padding: the
concatenation equals the base64 of the whole body, cut into lines only at 4-character
quantum boundaries (so even line-by-line decoders are fine). Lines are at most 76
characters; the ones around slots are shorter, which RFC 2045 allows.

Layouts and memory. Which k applies to each part depends only on the values' lengths
modulo 3: the token has a fixed length, so a message has at most 81 layouts, by the
UTF-8 lengths mod 3 of the greeting and of the interests, each as text and as escaped
HTML (in practice one to a few: Chinese is 3 bytes a character), each compiled on
first use. Residues of a value no body holds are ignored. A static part's encoding
can't be made independent of the values before it (only whole 3-byte groups may be
encoded apart, and no padding may be added), but it depends on them only through
its k: each part has at most three encodings, built once and shared by every layout
(`_Body._middles`). So a variant holds at most three times its bodies' base64, plus
per layout only its windows and indexes, a few KiB (for a 31 KB HTML and 20 KB text
with ~60 slots: ~180 KiB with one layout, ~630 KiB with all 81).

Empty values. The bodies are cut into CRLF lines before the values go in, which is the
same as after, except where an empty value changes the lines: slots that end the body
right after a line break (the filled text then ends with its line break: no empty last
line), or stand between a bare CR and an LF (one line break then, not two). Bodies with
such runs (of GREETING and INTERESTS only: the token is never empty) are also prepared
without them, for the greeting and/or the interests empty: at most four versions, and
the layout key then also says which values are empty.

Per reader, then: the distinct token-only windows are encoded by one C call
(token.join of the bytes between the token occurrences, then cut by an itemgetter of
slices), greeting and interests windows one by one, and the message is one b"".join
over an itemgetter that orders header, static chunks and windows: a few dozen Python
operations per message, whatever the number of links.

Why base64, not 8bit: Chinese is 3 bytes a character in UTF-8, so quoted-printable
would triple it; 8bit would be the smallest and simplest to splice, but it needs
8BITMIME on every relay on the way and still lines under 998 bytes, while base64 is
7-bit safe everywhere and costs 4/3.

The envelope sender (MAIL FROM, `bounces+TOKEN@domain`) is not a header: callers get it
from `MessageTemplate.envelope_sender(token)` (the same as `Links.envelope_sender`).
"""

from __future__ import annotations

import email.policy
import html as html_lib
import re
import secrets
import time
from binascii import b2a_base64
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from operator import itemgetter

from dispatch.clock import LOCAL_TZ
from dispatch.render.slots import GREETING, INTERESTS, TOKEN, splice
from dispatch.track.links import Links
from dispatch.track.tokens import TOKEN_LENGTH, is_token

CRLF = "\r\n"
_CRLF = b"\r\n"
MAX_HEADER_LINE = 78  # RFC 5322 "SHOULD"; 998 is the hard limit
MAX_BODY_LINE = 76  # RFC 2045, base64
_B64_LINE_BYTES = MAX_BODY_LINE // 4 * 3  # 57 bytes encode to one full line
_EW_MAX_BYTES = 45  # 60 base64 chars: "=?utf-8?b?" + 60 + "?=" = 72 ≤ 75 (RFC 2047)
_EW_OVERHEAD = len("=?utf-8?b??=")

# Per-reader values, by index: the token, then each variable slot as text and as
# escaped HTML (a body's marker points at the form of its part).
_TOKEN, _GREETING_TEXT, _GREETING_HTML, _INTERESTS_TEXT, _INTERESTS_HTML = range(5)
_TOKEN_B = TOKEN.encode("ascii")
# marker → (value index in the text part, value index in the HTML part)
_MARKERS = {
    _TOKEN_B: (_TOKEN, _TOKEN),
    GREETING.encode("ascii"): (_GREETING_TEXT, _GREETING_HTML),
    INTERESTS.encode("ascii"): (_INTERESTS_TEXT, _INTERESTS_HTML),
}
_SLOT_SPLIT = re.compile(b"(" + b"|".join(map(re.escape, _MARKERS)) + b")")
_TOKEN_RESIDUE = TOKEN_LENGTH % 3  # the token's length is fixed: not part of layout keys
# Runs of variable slots where empty values change the lines, not just the text: at the
# very end right after a line break (a last line that is empty isn't one), and between a
# bare CR and an LF (which then make one line break, not two).
_EMPTIABLE = f"(?:{re.escape(GREETING)}|{re.escape(INTERESTS)})+"
_FRAGILE = re.compile(rf"(?<=[\r\n]){_EMPTIABLE}\Z|(?<=\r){_EMPTIABLE}(?=\n)")

# Characters no header value or greeting may hold: C0/C1 controls (CR and LF among
# them: header injection), DEL, and the Unicode line/paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_ATOM = re.compile(f"[{_ATEXT}]+")
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(f"{_LABEL}(?:\\.{_LABEL})*")
_ADDR = re.compile(f"[{_ATEXT}]+(?:\\.[{_ATEXT}]+)*@{_LABEL}(?:\\.{_LABEL})*")
_BASE_URL = re.compile(r"https?://[!#-;=?-\[\]-~]+")  # printable ASCII, not space " < > \
_MAX_ADDR = 254
_MAX_WORD = 900  # longest header word sent as is, on a line of its own if need be
_ADDR_TOO_LONG = f"address longer than {_MAX_ADDR} characters"

Window = tuple  # (const, slot, const, slot, …, const): bytes around value indexes


def _is_fragile(body: str) -> bool:
    """Whether the body has a run of slots where empty values change the lines."""
    maybe = "\r" in body or body.endswith((GREETING, INTERESTS))  # (the regex is slower)
    return maybe and _FRAGILE.search(body) is not None


def _b64_lines(data: bytes) -> bytes:
    """Base64 of data in full 76-character lines, each ending in CRLF (b'' for b'')."""
    if not data:
        return b""
    return _wrap(b2a_base64(data, newline=False)) + _CRLF


def _wrap(encoded: bytes) -> bytes:
    """Cut one encoded run into ≤ 76-character lines (at quantum boundaries)."""
    step = MAX_BODY_LINE
    return _CRLF.join([encoded[i : i + step] for i in range(0, len(encoded), step)])


class _Body:
    """One text part (plain or HTML) of a variant, cut at its slots."""

    __slots__ = ("parts", "slots", "_middles")

    def __init__(self, text: str, form: int) -> None:
        """`form` 0 for the plain-text part, 1 for the HTML part (escaped values)."""
        # MIME canonical form: CRLF line ends, exactly as EmailMessage.set_content
        # makes it (bytes.splitlines, joined and ended by CRLF).
        data = _CRLF.join(text.encode("utf-8").splitlines()) + _CRLF
        pieces = _SLOT_SPLIT.split(data)
        self.parts: tuple[bytes, ...] = tuple(pieces[0::2])
        self.slots: tuple[int, ...] = tuple(_MARKERS[s][form] for s in pieces[1::2])
        # (part index, head bytes taken by the window before it, whether one precedes)
        # → the base64 lines of the part's aligned middle: at most 3 per part, the same
        # objects in every layout.
        self._middles: dict[tuple[int, int, bool], bytes] = {}

    def values(self) -> frozenset[int]:
        return frozenset(self.slots)

    def segments(self, residues: tuple[int, ...]) -> list[bytes | Window]:
        """The body's base64 as static chunks (bytes, ending in CRLF) and windows to
        encode per reader, when value i has a length ≡ residues[i] (mod 3). A window's
        encoding is written without CRLF: the static chunk after it starts with one."""
        out: list[bytes | Window] = []
        pending: list = []  # constants (bytes) and value indexes not yet encoded
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
            items: list = []  # merged: const, slot, const, slot, …, const
            for item in pending:
                if isinstance(item, int):
                    if not items or isinstance(items[-1], int):
                        items.append(b"")
                    items.append(item)
                elif items and not isinstance(items[-1], int):
                    items[-1] += item
                else:
                    items.append(item)
            if isinstance(items[-1], int):
                items.append(b"")
            if len(items) == 1:  # constants only (the very end): encode now
                static(_wrap(b2a_base64(items[0], newline=False)) + _CRLF)
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


class _Layout:
    """A whole message for one combination of value lengths (mod 3).

    Per reader: table = [header, *statics, *encoded windows] and the message is
    b"".join(pick(table)), `pick` an itemgetter holding the order. Identical windows
    (the same bytes around the token in many links) are encoded once. Windows that hold
    only the token and fit one line are all encoded by one C call: their concatenation
    is token.join(seps), each a multiple of 3 bytes long, so its base64 is the
    concatenation of theirs, cut apart again by `cut` (an itemgetter of slices).

    Static chunks are kept as the bodies made them, not joined into longer runs: the
    big ones (the middles of static stretches) are then the same objects in every layout
    of the template, and the bulk of the message exists at most once per alignment of
    each stretch (three), however many layouts there are."""

    __slots__ = ("statics", "seps", "cut", "windows", "pick")

    def __init__(self, segments: list[bytes | Window]) -> None:
        statics: dict[bytes, int] = {}
        windows: dict[Window, None] = {}
        order = [seg for seg in segments if seg]
        for seg in order:
            if isinstance(seg, bytes):
                statics.setdefault(seg, len(statics))
            else:
                windows[seg] = None

        def token_only(w: Window) -> bool:
            slots = w[1::2]
            size = sum(map(len, w[0::2])) + len(slots) * TOKEN_LENGTH
            return all(x == _TOKEN for x in slots) and size <= _B64_LINE_BYTES

        joined = [w for w in windows if token_only(w)]
        others = [w for w in windows if not token_only(w)]
        seps: list[bytes] = [b""]
        slices = []
        offset = 0
        for w in joined:
            seps[-1] += w[0]
            seps.extend(w[2::2])
            size = (sum(map(len, w[0::2])) + len(w[1::2]) * TOKEN_LENGTH) // 3 * 4
            slices.append(slice(offset, offset + size))
            offset += size
        self.seps = seps if joined else None
        # itemgetter of one item returns the item, of several a tuple: keep a tuple
        self.cut = itemgetter(*slices) if len(slices) > 1 else lambda data: (data,)
        self.statics = list(statics)
        self.windows = others
        index = {w: 1 + len(statics) + i for i, w in enumerate(joined + others)}
        self.pick = itemgetter(
            0, *(1 + statics[seg] if isinstance(seg, bytes) else index[seg] for seg in order)
        )

    def join(self, header: bytes, values: tuple[bytes, ...]) -> bytes:
        if self.seps is None:
            encoded: list[bytes] = []
        else:
            encoded = list(self.cut(b2a_base64(values[_TOKEN].join(self.seps), newline=False)))
        for w in self.windows:
            if len(w) == 3:
                data = w[0] + values[w[1]] + w[2]
            else:
                data = b"".join(values[x] if isinstance(x, int) else x for x in w)
            enc = b2a_base64(data, newline=False)
            encoded.append(enc if len(enc) <= MAX_BODY_LINE else _wrap(enc))
        return b"".join(self.pick([header, *self.statics, *encoded]))


# ---------------------------------------------------------------- headers


def _check_text(value: str, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what}: expected str, got {type(value).__name__}")
    if _CONTROL.search(value):
        raise ValueError(f"{what}: contains a line break or control character")


def _encoded_words(text: str, first_bytes: int) -> list[str]:
    """RFC 2047 'B' encoded words of whole UTF-8 characters, ≤ 75 characters each."""
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


def _fold(name: str, words: list[str], extra: int = 0) -> str:
    """'Name: w1 w2 …' + CRLF, folded before a word when the line would pass 78.

    `extra` is added to the measured width of each TOKEN marker a word holds (the
    marker is replaced by the token per reader, after folding)."""
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
    with single spaces, RFC 2047 encoded words otherwise (and whenever it holds '=?',
    which decoders take for an encoded word even inside quotes). A word too long for
    a line stays whole on a line of its own (up to 998 characters). Control
    characters must have been refused already."""
    if name.isascii() and "=?" not in name:
        words = name.split(" ")
        if all(words):
            out = [w if _ATOM.fullmatch(w) else _quote(w) for w in words]
            if all(len(w) < _MAX_WORD for w in out):
                return out
        elif len(name) + len(header) + 4 <= MAX_HEADER_LINE:
            return [_quote(name)]  # odd spacing kept inside one quoted string
    return _encoded_words(name, _first_ew_bytes(header))


def _mailbox_header(header: str, name: str, addr: str) -> str:
    """'To: name <addr>' folded; the name must be free of control characters."""
    if not name:
        return f"{header}: {addr}{CRLF}"
    # Fast paths for the common short names: one atom, or one encoded word.
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
    return _fold(header, [*_phrase(name, header), f"<{addr}>"])


def _unstructured_header(header: str, value: str) -> str:
    """An unstructured header (Subject, List-Id text) folded, non-ASCII encoded."""
    if value.isascii() and "=?" not in value:
        if len(header) + 2 + len(value) <= MAX_HEADER_LINE:
            return f"{header}: {value}{CRLF}"
        words = value.split(" ")
        if all(words) and all(len(w) < _MAX_WORD for w in words):
            return _fold(header, words)  # unfolding gives the single spaces back
    return _fold(header, _encoded_words(value, _first_ew_bytes(header)))


def _check_addr(addr: str, what: str) -> str:
    """A plain ASCII addr-spec (IDN domains are converted to their A-labels)."""
    if not isinstance(addr, str):
        raise TypeError(f"{what}: expected str, got {type(addr).__name__}")
    if len(addr) <= _MAX_ADDR and _ADDR.fullmatch(addr):
        return addr
    local, at, domain = addr.rpartition("@")
    if at and local.isascii() and not domain.isascii() and not _CONTROL.search(domain):
        try:
            ascii_addr = f"{local}@{domain.encode('idna').decode('ascii')}"
        except UnicodeError:
            pass
        else:
            if len(ascii_addr) <= _MAX_ADDR and _ADDR.fullmatch(ascii_addr):
                return ascii_addr
    if len(addr) > _MAX_ADDR:
        raise ValueError(f"{what}: {_ADDR_TOO_LONG}")
    raise ValueError(f"{what}: not a plain address (user@domain, ASCII local part): {addr!r}")


def _parse_from(from_addr: str) -> tuple[str, str]:
    _check_text(from_addr, "from_addr")
    header = email.policy.default.header_factory("From", from_addr)
    addresses = header.addresses
    if len(addresses) != 1 or header.defects:
        raise ValueError(f"from_addr: expected one 'Name <user@domain>', got {from_addr!r}")
    return addresses[0].display_name, _check_addr(addresses[0].addr_spec, "from_addr")


def _list_id_header(list_id: str) -> str:
    """'List-Id: description <id>' (RFC 2919); list_id is 'id' or 'description <id>'."""
    _check_text(list_id, "list_id")
    text, _, ident = list_id.strip().rpartition(" ")
    ident = ident.removeprefix("<").removesuffix(">")
    if not _DOMAIN.fullmatch(ident) or "." not in ident:
        raise ValueError(f"list_id: expected 'name.domain' or 'text <name.domain>': {list_id!r}")
    text = text.strip()
    if not text:
        return f"List-Id: <{ident}>{CRLF}"
    return _fold("List-Id", [*_phrase(text, "List-Id"), f"<{ident}>"])


def _local_date(date: datetime | None) -> datetime:
    """A datetime in Asia/Shanghai; naive means UTC (as the database stores it)."""
    if date is None:
        return datetime.now(LOCAL_TZ)
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    return date.astimezone(LOCAL_TZ)


# ---------------------------------------------------------------- the template


@dataclass(frozen=True)
class _Variant:
    subject: str
    from_addr: str
    html: str
    text: str
    reply_domain: str
    base_url: str
    list_id: str | None


class MessageTemplate:
    """One variant's message, ready to be spliced per reader. Build once, render many.

    Thread-safe: the only mutable state is caches whose races are harmless.
    """

    def __init__(
        self,
        variant: _Variant,
        head: str,
        tail_parts: list[str],
        text: str,
        html: str,
        boundary: str,
    ) -> None:
        self._variant = variant
        self._head = head  # headers before To
        self._tail_parts = tail_parts  # the rest up to the text body, cut at the token
        self._text = _Body(text, 0)
        self._html = _Body(html, 1)
        # The value indexes the bodies hold (a layout ignores the residues of others).
        self._used = self._text.values() | self._html.values()
        # Bodies with slot runs that empty values turn into a line-break change
        # (_FRAGILE) are also prepared without those runs: keyed by (greeting empty,
        # interests empty), the only thing that decides which runs are all empty.
        self._raw = (text, html)
        self._fragile = _is_fragile(text) or _is_fragile(html)
        self._bodies: dict[tuple[bool, ...], tuple[_Body, _Body]] = {
            (): (self._text, self._html),
            (False, False): (self._text, self._html),
        }
        self._html_start = (
            f"--{boundary}\r\n"
            'Content-Type: text/html; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode("ascii")
        self._end = f"--{boundary}--\r\n".encode("ascii")
        self.boundary = boundary
        # Keyed by the residues (mod 3) of the variable values' lengths, as
        # (greeting text, greeting HTML, interests text, interests HTML): at most 81 keys
        # (and, for fragile bodies only, whether the greeting and the interests are
        # empty: at most 100).
        self._layouts: dict[tuple[int, ...], _Layout] = {}
        self._date_cache: tuple[object, str] = (None, "")  # one tuple: swapped atomically

    def _layout(self, key: tuple[int, ...]) -> _Layout:
        layout = self._layouts.get(key)
        if layout is None:
            # Residues of values no body holds don't matter: one layout for all of them.
            residues = tuple(r if i in self._used else 0 for i, r in enumerate(key[:4], 1))
            canon = residues + key[4:]
            layout = self._layouts.get(canon)
            if layout is None:
                text, html = self._bodies_for(key[4:])
                residues = (_TOKEN_RESIDUE, *residues)  # indexed by value
                segments = [
                    *text.segments(residues),
                    self._html_start,
                    *html.segments(residues),
                    self._end,
                ]
                layout = self._layouts[canon] = _Layout(segments)
            self._layouts[key] = layout
        return layout

    def _bodies_for(self, empty: tuple[bool, ...]) -> tuple[_Body, _Body]:
        """The bodies when the greeting / the interests are empty (`empty`, for fragile
        bodies only): without the fragile runs that hold nothing else."""
        bodies = self._bodies.get(empty)
        if bodies is None:
            filled = [m for m, e in zip((GREETING, INTERESTS), empty, strict=True) if not e]

            def drop(run: re.Match) -> str:  # a run of empty values only: drop it
                return run[0] if any(m in run[0] for m in filled) else ""

            text, html = (_FRAGILE.sub(drop, body) for body in self._raw)
            bodies = self._bodies[empty] = (_Body(text, 0), _Body(html, 1))
        return bodies

    @classmethod
    def build(
        cls,
        *,
        subject: str,
        from_addr: str,
        html: str,
        text: str,
        reply_domain: str,
        base_url: str,
        list_id: str | None = None,
    ) -> MessageTemplate:
        """Validate and prepare everything the readers of one variant share.

        `from_addr` is 'Display Name <user@domain>'; `html` and `text` are the
        variant's bodies with `slots.TOKEN` / `slots.GREETING` / `slots.INTERESTS`
        markers (HTML-escaped values go into `html`, raw ones into `text`); `list_id` is
        'bulletin.example.gov.cn' or '许昌竞争情报快递 <bulletin.example.gov.cn>'.
        Raises ValueError on anything that would make a bad or injectable header."""
        _check_text(subject, "subject")
        if not subject.strip():
            raise ValueError("subject: empty")
        from_name, from_email = _parse_from(from_addr)
        _check_text(reply_domain, "reply_domain")
        if not _DOMAIN.fullmatch(reply_domain):
            raise ValueError(f"reply_domain: not a domain name: {reply_domain!r}")
        _check_text(base_url, "base_url")
        if not _BASE_URL.fullmatch(base_url):
            raise ValueError(f"base_url: expected an ASCII http(s) URL: {base_url!r}")
        for body, what in ((html, "html"), (text, "text")):
            if not isinstance(body, str):
                raise TypeError(f"{what}: expected str, got {type(body).__name__}")

        variant = _Variant(subject, from_addr, html, text, reply_domain, base_url, list_id)
        links = Links(base_url, reply_domain, TOKEN)
        boundary = "=_dsp_" + secrets.token_hex(16)  # '_' is not in base64's alphabet
        head = _mailbox_header("From", from_name, from_email) + _unstructured_header(
            "Subject", subject
        )
        extra = TOKEN_LENGTH - len(TOKEN)
        tail = "".join(
            [
                f"Message-ID: {links.message_id}{CRLF}",  # never folded
                f"Reply-To: {links.reply_to}{CRLF}",
                _list_id_header(list_id) if list_id is not None else "",
                _fold(
                    "List-Unsubscribe",
                    [f"<{links.unsubscribe_mailto}>,", f"<{links.unsubscribe()}>"],
                    extra,
                ),
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
                "Auto-Submitted: auto-generated\r\n",
                "X-Auto-Response-Suppress: OOF, AutoReply\r\n",
                "MIME-Version: 1.0\r\n",
                f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n',
                "\r\n",
                f"--{boundary}\r\n",
                'Content-Type: text/plain; charset="utf-8"\r\n',
                "Content-Transfer-Encoding: base64\r\n",
                "\r\n",
            ]
        )
        if any(len(line) > 998 for line in (head + tail).split(CRLF)):
            raise ValueError("a header line would exceed 998 characters")
        return cls(variant, head, tail.split(TOKEN), text, html, boundary)

    def envelope_sender(self, token: str) -> str:
        """MAIL FROM of a delivery (not a header): bounces+TOKEN@reply_domain."""
        if not is_token(token):
            raise ValueError(f"token: not a delivery token: {token!r}")
        return Links(self._variant.base_url, self._variant.reply_domain, token).envelope_sender

    def _date(self, date: datetime | None) -> str:
        """The Date header's value; the last one is cached (readers of a batch share it)."""
        key = int(time.time()) if date is None else date
        cached_key, text = self._date_cache
        if key != cached_key or type(key) is not type(cached_key):
            when = datetime.fromtimestamp(key, LOCAL_TZ) if date is None else _local_date(date)
            text = format_datetime(when)
            self._date_cache = (key, text)
        return text

    def render(
        self,
        *,
        to_name: str,
        to_addr: str,
        token: str,
        greeting: str,
        interests: str = "",
        date: datetime | None = None,
    ) -> bytes:
        """The message of one reader, as bytes for SMTP DATA (CRLF, 7-bit).

        `greeting` (e.g. '尊敬的张三：') and `interests` (the reader's industries in
        words, e.g. '新材料、装备制造') are plain text: HTML-escaped here for the HTML
        part and used as is in the plain-text part; callers never escape.
        `date` defaults to now; a naive datetime is UTC. Raises ValueError for a
        token that isn't one, a name, greeting or interests with control characters
        (CR/LF), or an address that isn't plain."""
        if not is_token(token):
            raise ValueError(f"token: not a delivery token: {token!r}")
        if _CONTROL.search(to_name):
            raise ValueError(f"to_name: contains a line break or control character: {to_name!r}")
        if _CONTROL.search(greeting):
            raise ValueError(f"greeting: contains a line break or control character: {greeting!r}")
        if _CONTROL.search(interests):
            raise ValueError(
                f"interests: contains a line break or control character: {interests!r}"
            )
        if len(to_addr) > _MAX_ADDR or not _ADDR.fullmatch(to_addr):
            to_addr = _check_addr(to_addr, "to_addr")
        header = "".join(
            [
                self._head,
                _mailbox_header("To", to_name, to_addr),
                "Date: ",
                self._date(date),
                CRLF,
                token.join(self._tail_parts),
            ]
        )
        g_text = greeting.encode("utf-8")
        g_html = html_lib.escape(greeting).encode("utf-8")
        i_text = interests.encode("utf-8")
        i_html = html_lib.escape(interests).encode("utf-8")
        key = (len(g_text) % 3, len(g_html) % 3, len(i_text) % 3, len(i_html) % 3)
        if self._fragile:
            key += (not greeting, not interests)
        layout = self._layout(key)
        return layout.join(
            header.encode("ascii"), (token.encode("ascii"), g_text, g_html, i_text, i_html)
        )

    def render_slow(
        self,
        *,
        to_name: str,
        to_addr: str,
        token: str,
        greeting: str,
        interests: str = "",
        date: datetime | None = None,
    ) -> bytes:
        """The same message built the straightforward way (reference, baseline)."""
        v = self._variant
        return build_slow(
            subject=v.subject,
            from_addr=v.from_addr,
            html=v.html,
            text=v.text,
            reply_domain=v.reply_domain,
            base_url=v.base_url,
            list_id=v.list_id,
            to_name=to_name,
            to_addr=to_addr,
            token=token,
            greeting=greeting,
            interests=interests,
            date=date,
        )


def build_slow(
    *,
    subject: str,
    from_addr: str,
    html: str,
    text: str,
    reply_domain: str,
    base_url: str,
    list_id: str | None = None,
    to_name: str,
    to_addr: str,
    token: str,
    greeting: str,
    interests: str = "",
    date: datetime | None = None,
) -> bytes:
    """One reader's message through email.message.EmailMessage (policy SMTP).

    The reference for tests and the naive baseline for benchmarks: two orders of
    magnitude slower than `MessageTemplate.render`. Known CPython 3.11 flaws that
    `render` doesn't share: a display name with commas that needs folding loses its
    quotes (gh-80222), so a long 'Smith, John …' turns into several addresses; a name
    that looks like an encoded word ('=?utf-8?b?…?=') is sent as is and decoded.
    The slots are filled in one pass (a value holding a marker stays as it is)."""
    links = Links(base_url, reply_domain, token)
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = from_addr
    msg["To"] = Address(display_name=to_name, addr_spec=to_addr)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(_local_date(date))
    msg["Message-ID"] = links.message_id
    msg["Reply-To"] = links.reply_to
    if list_id is not None:
        msg["List-Id"] = list_id
    msg["List-Unsubscribe"] = f"<{links.unsubscribe_mailto}>, <{links.unsubscribe()}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    as_text = {TOKEN: token, GREETING: greeting, INTERESTS: interests}
    as_html = {
        TOKEN: token,
        GREETING: html_lib.escape(greeting),
        INTERESTS: html_lib.escape(interests),
    }
    msg.set_content(splice(text).fill(as_text), cte="base64")
    msg.add_alternative(splice(html).fill(as_html), subtype="html", cte="base64")
    return msg.as_bytes()
