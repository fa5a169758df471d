"""A reply's HTML as lines of text, cut at the quoted original's element.

The quote's element, by client:

- removed with what it holds, the text after it kept (a reply may be written below it):
  ``.gmail_quote`` and ``.gmail_attr`` (Gmail), ``blockquote[type=cite]`` (Apple Mail,
  Thunderbird) and ``.moz-cite-prefix`` (Thunderbird's "On … wrote:"), and
  ``.yahoo_quoted``, ``.protonmail_quote``, ``[name=quote]`` (GMX);
- the text stops there (the original follows it, not inside it): ``#divRplyFwdMsg`` and
  ``#appendonsend`` (Outlook), ``#isReplyContent`` (QQ Mail, 网易 web), ``#isForwardContent``,
  ``div.ntes-mailmaster-quote`` (网易邮箱大师), ``hr#replySplit`` (163/126 web),
  ``div[class^=FoxDiv]`` (Foxmail), ``#reply139content`` (139邮箱),
  ``#OLK_SRC_BODY_SECTION`` (Outlook for Mac), ``hr#stopSpelling`` (Hotmail),
  ``hr#zwchr`` (Zimbra), ``#origbody``, ``#oriMsgHtmlSeperator``, and a ``div`` with a
  ``border-top`` whose text starts with 发件人/寄件者/From and a colon (Outlook desktop,
  Coremail, Foxmail, Windows Mail).

Either leaves a ``None`` line where the quote was, so the text rules (dispatch.feedback.
quoted) can drop the attribution just above it. Dashed separators (原始邮件, Original
Message) are text: those rules find them too.

Text: paragraphs (``p``, headings, lists, tables, ``blockquote``) end with a blank line,
other blocks (``div``, ``li``, ``tr``, Word's zero-margin ``p.MsoNormal``) with a line
break, ``br`` breaks a line; list items get ``- `` or ``1. ``; runs of spaces and line
breaks in the source are one space (``&nbsp;`` is a space that stays, so an Outlook
paragraph of one ``&nbsp;`` is a blank line); ``head``, ``style``, ``script`` and hidden
elements (``display:none``, ``hidden``) give nothing.

Parsed by lxml (libxml2's HTML parser, already installed for premailer): C, linear on
malformed input, nesting capped at 256 levels (what lies deeper is dropped: a reader's
words are near the top), no network, no entity declarations expanded. The stdlib's
html.parser, on the Python 3.11.7 this runs on, spends 16 s on 200 KB of ``<!--`` and
raises AssertionError on ``<![<![``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from dispatch.feedback.quoted import Line

_SKIP = frozenset(
    {"head", "title", "style", "script", "template", "xml", "svg", "math", "object",
     "iframe", "select", "meta", "link"}
)
_PARAGRAPH = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "table", "ul", "ol",
     "dl", "hr", "figure"}
)
_BLOCK = frozenset(
    {"div", "li", "tr", "dt", "dd", "address", "article", "aside", "center", "details",
     "dialog", "fieldset", "figcaption", "footer", "form", "header", "main", "nav",
     "section", "summary", "caption", "tbody", "thead", "tfoot", "body", "html", "menu",
     "dir", "legend"}
)
_CELL = frozenset({"td", "th"})

_SPACES = re.compile(r"[ \t\n\r\f\v]+")
_HIDDEN = re.compile(r"display\s*:\s*none|mso-hide\s*:\s*all", re.IGNORECASE)
_BORDER_TOP = re.compile(r"border-top(?:-style|-width|-color)?\s*:\s*(?!none)", re.IGNORECASE)
_ZERO_MARGIN = re.compile(r"(?:^|;)\s*margin\s*:\s*0(?:px|pt|cm|em)?\s*(?:;|$)", re.IGNORECASE)
_HEADER_START = re.compile(r"\*?(?:发件人|寄件者|(?i:from))\*?[ \u3000]*[:：]")

# Elements visited, at most: a long Outlook thread has tens of thousands; each costs a
# few microseconds of Python, so a hostile page of tags stops within a second or two.
HTML_ELEMENTS = 200_000

# Outlook (divRplyFwdMsg, appendonsend; OLK_SRC_BODY_SECTION: Outlook for Mac), QQ Mail
# and 网易 (isReplyContent, isForwardContent), 139邮箱, and two more webmails: the original
# follows these, or is all they hold.
_STOP_IDS = frozenset({"divrplyfwdmsg", "appendonsend", "olk_src_body_section",
                       "isreplycontent", "isforwardcontent", "reply139content", "origbody",
                       "orimsghtmlseperator"})
_STOP_HR_IDS = frozenset({"replysplit", "stopspelling", "zwchr"})  # 163/126, Hotmail, Zimbra
_QUOTE_CLASSES = frozenset({"yahoo_quoted", "protonmail_quote"})  # and GMX's name="quote"

# What the element means for the text.
_STOP = "stop"  # the quoted original starts here: nothing from here on
_QUOTE = "quote"  # the quote is this element: drop it, go on after it
_HIDE = "hide"  # not shown: drop it, no mark


def html_lines(html: str, *, cut: bool = True) -> tuple[list[Line], bool]:
    """The HTML's text as lines, cut at the quote's element, and whether one was found.

    A ``None`` line stands where a quote was removed, and ends the lines when the text
    stopped at one. With ``cut=False`` the quote stays, as text like the rest (the whole
    message, as staff read it in the staff web), and no line is ``None``."""
    root = _parse(html)
    if root is None:
        return [], False
    text = _Text()
    found = False
    stack: list[tuple[Any, Iterator[Any]]] = []
    if _enter(root, text, cut) is None:
        stack.append((root, iter(root)))
    budget = 2 * HTML_ELEMENTS  # each element is entered and left
    while stack and budget:
        budget -= 1
        element, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            _leave(element, text)
            if stack:
                text.add(element.tail)
            continue
        if not isinstance(child.tag, str):  # a comment or processing instruction left in
            text.add(child.tail)
            continue
        action = _enter(child, text, cut)
        if action == _STOP:
            found = True
            text.quote()
            break
        if action == _QUOTE:
            found = True
            text.quote()
            text.add(child.tail)
        elif action == _HIDE:
            text.add(child.tail)
        else:
            stack.append((child, iter(child)))
    return text.finish(), found


def _parse(html: str) -> Any:
    parser = etree.HTMLParser(
        encoding="utf-8", recover=True, no_network=True, remove_comments=True,
        remove_pis=True, huge_tree=False, default_doctype=False, collect_ids=False,
    )
    try:
        return etree.fromstring(html.encode("utf-8", "replace"), parser)
    except (etree.LxmlError, ValueError):
        return None


def _classify(element: Any, tag: str) -> str | None:
    """_STOP, _QUOTE or _HIDE for an element that is a quote or is hidden; None otherwise."""
    element_id = (element.get("id") or "").strip().lower()
    class_attr = (element.get("class") or "").strip()
    classes = class_attr.lower().split()
    if any(c.startswith("gmail_quote") or c in ("gmail_attr", "moz-cite-prefix") for c in classes):
        return _QUOTE
    if tag == "blockquote" and (element.get("type") or "").strip().lower() == "cite":
        return _QUOTE
    if element_id in _STOP_IDS or (tag == "hr" and element_id in _STOP_HR_IDS):
        return _STOP
    if any(c in _QUOTE_CLASSES for c in classes) or element.get("name") == "quote":
        return _QUOTE
    if tag == "div" and ("ntes-mailmaster-quote" in classes or class_attr.startswith("FoxDiv")):
        return _STOP
    style = element.get("style") or ""
    if element.get("hidden") is not None or _HIDDEN.search(style):
        return _HIDE
    if tag == "div" and _BORDER_TOP.search(style) and _HEADER_START.match(_first_text(element)):
        return _STOP
    return None


def _first_text(element: Any) -> str:
    """The start of the element's text: enough to read a header label."""
    chunks: list[str] = []
    size = 0
    for chunk in element.itertext():
        chunks.append(chunk)
        size += len(chunk.strip())
        if size >= 12 or len(chunks) >= 50:
            break
    return _SPACES.sub(" ", "".join(chunks).replace("\xa0", " ")).lstrip()


