"""What readers send the bulletin's WeChat Work app, once the callback has checked and
decrypted it (dispatch.web.wecom_callback): parsing (pure) and storing. The caller owns
the transaction (one per message) and sends the replies this asks for, off the request.

- Each message or event is accepted once: a ``WecomInbound`` row keyed ``msg:<MsgId>``
  for a message, ``event:<hash>`` for an event (of FromUserName, CreateTime, Event, TaskId
  and EventKey: events have no MsgId, and the hash keeps the userid out of the key). A
  replay (WeChat Work retries a callback it had no answer to in 5 s) stores nothing new.
- A text from a reader (``Reader.wecom_userid``, compared case-insensitively) is a
  Feedback row (kind ``reply``, channel ``wecom``, source_key ``wecom:<MsgId>``) tied to
  the latest issue sent to them by WeChat Work (none: issue and delivery empty).
  A text from a userid that is no reader is kept too, reader empty and the userid as its
  sender: someone in the organisation wrote to the bulletin (a new colleague, an
  assistant, a reader whose account changed), and staff would rather read it and add
  them than have it dropped unseen.
- ``退订`` (or 取消订阅, TD; full-width forms and spaces allowed) asks the reader to confirm
  by replying ``确认退订``; that request is the stored Feedback row itself. ``确认退订``
  within CONFIRM_WINDOW of it removes WeChat Work from the reader's channels (logged as a
  reader change, source ``wecom``); if it was their only channel, they are unsubscribed
  (readers.apply.set_status). The reply says it is done and links their preferences page
  to come back. ``确认退订`` is a command, not feedback: the change log is its record.
- A ``template_card_event`` (a press of 有用 / 没用 on the card, render.wecom) carries the
  delivery's token as TaskId and the vote as EventKey: it is the reader's vote on the
  whole issue (article empty), one per delivery; a second press changes it (the card
  shows 已反馈：有用 in place of its buttons once the press is stored, through
  update_template_card with the event's ResponseCode). A press on a
  token that is not a WeChat Work delivery of that very userid is ignored.
- Anything else (images, voice, enter_agent, …) is accepted, logged and ignored.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET  # type: ignore[import-untyped]
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from dispatch.clock import utcnow
from dispatch.db.models import VOTE_KINDS, Delivery, Feedback, Reader, WecomInbound
from dispatch.feedback.votes import Vote, set_vote
from dispatch.masthead import BULLETIN
from dispatch.readers import ReaderRecord
from dispatch.readers.apply import set_status, update_reader
from dispatch.track.links import Links

log = logging.getLogger(__name__)

CHANNEL = "wecom"
CONFIRM_WINDOW = timedelta(minutes=30)
UNSUBSCRIBE_WORDS = frozenset({"退订", "取消订阅", "TD"})
CONFIRM_WORDS = frozenset({"确认退订"})
CARD_EVENT = "template_card_event"
# What a card shows in place of its buttons once pressed (update_template_card).
VOTED = {"useful": "已反馈：有用", "not_useful": "已反馈：没用"}
KEY_MAX = 300  # WecomInbound.key
_TRAILING = "。.！!～~"

Outcome = Literal[
    "duplicate", "reply", "unsubscribe_asked", "unsubscribed", "no_pending", "vote", "ignored"
]


class NotAMessage(ValueError):
    """The decrypted text is not a WeChat Work message (bad XML, a DTD, no type)."""


@dataclass(frozen=True)
class Inbound:
    """One decrypted message or event, as WeChat Work's documentation names its fields."""

    to_user: str  # ToUserName: the corp id
    from_user: str  # FromUserName: the member's userid
    create_time: str
    msg_type: str  # text, image, event, …
    msg_id: str = ""
    content: str = ""  # a text's
    event: str = ""
    event_key: str = ""
    task_id: str = ""
    card_type: str = ""
    agent_id: str = ""  # AgentID: the app it was sent to
    response_code: str = ""  # a card press's: lets the card be updated, once
    raw: bytes = b""

    @property
    def key(self) -> str:
        """What makes a replay the same message: WeChat Work's advice (MsgId for
        messages; FromUserName + CreateTime for events, here with what a card press adds)."""
        if self.msg_id and len(self.msg_id) <= KEY_MAX - 4:
            return f"msg:{self.msg_id}"
        parts = (self.from_user, self.create_time, self.msg_type, self.event, self.task_id,
                 self.event_key, self.msg_id)
        return "event:" + hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


