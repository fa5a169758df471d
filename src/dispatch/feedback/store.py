"""A classified message into the database: one Feedback row, and what it means for the
reader. The caller owns the transaction (one per message).

- Each message is stored once: Feedback.source_key is "imap:<Message-ID>" (a hash of
  the bytes when there is none); seen again, nothing is stored or changed.
- A hard bounce marks its delivery bounced (Delivery.bounced_at; the state stays sent)
  and counts against the reader — once per delivery, however many reports come back for
  it. At [feedback] bounce_limit hard-bounced deliveries in a row the reader's email is
  suspended (Reader.email_suspended_at) and the change is logged (ReaderChange source
  "bounce", field "email_suspended_at"). Staff lift it.
- "In a row": a reply or an auto-reply from the reader shows their mailbox takes mail
  again and sets the count back to 0 (unless suspended already: then staff decide). A
  soft bounce (mailbox full, a delay) neither counts nor resets; nor does a send, as a
  bounce comes back after it.
- A request to unsubscribe (classify's `unsubscribe`) whose token names a delivery sets
  that reader unsubscribed (readers.apply.set_status, source "mail"); the change log is
  its record, no Feedback row is kept. One that names no delivery is kept as a reply,
  for staff to act on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.clock import utcnow
from dispatch.db.models import Feedback, Reader
from dispatch.feedback.classify import Classified, source_key
from dispatch.feedback.match import Match, find

log = logging.getLogger(__name__)

FEEDBACK_KIND = {"human": "reply", "auto_reply": "auto_reply", "bounce": "bounce"}

Outcome = Literal["reply", "auto_reply", "bounce", "unsubscribed", "duplicate"]


@dataclass(frozen=True)
class Effect:
    """What storing a message does to its reader and delivery, decided before anything is
    written (`dispatch inbox classify` shows it without writing)."""

    unsubscribe: bool = False  # set the reader unsubscribed (no Feedback row)
    count_bounce: bool = False  # mark the delivery bounced, count it against the reader
    bounces_after: int | None = None  # the reader's count then
    suspend: bool = False  # and suspend their email
    reset_bounces: bool = False  # the reader's mailbox answered: the count starts over


def effect(classified: Classified, match: Match, bounce_limit: int) -> Effect:
    reader, delivery = match.reader, match.delivery
    if classified.unsubscribe and _names_the_reader(classified, match):
        return Effect(unsubscribe=True)
    if reader is None:
        return Effect()
    count = reader.email_bounces or 0
    if classified.kind == "bounce":
        if not classified.hard or delivery is None or delivery.bounced_at is not None:
            return Effect()
        return Effect(count_bounce=True, bounces_after=count + 1,
                      suspend=count + 1 >= bounce_limit and reader.email_suspended_at is None)
    return Effect(reset_bounces=count > 0 and reader.email_suspended_at is None)


@dataclass(frozen=True)
class Stored:
    outcome: Outcome
    matched: bool  # tied to a delivery or a reader
    feedback_id: int | None = None
    hard: bool = False  # a hard bounce
    suspended: bool = False  # this bounce suspended the reader's email


def store(
    session: Session, classified: Classified, raw: bytes, *, bounce_limit: int,
    now: datetime | None = None,
) -> Stored:
    now = now or utcnow()
    match = find(session, classified)
    todo = effect(classified, match, bounce_limit)
    if todo.unsubscribe:
        assert match.reader is not None
        from dispatch.readers.apply import set_status

        set_status(session, match.reader, "unsubscribed", source="mail")
        return Stored("unsubscribed", matched=True)

    key = source_key(raw, classified.message_id)
    if session.scalar(select(Feedback.id).where(Feedback.source_key == key)) is not None:
        return Stored("duplicate", matched=match.by is not None)
    kind = FEEDBACK_KIND[classified.kind]
    row = Feedback(
        reader_id=match.reader.id if match.reader else None,
        issue_id=match.issue_id,
        delivery_id=match.delivery.id if match.delivery else None,
        article_id=None,
        channel="email",
        kind=kind,
        text=_clean(classified.text),
        sender=_clean(classified.sender or "")[:254] or None,
        subject=_clean(classified.subject)[:500],
        raw=raw,
        source_key=key,
        received_at=now,
    )
    session.add(row)
    reader, delivery = match.reader, match.delivery
    if todo.count_bounce and reader is not None and delivery is not None:
        delivery.bounced_at = now
        reader.email_bounces = todo.bounces_after or 0
        if todo.suspend:
            _suspend(session, reader, now)
    elif todo.reset_bounces and reader is not None:
        reader.email_bounces = 0
    session.flush()
    outcome: Outcome = "reply" if kind == "reply" else ("bounce" if kind == "bounce" else "auto_reply")
    return Stored(outcome, matched=match.by is not None, feedback_id=row.id,
                  hard=bool(classified.hard), suspended=todo.suspend)


def _clean(text: str) -> str:
    # PostgreSQL's text holds no NUL, and a message may carry one.
    return text.replace("\x00", "")


def _names_the_reader(classified: Classified, match: Match) -> bool:
    """The request's own token (the unsubscribe+ address, or feedback+ of a reply that
    says 退订) named the delivery: not a References header, not the sender's address."""
    return (
        match.reader is not None and match.token is not None
        and match.token == classified.token and match.by == "address"
    )


def _suspend(session: Session, reader: Reader, now: datetime) -> None:
    from dispatch.readers.changes import suspend_email

    suspend_email(session, reader, now, source="bounce")
