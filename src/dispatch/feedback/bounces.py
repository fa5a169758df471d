"""Bounces: is a received message a mail server's report that a message could not be
delivered, to which address, why, and is it permanent (hard) or temporary (soft)?

Three sources, most reliable first:

1. An RFC 3464 delivery status notification (multipart/report, message/delivery-status):
   per recipient, its Action (failed, delayed) and Status (5.1.1, 4.2.2).
2. flufl.bounce, which also knows the plain-text formats of Postfix, Exim, qmail, Exchange,
   Yahoo, Sina … (its `all_failures`: temporary and permanent failures, as bytes).
3. What flufl.bounce doesn't know, such as QQ Mail and Tencent Exmail (腾讯企业邮) —
   `[Qmail] 来自qq.com的退信` from PostMaster@qq.com, a Chinese HTML page with the
   reason: a sender that is a mail server (MAILER-DAEMON, postmaster, Mail Delivery
   System …) or a subject that says so (退信, Undeliverable, Delivery Status
   Notification, 投递失败, Mail delivery failed, Returned mail …).

Hard or soft: 5.x.x is permanent and 4.x.x temporary, except X.2.2 (mailbox full), which
is soft whatever its class; a delay warning is soft. When a report gives no code, its
words decide (邮箱已满 / mailbox full / quota: soft; the rest: hard, as a report of a
failure without a reason is a final one).
"""

from __future__ import annotations

import email.utils
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser

from dispatch.feedback.headers import decode_bytes, header_text, raw_values

log = logging.getLogger(__name__)
# flufl.bounce logs every detector it runs at INFO, and the traceback of a detector that
# trips over a malformed message at ERROR (its message may quote the mail). Its failures
# are caught and logged here, without the mail's words.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

MAX_REASON = 500
# Bounces are short; what lies past this of their own text (not the returned original)
# is not read.
MAX_TEXT = 256 * 1024
MAX_DEPTH = 20

# Local parts and display names of the senders of bounces.
_DAEMON_LOCAL = re.compile(
    r"^(mailer[-_.]?daemon|mail[-_.]?daemon|mdaemon|postmaster|mail[-_.]?delivery(?:[-_.]?system)?"
    r"|microsoftexchange[0-9a-f]*|bounce[sd]?)$"
)
_DAEMON_NAME = re.compile(
    r"mail delivery (?:sub)?system|mailer[- ]daemon|postmaster|系统退信|邮件系统|退信", re.I
)
_BOUNCE_SUBJECT = re.compile(
    r"退信|退回|投递失败|发送失败|未送达|无法送达|无法投递|投递状态通知|传递状态通知|未能送达"
    r"|undeliver|undelivered|delivery status notification|delivery (?:has )?failed"
    r"|delivery failure|mail delivery failed|returned mail|failure notice|non[- ]?remis"
    r"|unzustellbar|nondeliverable|delivery notification|message not delivered",
    re.I,
)
# A subject that is someone's answer to (or forward of) a message, whatever follows.
REPLY_PREFIX = re.compile(r"^\s*(re|fw|fwd|aw|sv|回复|答复|回覆|转发|轉寄)\s*[:：]", re.I)
_DELAY = re.compile(
    r"\bdelay(?:ed)?\b|will (?:be )?retr(?:y|ied)|still (?:being )?(?:trying|retried)"
    r"|延迟|延时|正在重试|仍在尝试|稍后重试",
    re.I,
)
_FULL = re.compile(
    r"mailbox (?:is )?full|over ?quota|quota exceeded|exceeded (?:storage|quota)"
    r"|insufficient (?:system )?storage|邮箱已满|邮箱满|空间不足|容量不足|超出容量|超过容量|已满"
    r"|\b[45]\.2\.2\b",
    re.I,
)
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BASIC = re.compile(r"(?<![\d.])([45])([0-5])(\d)(?![\d.])")
_CODE_LINE = re.compile(r"(?<![\d.])[45][0-5]\d(?![\d.])[ -]|\b[45]\.\d{1,3}\.\d{1,3}\b")
_LABELLED_ADDRESS = re.compile(
    r"(?:收件人|收信人|收件地址|无法发送到|无法发送给|发送给|final-recipient|original-recipient"
    r"|recipient|to)\s*[:：]?\s*(?:rfc822\s*;\s*)?<?([^\s<>\"'，,;；:：()（）]+@[^\s<>\"'，,;；:：()（）]+?)>?"
    r"(?=[\s<>\"'，,;；:：()（）]|$)",
    re.I,
)
_OURS = re.compile(r"(?:feedback|bounces|unsubscribe)\+", re.I)
_TAGS = re.compile(r"<[^>]*>")
_HTML_SPACE = re.compile(r"&nbsp;|&#160;", re.I)