def safe_xml(data: bytes) -> Element:
    """XML from outside, the callback's body and what it decrypts to: a DOCTYPE or an
    entity is refused (defusedxml), as is anything that is not XML; raises NotAMessage."""
    try:
        root: Element = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True,
                                          forbid_external=True)
    except Exception as exc:  # ParseError, DTDForbidden, EntitiesForbidden, …
        raise NotAMessage(type(exc).__name__) from None
    return root


def text_of(root: Element, tag: str) -> str:
    node = root.find(tag)
    return (node.text or "").strip() if node is not None else ""


def parse(xml: bytes) -> Inbound:
    """The decrypted XML of a message or event; raises NotAMessage."""
    root = safe_xml(xml)
    msg_type = text_of(root, "MsgType")
    if root.tag != "xml" or not msg_type or not text_of(root, "FromUserName"):
        raise NotAMessage("no MsgType or FromUserName")
    content = root.find("Content")
    return Inbound(
        to_user=text_of(root, "ToUserName"),
        from_user=text_of(root, "FromUserName"),
        create_time=text_of(root, "CreateTime"),
        msg_type=msg_type,
        msg_id=text_of(root, "MsgId"),
        # The reader's words as written (not stripped: line breaks are theirs).
        content=(content.text or "") if content is not None else "",
        event=text_of(root, "Event"),
        event_key=text_of(root, "EventKey"),
        task_id=text_of(root, "TaskId"),
        card_type=text_of(root, "CardType"),
        agent_id=text_of(root, "AgentID"),
        response_code=text_of(root, "ResponseCode"),
        raw=xml,
    )


def command_of(text: str) -> str:
    """A short text as a command reads it: full-width forms folded (ＴＤ, 　), spaces and
    trailing 。！ dropped, Latin upper-cased. 退订 / TD / 确认退订 are compared this way."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(folded.split()).rstrip(_TRAILING).upper()


def is_unsubscribe(text: str) -> bool:
    return command_of(text) in UNSUBSCRIBE_WORDS


def is_confirmation(text: str) -> bool:
    return command_of(text) in CONFIRM_WORDS


# --- what readers are told ------------------------------------------------------------

def ask_to_confirm() -> str:
    return (f"您回复了“退订”。如确定不再通过企业微信接收《{BULLETIN}》，"
            f"请在 30 分钟内回复“确认退订”。如不退订，请忽略本消息。")


def unsubscribed_text(preferences_url: str | None, *, other_channels: bool) -> str:
    done = (f"已为您退订企业微信推送，今后不再通过企业微信向您发送《{BULLETIN}》"
            + ("，其他接收方式不变。" if other_channels else "。"))
    if preferences_url:
        return done + f"如需恢复，请打开：{preferences_url}"
    return done + "如需恢复，请联系编辑部。"


def not_receiving_text(preferences_url: str | None) -> str:
    text = f"您目前没有通过企业微信接收《{BULLETIN}》，无需退订。"
    return text + (f"如需调整，请打开：{preferences_url}" if preferences_url else "")


def no_pending_text() -> str:
    return "没有找到 30 分钟内的退订请求。如需退订，请先回复“退订”。"


# --- storing ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    """A text to the member."""

    touser: str
    content: str


@dataclass(frozen=True)
class CardUpdate:
    """The member's card after a press: `text` where its buttons were."""

    touser: str
    response_code: str
    text: str


@dataclass(frozen=True)
class Stored:
    outcome: Outcome
    replies: Sequence[Reply | CardUpdate] = field(default_factory=tuple)
    feedback_id: int | None = None


@dataclass(frozen=True)
class Place:
    """Where links for the reader point: [web] base_url and [smtp] reply_domain."""

    base_url: str
    reply_domain: str

    def preferences(self, token: str | None) -> str | None:
        return Links(self.base_url, self.reply_domain, token).preferences() if token else None


def store(session: Session, inbound: Inbound, place: Place, now: datetime | None = None) -> Stored:
    """Accept one message or event; what it stored and the replies to send."""
    now = now or utcnow()
    key = inbound.key
    if session.get(WecomInbound, key) is not None:
        return Stored("duplicate")
    session.add(WecomInbound(key=key, received_at=now))
    session.flush()  # a concurrent copy of this request fails here, before anything else
    reader = _reader(session, inbound.from_user)
    if inbound.msg_type == "text":
        return _text_message(session, inbound, reader, place, now)
    if inbound.msg_type == "event" and inbound.event == CARD_EVENT:
        return _card_event(session, inbound, reader, now)
    log.info("wecom: ignored %s %s", inbound.msg_type, inbound.event or "")
    return Stored("ignored")


def _reader(session: Session, userid: str) -> Reader | None:
    if not userid:
        return None
    return session.scalars(
        select(Reader).options(selectinload(Reader.channel_rows))
        .where(func.lower(Reader.wecom_userid) == userid.lower()).limit(1)
    ).first()


