"""What a received message is (a person's reply, an auto-reply, a bounce, a request to
unsubscribe) and which delivery it answers. Pure: bytes in, a `Classified` out.

The delivery is found by its token, in this order (the first that names a delivery in
the database wins; dispatch.feedback.match looks them up):

1. the address it was sent to: feedback+TOKEN@, bounces+TOKEN@ or unsubscribe+TOKEN@ in
   Delivered-To, X-Original-To, Envelope-To, To or Cc (a reply forwarded by a colleague
   still goes to feedback+TOKEN);
2. for a bounce, the headers of the returned original (its Message-ID <TOKEN@…>,
   Reply-To, Return-Path, List-Unsubscribe);
3. In-Reply-To and References holding our Message-ID <TOKEN@reply_domain>.

Failing all three, the store step matches the sender's address (the bounced address, for
a bounce) to a reader and takes that reader's latest email delivery.

Kinds, first match wins: a bounce (dispatch.feedback.bounces), an auto-reply
(dispatch.feedback.autoreplies), else a person's reply ("human"). A message to
unsubscribe+TOKEN@ — what a mail client's 退订 button sends, the List-Unsubscribe
mailto — that is not a bounce, or a person's reply to feedback+TOKEN@ that says only
退订 (取消订阅, TD, unsubscribe), is a request to unsubscribe.
"""

from __future__ import annotations

import codecs
import email
import email.policy
import hashlib
import logging
import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from typing import Literal

from dispatch.errors import Refused
from dispatch.feedback import autoreplies, bounces
from dispatch.feedback.headers import address_of, codec, first_text, raw_values
from dispatch.limits import EML_BYTES, too_large

log = logging.getLogger(__name__)

Kind = Literal["human", "auto_reply", "bounce"]
KINDS: tuple[Kind, ...] = ("human", "auto_reply", "bounce")

RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")
# The headers of a message we sent that hold its token (in a bounce's returned copy).
ORIGINAL_HEADERS = ("Message-ID", "Reply-To", "Return-Path", "List-Unsubscribe", "From")
# What a message must have at least one of to be taken for mail.
MAIL_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "Received", "Return-Path",
                "Delivered-To", "Sender")
MAX_MESSAGE_ID = 250  # longer: not believed, the message's hash stands in for it

_ADDRESS_TOKEN = re.compile(r"(?<![\w.+-])(feedback|bounces|unsubscribe)\+([a-z2-7]{32})@", re.I)
_ID_TOKEN = re.compile(r"<([a-z2-7]{32})@[^<>\s]+>")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_UNSUBSCRIBE_WORDS = frozenset({"退订", "取消订阅", "退订本刊", "不再订阅", "td", "unsubscribe"})
_PUNCTUATION = re.compile(r"[\s。.!！,，~～]+")


@dataclass(frozen=True)
class Classified:
    kind: Kind
    # Candidate delivery tokens, best first (see the module docstring); empty: none.
    tokens: tuple[str, ...]
    recipient: str | None  # the bounced address, or the address that wrote
    text: str  # a reply's own words (replies.reply_text); a bounce's reason
    subject: str
    sender: str | None  # the From address, lower-cased
    message_id: str | None  # <…> as received, when present and plausible
    hard: bool | None = None  # bounces: permanent (True) or temporary (False)
    unsubscribe: bool = False
    # How each token was found: "address", "original" or "references".
    found_by: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str | None:
        return self.tokens[0] if self.tokens else None


def source_key(raw: bytes, message_id: str | None) -> str:
    """Feedback.source_key: the message seen again stores nothing new."""
    if message_id:
        return f"imap:{message_id}"
    return "imap:sha256:" + hashlib.sha256(raw).hexdigest()


def parse(raw: bytes) -> Message:
    """The message (compat32: raw header values, never raises on malformed headers);
    Refused when over the size cap or not mail at all."""
    if len(raw) > EML_BYTES:
        raise Refused(too_large(len(raw), EML_BYTES, "邮件"))
    if not raw.strip():
        raise Refused("不是邮件：内容是空的")
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    present = {name.lower() for name in message}
    if not present & {h.lower() for h in MAIL_HEADERS}:
        raise Refused("不是邮件：开头没有邮件头（发件人、收件人、主题、日期等）")
    return message


