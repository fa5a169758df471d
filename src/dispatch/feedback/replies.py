"""A reader's reply without the quoted original: the words they wrote.

Which body is read:

1. The HTML part, cut at the quote's element (dispatch.feedback.html_text), then by the
   text rules (dispatch.feedback.quoted: separators, header lines, attributions). When
   either found the quote, that is the reply — also when nothing is left ("" for a reply
   that is only the quote).
2. Else the plain-text part with the text rules, when they find the quote there (QQ's
   ``&nbsp;``/``&gt;``/``&lt;``/``&amp;``/``&quot;`` unescaped, format=flowed joined).
3. Else (nothing looks quoted: a fresh message, or a client we don't know) the whole
   HTML text, or the whole plain text when the HTML has none.

Bodies: multipart/alternative picks its last HTML and last plain alternative (the
preferred ones), multipart/related its root, any other multipart (mixed, signed, …)
joins its inline text parts in order. Attachments — a part with a filename or
``Content-Disposition: attachment`` — and message/* parts (a forwarded message
attached) are never read: they are not the reader's words.

Charsets: gb2312/gbk/x-gbk/cp936 (and other GB labels) are read as gb18030, their
superset, since Chinese mail often labels GBK or GB18030 text gb2312; Big5 as
Big5-HKSCS. No charset (an HTML part may name one in a ``<meta>``): UTF-8, else gb18030.
A wrong or unknown label: the label, else UTF-8, else gb18030 (UTF-8 first under
us-ascii, iso-8859-1 and windows-1252, which UTF-8 text is often sent as); bytes that fit
none are replaced, never fatal.

Limits: the inbox reads messages of up to dispatch.limits.EML_BYTES; of one message this
reads the first ``HTML_CHARS`` characters of HTML (and of those the first
html_text.HTML_ELEMENTS elements) and ``TEXT_CHARS`` of plain text — a reader's words
come first, what follows is the quote — and walks ``MIME_DEPTH`` levels of multipart
nesting. A hostile message at those limits is read in a few seconds.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message

from dispatch.feedback.html_text import html_lines
from dispatch.feedback.quoted import split_reply

HTML_CHARS = 2_000_000
TEXT_CHARS = 2_000_000
MIME_DEPTH = 20

_GB = {"gb2312", "gb_2312", "gb_2312-80", "gbk", "x-gbk", "cp936", "ms936", "windows-936",
       "euc-cn", "x-euc-cn", "csgb2312", "chinese", "gb18030", "gb-18030"}
_BIG5 = {"big5", "big-5", "x-big5", "cn-big5", "csbig5", "big5-hkscs", "big5hkscs"}
_WESTERN = {"ascii", "iso8859-1", "cp1252"}
# Codecs that are not text encodings, or that interpret what they read.
_NOT_CHARSETS = {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined",
                 "utf-7"}

_META_CHARSET = re.compile(rb"<meta[^>]{0,300}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]{1,40})",
                           re.IGNORECASE)
# C0 controls but tab, line feed and carriage return; zero-width space and BOM.
_INVISIBLE = dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F,
                            0x200B, 0xFEFF])
_ENTITY = re.compile(r"&(nbsp|gt|lt|amp|quot|#160|#39);")
_ENTITIES = {"nbsp": " ", "gt": ">", "lt": "<", "amp": "&", "quot": '"', "#160": " ",
             "#39": "'"}


def reply_text(message: EmailMessage) -> str:
    """The reply's own text, quoted original cut off ("" when only the quote is there)."""
    bodies = _Bodies()
    _collect(message, bodies, 0)
    whole_html = ""
    if bodies.html:
        lines, cut = html_lines("".join(bodies.html)[:HTML_CHARS])
        reply, found = split_reply(lines)
        if cut or found:
            return "\n".join(reply)
        whole_html = "\n".join(reply)
    if bodies.plain:
        reply, found = split_reply(_plain_lines("\n".join(bodies.plain)[:TEXT_CHARS]))
        if found or not whole_html:
            return "\n".join(reply)
    return whole_html


def bodies(message: Message) -> tuple[str, str]:
    """(HTML, plain text) of the message's readable bodies, as reply_text picks and
    decodes them, whole: for showing a message, quote and all."""
    found = _Bodies()
    _collect(message, found, 0)
    return "".join(found.html)[:HTML_CHARS], "\n".join(found.plain)[:TEXT_CHARS]


def _plain_lines(text: str) -> list[str]:
    """A text part's lines, with the entities QQ Mail leaves in its text part unescaped."""
    text = text.translate(_INVISIBLE)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n")
    text = _ENTITY.sub(lambda m: _ENTITIES[m[1]], text)
    return text.split("\n")