def _latest_delivery(session: Session, reader_id: int) -> Delivery | None:
    """The reader's latest issue sent to them by WeChat Work."""
    return session.scalars(
        select(Delivery)
        .where(Delivery.reader_id == reader_id, Delivery.channel == CHANNEL,
               Delivery.state == "sent")
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc()).limit(1)
    ).first()


def _latest_token(session: Session, reader_id: int) -> str | None:
    """The token of the reader's latest delivery of any channel: their preferences page."""
    return session.scalar(
        select(Delivery.token).where(Delivery.reader_id == reader_id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(1)
    )


def _clean(text: str) -> str:
    return text.replace("\x00", "")  # PostgreSQL's text holds no NUL


def _text_message(
    session: Session, inbound: Inbound, reader: Reader | None, place: Place, now: datetime,
) -> Stored:
    if reader is not None and is_confirmation(inbound.content):
        return _confirm(session, inbound, reader, place, now)
    delivery = _latest_delivery(session, reader.id) if reader is not None else None
    row = Feedback(
        reader_id=reader.id if reader is not None else None,
        issue_id=delivery.issue_id if delivery is not None else None,
        delivery_id=delivery.id if delivery is not None else None,
        article_id=None,
        channel=CHANNEL,
        kind="reply",
        text=_clean(inbound.content),
        sender=_clean(inbound.from_user)[:254],
        raw=inbound.raw,
        source_key=f"wecom:{inbound.msg_id}"[:300] if inbound.msg_id else None,
        received_at=now,
    )
    session.add(row)
    session.flush()
    if reader is None or not is_unsubscribe(inbound.content):
        log.info("wecom: reply %s stored (reader %s)", row.id, reader.id if reader else "unknown")
        return Stored("reply", feedback_id=row.id)
    if reader.status == "unsubscribed" or CHANNEL not in reader.channels:
        url = place.preferences(_latest_token(session, reader.id))
        return Stored("reply", (Reply(inbound.from_user, not_receiving_text(url)),), row.id)
    log.info("wecom: reader %s asked to unsubscribe; confirmation requested", reader.id)
    return Stored("unsubscribe_asked", (Reply(inbound.from_user, ask_to_confirm()),), row.id)


def _confirm(
    session: Session, inbound: Inbound, reader: Reader, place: Place, now: datetime,
) -> Stored:
    recent = session.scalars(
        select(Feedback.text).where(
            Feedback.reader_id == reader.id, Feedback.channel == CHANNEL,
            Feedback.kind == "reply", Feedback.received_at >= now - CONFIRM_WINDOW,
        ).order_by(Feedback.received_at.desc()).limit(20)
    ).all()
    if not any(is_unsubscribe(text) for text in recent):
        return Stored("no_pending", (Reply(inbound.from_user, no_pending_text()),))
    url = place.preferences(_latest_token(session, reader.id))
    others = tuple(c for c in reader.channels if c != CHANNEL)
    if CHANNEL in reader.channels and reader.status != "unsubscribed":
        if others:
            update_reader(session, reader, ReaderRecord(channels=others), source="wecom")
        else:
            set_status(session, reader, "unsubscribed", source="wecom")
        log.info("wecom: reader %s unsubscribed from WeChat Work", reader.id)
    reply = unsubscribed_text(url, other_channels=bool(others))
    return Stored("unsubscribed", (Reply(inbound.from_user, reply),))


def _card_event(session: Session, inbound: Inbound, reader: Reader | None, now: datetime) -> Stored:
    value = inbound.event_key
    if reader is None or value not in VOTE_KINDS:
        log.info("wecom: card event ignored (%s)", "no reader" if reader is None else "unknown key")
        return Stored("ignored")
    delivery = session.scalars(
        select(Delivery).where(
            Delivery.token == inbound.task_id.lower(), Delivery.channel == CHANNEL,
            Delivery.reader_id == reader.id,
        ).with_for_update()  # two presses at once: one inserts, the other changes it
    ).first()
    if delivery is None:
        log.info("wecom: card event for no delivery of reader %s ignored", reader.id)
        return Stored("ignored")
    set_vote(session, Vote(delivery.id, delivery.reader_id, delivery.issue_id, None, CHANNEL,
                           value), now)
    log.info("wecom: issue vote by delivery %s: %s", delivery.id, value)
    # The card then says what was recorded, in place of its buttons.
    done = (CardUpdate(inbound.from_user, inbound.response_code, VOTED[value]),)
    return Stored("vote", done if inbound.response_code else ())