def _enter(element: Any, text: _Text, cut: bool = True) -> str | None:
    """Start an element: its mark if it is a quote (when `cut`) or hidden (then its
    content is not visited), else None after writing what comes before its content."""
    tag = element.tag.lower()
    if len(element.attrib):  # quotes and hidden elements are known by their attributes
        action = _classify(element, tag)
        if action == _HIDE or (cut and action is not None):
            return action
    if tag in _SKIP:
        return _HIDE
    if tag == "br":
        text.hard_break()
    elif tag in ("ul", "ol"):
        _list_break(text)
        text.lists.append(_List(ordered=tag == "ol", items=_list_start(element)))
    elif tag == "p" and not _paragraph(element, text):
        text.soft_break()
    elif tag in _PARAGRAPH:
        text.paragraph_break()
        if tag == "pre":
            text.pre += 1
    elif tag == "li":
        text.soft_break()
        text.list_item()
    elif tag in _BLOCK:
        text.soft_break()
    elif tag in _CELL:
        text.add(" ")
    text.add(element.text)
    return None


def _leave(element: Any, text: _Text) -> None:
    tag = element.tag.lower()
    if tag in ("ul", "ol"):
        if text.lists:
            text.lists.pop()
        _list_break(text)
    elif tag == "p" and not _paragraph(element, text):
        text.soft_break()
    elif tag in _PARAGRAPH:
        text.paragraph_break()
        if tag == "pre":
            text.pre = max(0, text.pre - 1)
    elif tag in _BLOCK:
        text.soft_break()


