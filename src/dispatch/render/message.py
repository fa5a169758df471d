"""Per-reader MIME messages, spliced from bytes prepared once per variant.

A variant's HTML and plain-text bodies carry the ASCII slot markers of `slots`
(TOKEN many times inside URLs; GREETING and INTERESTS, the reader's industries in
words, once or a few times each as text). `MessageTemplate.build` does everything
that is the same for all readers of the variant once: validates and encodes the
headers (`mime_headers`), and cuts both bodies at their slots (`mime_body`).
`MessageTemplate.render` then only writes the To, Date and token-bearing headers and
joins the bodies' prepared base64 with a few bytes encoded around each slot
(`mime_layout`): no `email` package per reader.

The result is the SMTP wire form, ready for DATA: ASCII only, CRLF line ends
throughout (no bare CR or LF), every header line at most 78 characters where the
content allows (never more than 998), every body line at most 76. No line starts with
a dot (header lines start with a name or a space, body lines with base64 or "--"), so
dot-stuffing by the SMTP client has nothing to do.

Layouts. How a body's base64 is cut around its slots depends only on the values'
UTF-8 lengths mod 3 (see `mime_body`). The token has a fixed length, so a message has
at most 81 layouts, by the residues of the greeting and of the interests, each as
text and as escaped HTML (in practice one to a few: Chinese is 3 bytes a character),
each built on first use. Residues of a value no body holds are ignored. Bodies whose
lines change when the greeting or the interests are empty (`mime_body.is_fragile`)
are also prepared without those runs, and their layout key then also says which
values are empty (at most four versions of the bodies). Memory: for a 31 KB HTML and
20 KB text with ~60 slots, ~180 KiB with one layout, ~630 KiB with all 81.

Why base64, not 8bit: Chinese is 3 bytes a character in UTF-8, so quoted-printable
would triple it; 8bit would be the smallest and simplest to splice, but it needs
8BITMIME on every relay on the way and still lines under 998 bytes, while base64 is
7-bit safe everywhere and costs 4/3.

The envelope sender (MAIL FROM, `bounces+TOKEN@domain`) is not a header: callers take
it from `track.links.Links.envelope_sender`.
"""

from __future__ import annotations

import html as html_lib
import secrets
import time
from datetime import datetime
from email.utils import format_datetime
from typing import cast

from dispatch.clock import LOCAL_TZ, to_local
from dispatch.render.mime_body import HTML, TEXT, Body, is_fragile, without_empty_runs
from dispatch.render.mime_headers import (
    BASE_URL,
    CONTROL,
    CRLF,
    DOMAIN,
    MAX_LINE,
    check_addr,
    check_text,
    fold,
    mailbox_header,
    parse_from,
    unstructured_header,
)
from dispatch.render.mime_layout import Layout
from dispatch.render.slots import TOKEN
from dispatch.track.links import Links
from dispatch.track.tokens import TOKEN_LENGTH, is_token

_TOKEN_RESIDUE = TOKEN_LENGTH % 3  # fixed: not part of layout keys