@dataclass(frozen=True)
class Bounce:
    hard: bool
    recipient: str | None  # the address that could not be reached, lower-cased
    reason: str  # one line for staff: the server's words ("550 5.1.1 user unknown")


@dataclass(frozen=True)
class _Status:
    action: str
    status: str
    recipient: str | None
    diagnostic: str


def is_daemon(display: str, address: str) -> bool:
    """A sender that is a mail server, not a person."""
    local = address.rpartition("@")[0] if "@" in address else address
    return bool(_DAEMON_LOCAL.match(local.lower())) or bool(_DAEMON_NAME.search(display))


def null_sender(message: Message) -> bool:
    """Return-Path: <> — the null envelope sender of bounces and auto-replies (RFC 3834)."""
    return any(not value.strip("<> \t") for value in raw_values(message, "Return-Path"))


def bounce_subject(subject: str) -> bool:
    return not REPLY_PREFIX.match(subject) and bool(_BOUNCE_SUBJECT.search(subject))


def is_report(message: Message) -> bool:
    """A delivery status notification (RFC 3464) or a disposition notification (RFC 8098)."""
    return message.get_content_type() == "multipart/report" or any(
        part.get_content_type() == "message/delivery-status" for part in own_parts(message)
    )


def own_parts(message: Message, depth: int = 0) -> Iterator[Message]:
    """The leaf parts of the message itself, not of a message it carries (the returned
    original of a bounce, a forwarded message); message/* parts are yielded whole."""
    if depth > MAX_DEPTH:
        return
    if message.get_content_maintype() == "multipart" and message.is_multipart():
        for part in message.get_payload():
            if isinstance(part, Message):
                yield from own_parts(part, depth + 1)
    else:
        yield message


def part_text(part: Message, limit: int = MAX_TEXT) -> str:
    """A text part's content as text (its charset, gb2312 read as gb18030); HTML's tags out."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    text = decode_bytes(payload[:limit], part.get_content_charset() or None)
    if part.get_content_subtype() == "html":
        text = _HTML_SPACE.sub(" ", _TAGS.sub(" ", re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>", "\n", text)))
    return text


def own_text(message: Message) -> str:
    """The message's own text: its plain parts, else its HTML parts as text."""
    parts = [p for p in own_parts(message) if p.get_content_maintype() == "text"]
    plain = [p for p in parts if p.get_content_subtype() == "plain"]
    texts = [part_text(p) for p in (plain or parts)]
    return "\n".join(texts)[:MAX_TEXT]


def original_headers(message: Message) -> list[Message]:
    """The headers of the original message a bounce returns (message/rfc822,
    text/rfc822-headers), for the tokens and address it holds."""
    found: list[Message] = []
    for part in own_parts(message):
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global") and part.is_multipart():
            inner = part.get_payload(0)
            if isinstance(inner, Message):
                found.append(inner)
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/global-headers"):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                text = payload[:MAX_TEXT].decode("ascii", "surrogateescape")
                found.append(HeaderParser().parsestr(text, headersonly=True))
    return found


def _statuses(message: Message) -> list[_Status]:
    found: list[_Status] = []
    for part in own_parts(message):
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            blocks = [b for b in payload if isinstance(b, Message)]
        elif isinstance(payload, str):  # not parsed as header blocks: do it here
            blocks = [HeaderParser().parsestr(chunk) for chunk in re.split(r"\r?\n\r?\n", payload)]
        else:
            continue
        for block in blocks:
            action = header_text(block.get("Action", "")).lower()
            if not action:
                continue  # the per-message block
            recipient = None
            for name in ("Original-Recipient", "Final-Recipient", "X-Actual-Recipient"):
                value = header_text(block.get(name, ""))
                address = value.split(";", 1)[-1].strip().strip("<>").lower()
                if "@" in address:
                    recipient = address
                    break
            diagnostic = header_text(block.get("Diagnostic-Code", ""))
            diagnostic = re.sub(r"^\s*(smtp|x-[\w-]+)\s*;\s*", "", diagnostic, flags=re.I)
            found.append(_Status(action, header_text(block.get("Status", "")).strip(),
                                 recipient, diagnostic))
    return found