def _list_break(text: _Text) -> None:
    """A list is a paragraph; a list inside a list item is not."""
    if text.lists:
        text.soft_break()
    else:
        text.paragraph_break()


def _paragraph(element: Any, text: _Text) -> bool:
    """A ``p`` with a margin (a blank line around it), not Word's zero-margin line nor a
    paragraph inside a list item."""
    classes = (element.get("class") or "").lower()
    return not (
        "msonormal" in classes
        or "msoplaintext" in classes
        or text.lists
        or _ZERO_MARGIN.search(element.get("style") or "")
    )


def _list_start(element: Any) -> int:
    start = (element.get("start") or "").strip()
    return int(start) - 1 if start.isdigit() and len(start) <= 6 else 0


@dataclass
class _List:
    ordered: bool
    items: int  # numbered so far (an ``ol start=5`` has had 4)


class _Text:
    """Lines being written: the current line in pieces, what the next list item starts
    with, and whether spaces count (inside ``pre``)."""

    def __init__(self) -> None:
        self.lines: list[Line] = []
        self.current: list[str] = []
        self.has_text = False  # the current line has more than spaces
        self.prefix = ""
        self.lists: list[_List] = []
        self.pre = 0

    def add(self, data: str | None) -> None:
        if not data:
            return
        if self.pre:
            first, *rest = data.split("\n")
            self._write(first)
            for piece in rest:
                self.hard_break()
                self._write(piece)
            return
        data = _SPACES.sub(" ", data)
        if not self.has_text or self._ends_with_space():
            data = data.lstrip(" ")
        self._write(data)

    def _write(self, data: str) -> None:
        if not data:
            return
        if self.prefix and not self.has_text:
            self.current = [self.prefix]
            self.prefix = ""
        self.current.append(data)
        self.has_text = self.has_text or bool(data.strip(" "))

    def _ends_with_space(self) -> bool:
        return bool(self.current) and self.current[-1].endswith(" ")

    def soft_break(self) -> None:
        """End the line if it has text (a block starts or ends)."""
        if self.has_text:
            self._push()
        self.current = []

    def hard_break(self) -> None:
        """End the line, empty or not (``br``)."""
        self._push()

    def paragraph_break(self) -> None:
        self.soft_break()
        if self.lines and self.lines[-1]:
            self.lines.append("")

    def list_item(self) -> None:
        depth = len(self.lists)
        if not depth:
            self.prefix = "- "
            return
        entry = self.lists[-1]
        entry.items += 1
        mark = f"{entry.items}. " if entry.ordered else "- "
        self.prefix = "  " * (depth - 1) + mark

    def quote(self) -> None:
        self.soft_break()
        self.lines.append(None)

    def _push(self) -> None:
        self.lines.append("".join(self.current).rstrip(" "))
        self.current = []
        self.has_text = False
        self.prefix = ""

    def finish(self) -> list[Line]:
        self.soft_break()
        return self.lines
