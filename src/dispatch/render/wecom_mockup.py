"""A WeChat Work message (the message/send JSON body of render.wecom) read back into
what a reader's WeChat Work shows, for staff to look at in the staff web: plain data a
template lays out as a card. Pure.

Every text comes out as plain text (the markdown's links and bold, the textcard's
<div class=…> and its HTML escapes taken apart): the template escapes it again, so
nothing in an article's title can become markup on the staff page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Piece:
    """A run of text in a line: plain, a link, bold or grey (WeChat Work's comment colour)."""

    text: str
    url: str = ""
    style: str = ""  # "", "bold", "gray", "highlight"


@dataclass(frozen=True)
class Line:
    pieces: tuple[Piece, ...]
    heading: bool = False


@dataclass(frozen=True)
class Entry:
    """A news article, a template card's row or one of its jump links."""

    title: str
    text: str = ""
    url: str = ""


@dataclass(frozen=True)
class Mockup:
    msgtype: str
    title: str = ""
    subtitle: str = ""
    lines: tuple[Line, ...] = ()
    entries: tuple[Entry, ...] = ()
    jumps: tuple[Entry, ...] = ()
    buttons: tuple[str, ...] = ()
    action: str = ""  # the card's own button (textcard) or where tapping the card leads
    extra: dict[str, str] = field(default_factory=dict)


def mockup(body: Mapping[str, Any]) -> Mockup:
    """The mock-up of a message body; ValueError for a msgtype it does not know."""
    msgtype = str(body.get("msgtype", ""))
    part = body.get(msgtype)
    if not isinstance(part, Mapping):
        raise ValueError(f"no {msgtype!r} part in the message")
    if msgtype == "news":
        return Mockup(msgtype, entries=tuple(
            Entry(str(a.get("title", "")), str(a.get("description", "")), str(a.get("url", "")))
            for a in part.get("articles", [])))
    if msgtype == "markdown":
        return Mockup(msgtype, lines=tuple(_markdown(str(part.get("content", "")))))
    if msgtype == "textcard":
        return Mockup(msgtype, title=str(part.get("title", "")),
                      lines=tuple(_card_lines(str(part.get("description", "")))),
                      action=str(part.get("btntxt", "")), extra={"url": str(part.get("url", ""))})
    if msgtype == "template_card":
        main = part.get("main_title", {})
        return Mockup(
            msgtype,
            title=str(main.get("title", "")),
            subtitle=str(main.get("desc", "")),
            lines=(Line((Piece(str(part.get("sub_title_text", ""))),)),),
            entries=tuple(Entry(str(r.get("keyname", "")), str(r.get("value", "")),
                                str(r.get("url", "")))
                          for r in part.get("horizontal_content_list", [])),
            jumps=tuple(Entry(str(j.get("title", "")), url=str(j.get("url", "")))
                        for j in part.get("jump_list", [])),
            buttons=tuple(str(b.get("text", "")) for b in part.get("button_list", [])),
        )
    raise ValueError(f"unknown WeChat Work message type {msgtype!r}")


# WeChat Work's markdown subset as render.wecom writes it: ### headings, **bold**,
# [text](url), <font color="comment">…</font>. Its texts have no [ ] * < > of their own
# (md_escape made them full-width), so these patterns can't be fooled by a title.
_MD_PIECE = re.compile(
    r"\*\*(?P<bold>.+?)\*\*|\[(?P<link>[^\]]*)\]\((?P<url>[^)]*)\)"
    r"|<font color=\"(?P<color>\w+)\">(?P<font>.*?)</font>"
)
_COLOURS = {"comment": "gray", "info": "highlight", "warning": "highlight"}


def _markdown(content: str) -> list[Line]:
    lines: list[Line] = []
    for raw in content.split("\n"):
        heading = raw.startswith("#")
        text = raw.lstrip("#").strip() if heading else raw
        if not text:
            if lines and lines[-1].pieces:
                lines.append(Line(()))  # one blank line between groups
            continue
        lines.append(Line(tuple(_md_pieces(text)), heading))
    return lines


def _md_pieces(text: str) -> list[Piece]:
    pieces: list[Piece] = []
    at = 0
    for m in _MD_PIECE.finditer(text):
        if m.start() > at:
            pieces.append(Piece(text[at:m.start()]))
        if m["bold"] is not None:
            pieces.append(Piece(m["bold"], style="bold"))
        elif m["link"] is not None:
            pieces.append(Piece(m["link"], url=m["url"]))
        else:
            pieces.append(Piece(m["font"], style=_COLOURS.get(m["color"], "")))
        at = m.end()
    if at < len(text):
        pieces.append(Piece(text[at:]))
    return pieces


_CARD_DIV = re.compile(r"<div class=\"(\w+)\">(.*?)</div>", re.DOTALL)
_CARD_STYLES = {"gray": "gray", "highlight": "highlight", "normal": ""}


def _card_lines(description: str) -> list[Line]:
    """A textcard's description (divs of class gray, normal, highlight; HTML-escaped)."""
    found = _CARD_DIV.findall(description)
    if not found:
        return [Line((Piece(html.unescape(description)),))] if description else []
    return [Line((Piece(html.unescape(text), style=_CARD_STYLES.get(cls, "")),))
            for cls, text in found]
