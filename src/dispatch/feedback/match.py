"""Which delivery (and reader) a classified message answers: its tokens, else its address.

Reads only. The tokens are tried in the classifier's order; the first that names a
delivery wins. Without one, the address (the bounced address of a bounce, the sender of
anything else) is looked up among readers' emails, case-insensitively, and that reader's
latest email delivery is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatch.db.models import Delivery, Reader
from dispatch.feedback.classify import Classified


@dataclass(frozen=True)
class Match:
    delivery: Delivery | None
    reader: Reader | None
    token: str | None  # the token that matched, when one did
    # How: "address", "original", "references" (where the token was), "sender"; None: nobody.
    by: str | None

    @property
    def issue_id(self) -> int | None:
        return self.delivery.issue_id if self.delivery is not None else None


NOBODY = Match(None, None, None, None)


def find(session: Session, classified: Classified) -> Match:
    if classified.tokens:
        rows = session.scalars(select(Delivery).where(Delivery.token.in_(classified.tokens)))
        by_token = {d.token: d for d in rows}
        for token in classified.tokens:
            delivery = by_token.get(token)
            if delivery is not None:
                reader = session.get(Reader, delivery.reader_id)
                return Match(delivery, reader, token, classified.found_by.get(token, "address"))
    address = classified.recipient
    if not address:
        return NOBODY
    readers = session.scalars(
        select(Reader).where(func.lower(Reader.email) == address.lower()).limit(2)
    ).all()
    if len(readers) != 1:
        return NOBODY
    [reader] = readers
    latest = session.scalars(
        select(Delivery)
        .where(Delivery.reader_id == reader.id, Delivery.channel == "email")
        .order_by(Delivery.id.desc())
        .limit(1)
    ).first()
    return Match(latest, reader, None, "sender")
