"""A stored feedback message (Feedback.raw) as staff read it: never as the sender's HTML.

- An email: its headers decoded (RFC 2047 words, 8-bit bytes, Chinese charsets: the
  inbox's own rules, feedback.headers) under Chinese names; its text — the plain-text
  body when it has one, else its HTML as text (feedback.html_text, the quoted original
  kept: this is the whole message); the attachments by name, type and size. The bodies
  are the ones the inbox reads a reply from (feedback.replies.bodies), so what staff see
  is what the reply's text was taken from.
- A WeChat Work message: the stored XML (as the callback decrypted it) read safely
  (defusedxml) into its sender, time, type and content.
- Feedback left on a reader page keeps no message: nothing to show.

Pure: bytes in, text out. A page puts the text in a <pre>, escaped like any text.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message

from dispatch import clock
from dispatch.feedback.headers import header_text, raw_values
from dispatch.feedback.html_text import html_lines
from dispatch.feedback.replies import bodies
from dispatch.feedback.wecom_inbound import NotAMessage, safe_xml, text_of
from dispatch.report.words import kind_word

# Headers shown, in this order, with the names staff read.
EMAIL_HEADERS = (
    ("From", "发件人"), ("Sender", "代发人"), ("Reply-To", "回复地址"), ("To", "收件人"),
    ("Cc", "抄送"), ("Date", "日期"), ("Subject", "主题"),
)
WECOM_TYPES = {
    "text": "文字", "image": "图片", "voice": "语音", "video": "视频", "file": "文件",
    "location": "位置", "link": "链接", "event": "事件",
}
WECOM_EVENTS = {"template_card_event": "卡片按钮", "enter_agent": "进入应用",
                "subscribe": "关注", "unsubscribe": "取消关注", "click": "菜单"}


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    size: int  # bytes, decoded

    @property
    def size_words(self) -> str:
        """12 KB, 1.5 MB: as a file manager writes sizes."""
        if self.size >= 1 << 20:
            return f"{self.size / (1 << 20):.1f} MB"
        return f"{max(1, round(self.size / 1024))} KB"


@dataclass(frozen=True)
class MessageView:
    kind: str  # "email", "wecom", or "none" (nothing stored)
    headers: list[tuple[str, str]] = field(default_factory=list)  # (name, value)
    body: str = ""
    from_html: bool = False  # the body is the HTML's text (no plain-text body)
    attachments: list[Attachment] = field(default_factory=list)
    unreadable: bool = False  # stored, but not as a message of its kind
    size: int = 0  # of the stored bytes

    @property
    def suffix(self) -> str:
        return ".xml" if self.kind == "wecom" else ".eml"

    @property
    def media_type(self) -> str:
        return "application/xml" if self.kind == "wecom" else "message/rfc822"


def view(raw: bytes | None, channel: str) -> MessageView:
    """What `raw` (a Feedback row's, of `channel`) holds, for reading."""
    if not raw:
        return MessageView("none")
    if channel == "wecom":
        return wecom_view(raw)
    return email_view(raw)


def email_view(raw: bytes) -> MessageView:
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    headers = []
    for name, shown in EMAIL_HEADERS:
        for value in raw_values(message, name):
            text = _date(value) if name == "Date" else header_text(value)
            if text:
                headers.append((shown, text))
    html, plain = bodies(message)
    from_html = not plain.strip() and bool(html.strip())
    if from_html:
        lines, _ = html_lines(html, cut=False)
        body = "\n".join(line for line in lines if line is not None)
    else:
        body = plain.replace("\r\n", "\n").replace("\r", "\n")
    return MessageView("email", headers, body.strip("\n"), from_html,
                       _attachments(message), size=len(raw))


def _date(value: str) -> str:
    """A Date header as Beijing time, 2026年12月1日 08:30; as written if it is no date."""
    text = header_text(value)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return text
    if when.tzinfo is None:  # -0000: UTC, its zone unknown
        when = when.replace(tzinfo=UTC)
    return clock.cn_time(when.astimezone(UTC).replace(tzinfo=None))


def _attachments(message: Message) -> list[Attachment]:
    out = []
    for part in message.walk():
        if part.is_multipart():
            continue
        try:
            filename = part.get_filename()
            attached = part.get_content_disposition() == "attachment"
            content_type = part.get_content_type()
            payload = part.get_payload(decode=True)
        except (ValueError, TypeError, AttributeError, IndexError, LookupError):
            continue
        if filename or attached:
            name = header_text(filename) if filename else "（未命名）"
            size = len(payload) if isinstance(payload, bytes) else 0
            out.append(Attachment(name, content_type, size))
    return out


def wecom_view(raw: bytes) -> MessageView:
    try:
        root = safe_xml(raw)
    except NotAMessage:
        return MessageView("wecom", unreadable=True, size=len(raw))
    headers = [("发送人", text_of(root, "FromUserName"))]
    stamp = text_of(root, "CreateTime")
    if stamp.isdigit():
        when = datetime.fromtimestamp(int(stamp), UTC).replace(tzinfo=None)
        headers.append(("时间", clock.cn_time(when)))
    msg_type = text_of(root, "MsgType")
    headers.append(("类型", WECOM_TYPES.get(msg_type, msg_type)))
    event = text_of(root, "Event")
    if event:
        headers.append(("事件", WECOM_EVENTS.get(event, event)))
    key = text_of(root, "EventKey")
    if key:  # a card's button: the vote as Feedback.kind stores it
        headers.append(("按钮", kind_word(key)))
    content = root.find("Content")
    body = (content.text or "") if content is not None else ""
    return MessageView("wecom", [(n, v) for n, v in headers if v], body, size=len(raw))