def classify(raw: bytes) -> Classified:
    """What the message is; Refused (Chinese) when it is too large or not mail."""
    message = parse(raw)
    subject = first_text(message, "Subject")
    display, sender = address_of(message, "From")
    message_id = _message_id(message)

    bounce = bounces.detect(message, sender=(display, sender), subject=subject)
    kind: Kind
    if bounce is not None:
        kind = "bounce"
    elif (autoreplies.is_auto_reply(message, subject) or bounces.null_sender(message)
          or bounces.is_report(message) or bounces.is_daemon(display, sender)):
        # A report that is not a failure (delivered, a read receipt), or a mail server's
        # own notice: no person wrote it.
        kind = "auto_reply"
    else:
        kind = "human"

    found: dict[str, str] = {}
    to_unsubscribe: str | None = None
    for role, token in _address_tokens(message):
        found.setdefault(token, "address")
        if role == "unsubscribe" and to_unsubscribe is None:
            to_unsubscribe = token
    if bounce is not None:
        for headers in bounces.original_headers(message):
            for token in _original_tokens(headers):
                found.setdefault(token, "original")
    for name in ("In-Reply-To", "References"):
        for value in raw_values(message, name):
            for token in _ID_TOKEN.findall(value):
                found.setdefault(token, "references")
    tokens = list(found)
    if to_unsubscribe is not None:  # the unsubscribe address names the delivery first
        tokens.remove(to_unsubscribe)
        tokens.insert(0, to_unsubscribe)

    if bounce is not None:
        return Classified(
            kind="bounce", tokens=tuple(tokens), recipient=bounce.recipient, text=bounce.reason,
            subject=subject, sender=sender or None, message_id=message_id, hard=bounce.hard,
            found_by=found,
        )
    text = _reply_text(raw)
    # Nothing auto-replies to the unsubscribe address (auto-replies go to Return-Path,
    # Reply-To or From): whatever comes there, short of a bounce, asks to unsubscribe.
    unsubscribe = to_unsubscribe is not None or (
        kind == "human" and bool(tokens) and found[tokens[0]] == "address"
        and _PUNCTUATION.sub("", text).lower() in _UNSUBSCRIBE_WORDS
    )
    return Classified(
        kind=kind, tokens=tuple(tokens), recipient=sender or None, text=text, subject=subject,
        sender=sender or None, message_id=message_id, unsubscribe=unsubscribe, found_by=found,
    )


def _message_id(message: Message) -> str | None:
    for value in raw_values(message, "Message-ID"):
        match = _MESSAGE_ID.search(value)
        if match and len(match.group()) <= MAX_MESSAGE_ID:
            return match.group()
    return None


def _address_tokens(message: Message) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name in RECIPIENT_HEADERS:
        for value in raw_values(message, name):
            found.extend((role.lower(), token.lower()) for role, token in _ADDRESS_TOKEN.findall(value))
    return found


def _original_tokens(headers: Message) -> list[str]:
    found: list[str] = []
    for name in ORIGINAL_HEADERS:
        for value in raw_values(headers, name):
            found.extend(token.lower() for _, token in _ADDRESS_TOKEN.findall(value))
            found.extend(_ID_TOKEN.findall(value))
    return found


def _known(charset: str) -> str | None:
    try:
        return codecs.lookup(charset.strip().lower()).name
    except LookupError:
        return None


def _reply_text(raw: bytes) -> str:
    """replies.reply_text on the message as an EmailMessage, its Chinese charsets read as
    gb18030 and unknown ones as UTF-8 (get_content would raise on them)."""
    from dispatch.feedback.replies import reply_text

    try:
        message = email.message_from_bytes(raw, _class=EmailMessage, policy=email.policy.default)
        for part in message.walk():
            if part.get_content_maintype() != "text":
                continue
            declared = part.get_param("charset")
            if isinstance(declared, str) and _known(declared) != codec(declared):
                part.set_param("charset", codec(declared))
        assert isinstance(message, EmailMessage)
        return reply_text(message)
    except Exception as exc:  # a malformed part must not lose the message, only its text
        log.warning("reply text could not be read (%s)", type(exc).__name__)
        return ""