def _unflow(text: str, delsp: bool) -> str:
    """Text sent as format=flowed (RFC 3676) with its soft line breaks joined: a line
    ending in a space goes on on the next line of the same quote depth."""
    out: list[str] = []
    paragraph: list[str] = []
    depth = -1
    for raw in text.replace("\r\n", "\n").split("\n"):
        marks = len(raw) - len(raw.lstrip(">"))
        content = raw[marks:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        soft = content.endswith(" ") and content != "-- "
        if paragraph and marks != depth:
            out.append(_quoted_line(depth, "".join(paragraph)))
            paragraph = []
        depth = marks
        paragraph.append(content[:-1] if soft and delsp else content)
        if not soft:
            out.append(_quoted_line(depth, "".join(paragraph)))
            paragraph = []
    if paragraph:
        out.append(_quoted_line(depth, "".join(paragraph)))
    return "\n".join(out)


def _quoted_line(depth: int, content: str) -> str:
    return ">" * depth + (" " if depth and content else "") + content


@dataclass
class _Bodies:
    html: list[str] = field(default_factory=list)
    plain: list[str] = field(default_factory=list)
    html_chars: int = 0
    plain_chars: int = 0


def _collect(part: Message, bodies: _Bodies, depth: int) -> None:
    """Add the part's readable bodies (see the module's docstring) to ``bodies``."""
    content_type = _content_type(part)
    maintype, _, subtype = content_type.partition("/")
    if maintype == "message" or _is_attachment(part):
        return
    if part.is_multipart():
        children = part.get_payload()
        if depth >= MIME_DEPTH or not isinstance(children, list):
            return
        parts = [child for child in children if isinstance(child, Message)]
        if subtype == "alternative":
            _collect_alternative(parts, bodies, depth + 1)
        elif subtype == "related":
            root = _related_root(part, parts)
            if root is not None:
                _collect(root, bodies, depth + 1)
        else:
            for child in parts:
                _collect(child, bodies, depth + 1)
        return
    if content_type == "text/html" and bodies.html_chars < HTML_CHARS:
        text = _text(part, html=True)
        bodies.html.append(text)
        bodies.html_chars += len(text)
    elif content_type == "text/plain" and bodies.plain_chars < TEXT_CHARS:
        text = _text(part, html=False)
        if _param(part, "format").lower() == "flowed":
            text = _unflow(text, delsp=_param(part, "delsp").lower() == "yes")
        bodies.plain.append(text)
        bodies.plain_chars += len(text)


def _collect_alternative(parts: list[Message], bodies: _Bodies, depth: int) -> None:
    """The last alternative with HTML gives the HTML, the last with plain text the text."""
    html: _Bodies | None = None
    plain: _Bodies | None = None
    for child in parts:
        found = _Bodies(html_chars=bodies.html_chars, plain_chars=bodies.plain_chars)
        _collect(child, found, depth)
        if found.html:
            html = found
        if found.plain:
            plain = found
    if html is not None:
        bodies.html.extend(html.html)
        bodies.html_chars = html.html_chars
    if plain is not None:
        bodies.plain.extend(plain.plain)
        bodies.plain_chars = plain.plain_chars


def _related_root(part: Message, parts: list[Message]) -> Message | None:
    start = _param(part, "start").strip("<>")
    if start:
        for child in parts:
            if str(child.get("Content-ID", "")).strip().strip("<>") == start:
                return child
    return parts[0] if parts else None


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except (ValueError, TypeError, AttributeError, IndexError):
        return "application/octet-stream"


def _param(part: Message, name: str) -> str:
    try:
        value = part.get_param(name)
    except (ValueError, TypeError, AttributeError, IndexError):
        return ""
    if isinstance(value, tuple):  # RFC 2231: (charset, language, value)
        value = value[2]
    return value.strip() if isinstance(value, str) else ""


def _is_attachment(part: Message) -> bool:
    try:
        return part.get_content_disposition() == "attachment" or bool(part.get_filename())
    except (ValueError, TypeError, AttributeError, IndexError, LookupError):
        return True  # a part whose headers can't be read is not the reader's text


def _text(part: Message, *, html: bool) -> str:
    """The part's payload decoded (transfer encoding, then charset), capped."""
    cap = HTML_CHARS if html else TEXT_CHARS
    try:
        data = part.get_payload(decode=True)
    except (ValueError, TypeError, AttributeError, IndexError, LookupError):
        data = None
    if not isinstance(data, bytes):
        return ""
    # Four bytes at most a character: a longer prefix of bytes decodes past the cap.
    whole = len(data) <= cap * 4
    data = data[: cap * 4]
    label = _param(part, "charset")
    if not label and html:
        sniffed = _META_CHARSET.search(data[:4096])
        label = sniffed[1].decode("ascii") if sniffed else ""
    return _decode(data, label, whole=whole).translate(_INVISIBLE)[:cap]


def _decode(data: bytes, label: str, *, whole: bool = True) -> str:
    """``data`` as text in the charset ``label`` names (see the module's docstring);
    not ``whole``: cut off, perhaps in the middle of a character, which is no error."""
    codec = _codec(label)
    # Text valid as UTF-8 under a Western single-byte label is UTF-8: the other way round
    # it would rarely be valid.
    first = ["utf-8", codec] if codec in _WESTERN else [codec, "utf-8"]
    for name in dict.fromkeys([*first, "gb18030"]):
        if name is None:
            continue
        try:
            return _decoded(data, name, "strict", whole)
        except (UnicodeDecodeError, LookupError):
            continue
    return _decoded(data, codec or "utf-8", "replace", whole)


def _decoded(data: bytes, codec: str, errors: str, whole: bool) -> str:
    decoder: codecs.IncrementalDecoder = codecs.getincrementaldecoder(codec)(errors)
    text: str = decoder.decode(data, final=whole)
    return text


def _codec(label: str) -> str | None:
    name = label.strip().strip("\"'").lower()
    if not name:
        return None
    if name in _GB:
        return "gb18030"
    if name in _BIG5:
        return "big5hkscs"
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if info.name in _NOT_CHARSETS or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name
