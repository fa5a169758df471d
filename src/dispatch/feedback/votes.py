"""A reader's 有用 / 没用: one vote per delivery and article, or per delivery on the whole
issue (WeChat Work's card has no article); a second vote changes the first. The one place
for that rule: the web's vote links (dispatch.web.votes) and the WeChat Work callback
(dispatch.feedback.wecom_inbound) both store through it. The database holds it too: the
partial unique indexes uq_feedback_vote (delivery, article) and uq_feedback_issue_vote
(delivery, no article), so a concurrent first vote makes `set_vote` raise IntegrityError
and the caller's next try changes the row that won."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.db.models import VOTE_KINDS, Feedback


@dataclass(frozen=True)
class Vote:
    delivery_id: int
    reader_id: int | None
    issue_id: int | None
    article_id: int | None  # None: the whole issue
    channel: str  # email | wecom | web: where the vote was cast
    value: str  # one of VOTE_KINDS


def set_vote(session: Session, vote: Vote, now: datetime) -> None:
    """Insert the vote, or change the one there."""
    if vote.value not in VOTE_KINDS:
        raise ValueError(f"not a vote: {vote.value!r}")
    on = (Feedback.article_id.is_(None) if vote.article_id is None
          else Feedback.article_id == vote.article_id)
    row = session.scalars(
        select(Feedback)
        .where(Feedback.delivery_id == vote.delivery_id, on, Feedback.kind.in_(VOTE_KINDS))
        .limit(1)
    ).first()
    if row is None:
        session.add(Feedback(
            reader_id=vote.reader_id, issue_id=vote.issue_id, delivery_id=vote.delivery_id,
            article_id=vote.article_id, channel=vote.channel, kind=vote.value, text="",
            received_at=now,
        ))
    else:
        row.kind, row.channel, row.received_at = vote.value, vote.channel, now
    session.flush()  # a concurrent first vote's row makes this raise here