class MessageTemplate:
    """One variant's message, ready to be spliced per reader. Build once, render many.

    Thread-safe: the only mutable state is caches whose races are harmless (two
    threads may build the same layout; either result is right).
    """

    def __init__(
        self, head: str, tail_parts: list[str], text: str, html: str, boundary: str
    ) -> None:
        self._head = head  # headers before To
        self._tail_parts = tail_parts  # the rest up to the text body, cut at the token
        self._text = Body(text, TEXT)
        self._html = Body(html, HTML)
        # The value indexes the bodies hold (a layout ignores the residues of others).
        self._used = self._text.values() | self._html.values()
        # Fragile bodies are also prepared without their empty runs: keyed by
        # (greeting empty, interests empty), the only thing that decides which runs
        # are all empty; () for bodies that aren't fragile.
        self._raw = (text, html)
        self._fragile = is_fragile(text) or is_fragile(html)
        self._bodies: dict[tuple[bool, ...], tuple[Body, Body]] = {
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
        self._layouts: dict[tuple[int, ...], Layout] = {}
        self._date_cache: tuple[object, str] = (None, "")  # one tuple: swapped atomically

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
    ) -> MessageTemplate:
        """Validate and prepare everything the readers of one variant share.

        `from_addr` is 'Display Name <user@domain>'; `html` and `text` are the
        variant's bodies with `slots.TOKEN` / `slots.GREETING` / `slots.INTERESTS`
        markers (HTML-escaped values go into `html`, raw ones into `text`).
        Raises ValueError on anything that would make a bad or injectable header."""
        check_text(subject, "subject")
        if not subject.strip():
            raise ValueError("subject: empty")
        from_name, from_email = parse_from(from_addr)
        check_text(reply_domain, "reply_domain")
        if not DOMAIN.fullmatch(reply_domain):
            raise ValueError(f"reply_domain: not a domain name: {reply_domain!r}")
        check_text(base_url, "base_url")
        if not BASE_URL.fullmatch(base_url):
            raise ValueError(f"base_url: expected an ASCII http(s) URL: {base_url!r}")
        for body, what in ((html, "html"), (text, "text")):
            if not isinstance(body, str):
                raise TypeError(f"{what}: expected str, got {type(body).__name__}")

        links = Links(base_url, reply_domain, TOKEN)
        boundary = "=_dsp_" + secrets.token_hex(16)  # '_' is not in base64's alphabet
        head = mailbox_header("From", from_name, from_email) + unstructured_header(
            "Subject", subject
        )
        extra = TOKEN_LENGTH - len(TOKEN)
        # The token is ASCII without spaces, and the lines that hold it are measured
        # with its real length (Message-ID and Reply-To are short enough never to fold).
        tail = "".join(
            [
                f"Message-ID: {links.message_id}{CRLF}",
                f"Reply-To: {links.reply_to}{CRLF}",
                fold(
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
        if any(len(line) > MAX_LINE for line in (head + tail).split(CRLF)):
            raise ValueError(f"a header line would exceed {MAX_LINE} characters")
        return cls(head, tail.split(TOKEN), text, html, boundary)

    def _layout(self, key: tuple[int, ...]) -> Layout:
        layout = self._layouts.get(key)
        if layout is None:
            # Residues of values no body holds don't matter: one layout for all of them.
            residues = tuple(r if i in self._used else 0 for i, r in enumerate(key[:4], 1))
            canon = residues + key[4:]
            layout = self._layouts.get(canon)
            if layout is None:
                # render() puts only the two emptiness flags (bools) after the residues.
                text, html = self._bodies_for(cast("tuple[bool, ...]", key[4:]))
                by_value = (_TOKEN_RESIDUE, *residues)  # indexed as mime_body's values
                segments = [
                    *text.segments(by_value),
                    self._html_start,
                    *html.segments(by_value),
                    self._end,
                ]
                layout = self._layouts[canon] = Layout(segments)
            self._layouts[key] = layout
        return layout

    def _bodies_for(self, empty: tuple[bool, ...]) -> tuple[Body, Body]:
        """The bodies when the greeting / the interests are empty (`empty`, for fragile
        bodies only)."""
        bodies = self._bodies.get(empty)
        if bodies is None:
            text, html = (without_empty_runs(body, *empty) for body in self._raw)
            bodies = self._bodies[empty] = (Body(text, TEXT), Body(html, HTML))
        return bodies

    def _date(self, date: datetime | None) -> str:
        """The Date header's value; the last one is cached (readers of a batch share it)."""
        key = int(time.time()) if date is None else date
        cached_key, text = self._date_cache
        if key != cached_key or type(key) is not type(cached_key):
            if isinstance(key, int):  # now
                when = datetime.fromtimestamp(key, LOCAL_TZ)
            elif key.tzinfo is None:
                when = to_local(key)  # naive: UTC, as the database stores it
            else:
                when = key.astimezone(LOCAL_TZ)
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
        if not is_token(token):  # (ASCII without spaces: spliced into headers as is)
            raise ValueError(f"token: not a delivery token: {token!r}")
        if CONTROL.search(to_name):
            raise ValueError(f"to_name: contains a line break or control character: {to_name!r}")
        if CONTROL.search(greeting):
            raise ValueError(f"greeting: contains a line break or control character: {greeting!r}")
        if CONTROL.search(interests):
            raise ValueError(
                f"interests: contains a line break or control character: {interests!r}"
            )
        to_addr = check_addr(to_addr, "to_addr")
        header = "".join(
            [
                self._head,
                mailbox_header("To", to_name, to_addr),
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
        # In the order of mime_body's value indexes, less the token.
        key: tuple[int, ...] = (
            len(g_text) % 3,
            len(g_html) % 3,
            len(i_text) % 3,
            len(i_html) % 3,
        )
        if self._fragile:
            key += (not greeting, not interests)
        return self._layout(key).join(
            header.encode("ascii"), (token.encode("ascii"), g_text, g_html, i_text, i_html)
        )
