"""Where the quoted original starts in a reply's text: the lines mail clients write above
it, Chinese and Western. Pure functions on lines; no MIME, no HTML.

A reply is read top to bottom. What ends the reader's words (everything from there on is
dropped):

- a dashed separator naming the original: ``------------------ 原始邮件 ------------------``,
  ``-----Original Message-----``, ``---- Replied Message ----``, 邮件原件, 回复的原邮件, and
  the forwarding ones (``---------- Forwarded message ---------``, 转发的邮件);
- a rule of 20 or more dashes or underscores alone on its line (Outlook Web, Alibaba Mail);
- a header block: two or more consecutive header lines (发件人/寄件者/From, 发送时间/
  发送日期/日期/时间/Date/Sent/Send Time, 收件人/To, 抄送/Cc, 主题/Subject), one of them
  发件人/寄件者/From, either colon, with or without a space after it (Foxmail writes
  English labels and no separator; Coremail ``发送时间:2025-05-07 …``; Hotmail and GMX
  start with Date or Sent) — a single "From: …" line of the reader's stays;
- an attribution (``… 于2020年5月14日周四 下午10:10写道：``, ``在 … 写道：``,
  ``2019年11月22日 18:05，… 写道：``, ``On … wrote:``, ``At …, … wrote:``, ``Name <addr>
  wrote:``), on one line or wrapped over two, naming a date, a time or an address — a
  reader's own "你们在第3期写道：" names none and stays;
- the quote run at the end: lines starting with ``>`` (blank lines between them), and the
  line just above it if it ends in ``wrote:``/``写道：`` (an attribution of any shape).

Decided here, beyond those: an attribution followed by a ``>`` quote, or a quote the HTML
reader removed (a ``None`` line), takes only that quote with it, and the text after it is
kept — replies written below the quote (Thunderbird's default) or between its parts keep
the reader's words. A ``>`` run in the middle with no attribution above it is the reader
quoting a line to answer it, and stays. Signatures (``-- ``) stay: they name the reader.

Every rule looks only at lines of at most ``MARKER_CHARS`` characters, so a hostile
megabyte-long line costs one length check, and no pattern can backtrack for long.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# A line of the reply; None where the HTML reader removed a quote element.
Line = str | None

# Separators, header lines and attributions are short; longer lines are the reader's.
MARKER_CHARS = 300

_DASHES = r"[-‐–—－_=]"
_GAP = r"[ \t\u3000]*"
_SEPARATOR = re.compile(
    rf"{_DASHES}{{2,}}{_GAP}"
    r"(?:原始邮件|邮件原件|回复的原邮件|原邮件|转发的邮件|转发邮件信息"
    r"|(?i:original message|original|replied message|forwarded message))"
    rf"{_GAP}[:：]?{_GAP}{_DASHES}*"
)
_FORWARD_LINE = re.compile(r"(?i:begin forwarded message)[:：]?|以下是转发的邮件[:：]?")
_RULE = re.compile(r"-{20,}|_{20,}")
# First characters of a separator or rule line, and of a header line: a cheap gate.
_SEPARATOR_STARTS = frozenset("-‐–—－_=Bb以")
_HEADER_STARTS = frozenset("发寄日时收抄主FfDdSsTtCc*")

_LABEL_END = rf"\*?{_GAP}[:：]"
_FROM_LINE = re.compile(rf"\*?(?:发件人|寄件者|(?i:from)){_LABEL_END}")
_HEADER_LINE = re.compile(
    rf"\*?(?:发件人|寄件者|发送时间|发送日期|日期|时间|收件人|抄送|主{_GAP}题"
    rf"|(?i:from|date|sent|send time|to|cc|subject)){_LABEL_END}"
)
_HEADER_BLOCK = 6  # lines a header block is scanned for its From: line

# Attributions. Each names a date, a time or an address, so a reader's "在报告中写道：" or
# "On page 3 you wrote:" is not one.
_ZH_END = r"写道[:：]"
_EN_END = r"(?i:wrote|writes)\s*:"
_ADDRESS = r"<[^<>\s@]+@[^<>\s]+>"
_WHEN = re.compile(r"\d{4}|\d{1,2}:\d{2}")
_ATTRIBUTIONS = (
    # Gmail: 在 2020年5月14日 下午10:10，张三 <a@b> 写道： / 163: 在 2020-05-14 22:10:00，"张三" <a@b> 写道：
    (re.compile(rf"在.*{_ZH_END}"), True),
    # Gmail: 张三 <a@b> 于2020年5月14日周四 下午10:10写道：(text before 于: the name)
    (re.compile(rf"\S.*于\s*\d{{4}}\s*[年/.-].*{_ZH_END}"), False),
    # Apple Mail: 2019年11月22日 18:05，张三 <a@b> 写道：
    (re.compile(rf"\d{{4}}\s*年\s*\d{{1,2}}\s*月\s*\d{{1,2}}\s*日.*[，,]\s*\S.*{_ZH_END}"), False),
    (re.compile(rf".*{_ADDRESS}.*{_ZH_END}"), False),
    # On Thu, May 14, 2020 at 10:10 PM John <a@b> wrote: / At 2020-05-14 22:10:00, "J" <a@b> wrote:
    (re.compile(rf"(?:On|At)\s.*{_EN_END}"), True),
    (re.compile(rf".*{_ADDRESS}\s*{_EN_END}"), False),
)
_ENDS_ATTRIBUTION = re.compile(rf".*(?:{_ZH_END}|{_EN_END})")


def split_reply(lines: Sequence[Line]) -> tuple[list[str], bool]:
    """The lines the reader wrote (tidied: see ``tidy``) and whether any quote was found."""
    out: list[str] = []
    found = False
    n = len(lines)
    i = 0
    while i < n:
        line = lines[i]
        if line is None or _quoted(line):
            end = _quote_run_end(lines, i)
            at_end = _next_nonblank(lines, end) >= n
            if line is None or at_end or _ends_in_attribution(out) or _contains_none(lines, i, end):
                found = True
                _drop_attribution(out)
                i = end
                continue
            out.extend(x for x in lines[i:end] if x is not None)  # the reader quoting a line
            i = end
            continue
        text = _unquote(line) if _short(line) else ""
        if not text:  # blank, or too long to be a marker
            out.append(line)
            i += 1
            continue
        if (text[0] in _SEPARATOR_STARTS and _is_separator(text)) or (
            text[0] in _HEADER_STARTS and _header_block(lines, i)
        ):
            found = True
            _drop_attribution(out)
            break
        span = _attribution_span(lines, i) if _colon_ends(lines, i) else 0
        if span:
            found = True
            after = _next_nonblank(lines, i + span)
            if after < n and (lines[after] is None or _quoted(lines[after] or "")):
                i = _quote_run_end(lines, after)
                continue
            break
        out.append(line)
        i += 1
    return tidy(out), found


def tidy(lines: Sequence[str]) -> list[str]:
    """Trailing spaces cut, no-break spaces as spaces, one blank line at most between
    paragraphs, none at either end."""
    out: list[str] = []
    for raw in lines:
        line = raw.replace("\xa0", " ").rstrip()
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return out


def _short(line: str) -> bool:
    return len(line) <= MARKER_CHARS


def _blank(line: Line) -> bool:
    return line is not None and not line.strip()


def _quoted(line: str) -> bool:
    return line.lstrip(" \t").startswith(">")


def _quote_run_end(lines: Sequence[Line], start: int) -> int:
    """Just past the quote starting at ``start``: ``>`` lines, removed quotes, and blank
    lines between them (not the blank lines after it)."""
    end = i = start
    while i < len(lines):
        line = lines[i]
        if line is None or _quoted(line):
            end = i + 1
        elif line.strip():
            break
        i += 1
    return end


def _contains_none(lines: Sequence[Line], start: int, end: int) -> bool:
    return any(line is None for line in lines[start:end])


def _next_nonblank(lines: Sequence[Line], start: int) -> int:
    i = start
    while i < len(lines) and _blank(lines[i]):
        i += 1
    return i


def _is_separator(text: str) -> bool:
    return bool(
        _SEPARATOR.fullmatch(text) or _FORWARD_LINE.fullmatch(text) or _RULE.fullmatch(text)
    )


def _colon_ends(lines: Sequence[Line], i: int) -> bool:
    """Line ``i`` or the next ends in a colon: it may start an attribution."""
    return any(
        isinstance(line, str) and line.rstrip().endswith((":", "："))
        for line in lines[i : i + 2]
    )


def _header_block(lines: Sequence[Line], i: int) -> bool:
    """Line ``i`` starts two or more consecutive header lines, one of them 发件人/From."""
    has_from = False
    for count, line in enumerate(lines[i : i + _HEADER_BLOCK], 1):
        if line is None or not _short(line):
            break
        text = _unquote(line)
        if not _HEADER_LINE.match(text):
            break
        has_from = has_from or bool(_FROM_LINE.match(text))
        if count >= 2 and has_from:
            return True
    return False


def _unquote(line: str) -> str:
    """The line without leading spaces and ``>`` marks: a header or attribution inside a
    quote is still one."""
    return line.replace("\xa0", " ").lstrip(" \t\u3000>").strip()


def _is_attribution(text: str) -> bool:
    """``text`` is a complete attribution (one of ``_ATTRIBUTIONS``, naming a date, a time
    or an address where its shape doesn't)."""
    text = _unquote(text)
    if not _ENDS_ATTRIBUTION.fullmatch(text):
        return False
    for pattern, needs_when in _ATTRIBUTIONS:
        if pattern.fullmatch(text) and (not needs_when or _WHEN.search(text) or "@" in text):
            return True
    return False


def _attribution_span(lines: Sequence[Line], i: int) -> int:
    """How many lines (1 or 2) the attribution starting at line ``i`` spans; 0: none.

    A line that is an attribution on its own is one. Otherwise, when the next line ends
    like one but is not one on its own (``下午10:10写道：``, ``example.com> wrote:``), the
    two lines together may be one: clients wrap long attributions."""
    line = lines[i]
    if line is None or not _short(line) or not line.strip():
        return 0
    if _is_attribution(line):
        return 1
    if i + 1 < len(lines):
        following = lines[i + 1]
        if (
            following is not None
            and _short(following)
            and _ENDS_ATTRIBUTION.fullmatch(_unquote(following))
            and not _is_attribution(following)
            and _is_attribution(f"{_unquote(line)} {_unquote(following)}")
        ):
            return 2
    return 0


def _ends_in_attribution(out: list[str]) -> bool:
    last = _last_nonblank(out)
    return last >= 0 and _short(out[last]) and bool(_ENDS_ATTRIBUTION.fullmatch(_unquote(out[last])))


def _drop_attribution(out: list[str]) -> None:
    """Remove the attribution (of any shape, wrapped or not) that ends ``out``, if any:
    the line just above a quote, ending in ``wrote:``/``写道：``."""
    if not _ends_in_attribution(out):
        return
    last = _last_nonblank(out)
    start = last
    if last > 0 and out[last - 1].strip() and _short(out[last - 1]):
        joined = f"{_unquote(out[last - 1])} {_unquote(out[last])}"
        if not _is_attribution(out[last]) and _is_attribution(joined):
            start = last - 1
    del out[start:]


def _last_nonblank(out: list[str]) -> int:
    i = len(out) - 1
    while i >= 0 and not out[i].strip():
        i -= 1
    return i