def _flufl(message: Message) -> tuple[set[str], set[str]]:
    """(temporary, permanent) failed addresses by flufl.bounce; none if it trips."""
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(message)
    except Exception as exc:  # a detector meeting a malformed message: not a bounce to it
        log.warning("bounce detectors failed on a message (%s)", type(exc).__name__)
        return set(), set()

    def text(addresses: frozenset[bytes]) -> set[str]:
        return {a.decode("ascii", "replace").strip("<>").lower() for a in addresses if b"@" in a}

    return text(temporary), text(permanent)


def _hard_by_status(status: str, words: str) -> bool:
    match = _ENHANCED.search(status)
    if match:
        if match.group(2) == "2" and match.group(3) == "2":
            return False  # mailbox full
        return match.group(1) == "5"
    return not _FULL.search(words)


def _hard_by_words(text: str) -> bool:
    if _DELAY.search(text[:4000]) or _FULL.search(text):
        return False
    enhanced = [m for m in _ENHANCED.finditer(text) if m.group(1) in "45"]
    if enhanced:
        return any(m.group(1) == "5" for m in enhanced)
    basic = list(_BASIC.finditer(text))
    if basic:
        return any(m.group(1) == "5" for m in basic)
    return True


def _reason(text: str) -> str:
    """One line for staff: the reason a report gives in words (退信原因：…), with the
    server's reply line (550 5.1.1 …); else the first line of the text."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    code = next((line for line in lines if _CODE_LINE.search(line)), "")
    words = ""
    for i, line in enumerate(lines):
        if re.search(r"退信原因|失败原因|原因|reason", line, re.I):
            rest = re.split(r"[:：]", line, maxsplit=1)
            if len(rest) == 2 and rest[1].strip():
                words = rest[1].strip()
            elif i + 1 < len(lines):
                words = lines[i + 1]
            break
    if words and code and code not in words and words not in code:
        return f"{words}（{code}）"[:MAX_REASON]
    return (words or code or (lines[0] if lines else ""))[:MAX_REASON]


def _labelled_recipient(text: str, exclude: set[str]) -> str | None:
    for match in _LABELLED_ADDRESS.finditer(text):
        address = match.group(1).lower().rstrip(".")
        if address not in exclude and not _OURS.match(address):
            return address
    return None


def _original_recipient(originals: list[Message]) -> str | None:
    for headers in originals:
        for _, address in email.utils.getaddresses([header_text(v) for v in headers.get_all("To", [])]):
            if "@" in address:
                return address.lower()
    return None


def detect(message: Message, *, sender: tuple[str, str], subject: str) -> Bounce | None:
    """The bounce this message is, or None. `sender`: (display name, address) of From."""
    machine = (
        is_report(message)
        or is_daemon(*sender)
        or bounce_subject(subject)
        or null_sender(message)
    )
    if not machine:
        # flufl.bounce's heuristic detectors also fire on a person's words ("user
        # unknown" quoted in a reply): only messages that look machine-made are asked.
        return None
    statuses = [s for s in _statuses(message) if s.action.startswith(("fail", "error", "delay"))]
    if is_report(message) and not statuses and _statuses(message):
        return None  # a success notice (delivered, relayed, expanded): not a bounce
    temporary, permanent = _flufl(message)
    heuristic = is_daemon(*sender) or bounce_subject(subject)
    if not (statuses or temporary or permanent or heuristic):
        return None
    text = own_text(message)
    originals = original_headers(message)
    if statuses:
        failed = [s for s in statuses if not s.action.startswith("delay")]
        chosen = failed or statuses
        hard = bool(failed) and any(
            _hard_by_status(s.status, s.diagnostic + " " + text) for s in failed
        )
        first = chosen[0]
        recipient = first.recipient
        reason = first.diagnostic or first.status or _reason(text)
    elif permanent or temporary:
        hard = bool(permanent) and not _FULL.search(text) and not _DELAY.search(subject)
        recipient = sorted(permanent or temporary)[0]
        reason = _reason(text)
    else:
        hard = _hard_by_words(subject + "\n" + text)
        recipient = None
        reason = _reason(text)
    if recipient is None:
        recipient = _original_recipient(originals) or _labelled_recipient(text, {sender[1]})
    return Bounce(hard=hard, recipient=recipient, reason=" ".join(reason.split())[:MAX_REASON])
