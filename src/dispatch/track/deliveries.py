"""A delivery found by its token, and a bounded cache of those lookups.

What a token names never changes (its delivery, reader and issue are fixed when it is
planned, and deliveries are never deleted while their issue can be read), except
`sent_at`, which is set once the message is handed over: a lookup that found no
`sent_at` yet is kept only for a few seconds. Unknown tokens are not cached: they cost
one indexed query, and caching them would let anyone fill the cache.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.db.models import Delivery
from dispatch.track.tokens import is_token

# Enough for every delivery of a large issue and then some: ~200 bytes an entry.
MAX_ENTRIES = 100_000
# How long a lookup made before the delivery was marked sent is believed.
UNSENT_SECONDS = 5.0
# SQLite allows 999 bound parameters in older builds; stay well under.
QUERY_CHUNK = 500


@dataclass(frozen=True)
class Delivered:
    """What the web app and the recorder need of the delivery behind a token."""

    delivery_id: int
    reader_id: int
    issue_id: int
    sent_at: datetime | None


def normal_token(text: str) -> str | None:
    """The token in a URL as stored (lower case), or None if it can't be one."""
    token = text.lower()
    return token if is_token(token) else None


class DeliveryLookup:
    """token → Delivered, an LRU safe to share between threads."""

    def __init__(self, max_entries: int = MAX_ENTRIES, unsent_seconds: float = UNSENT_SECONDS):
        self.max_entries = max_entries
        self.unsent_seconds = unsent_seconds
        self._entries: OrderedDict[str, tuple[Delivered, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.queries = 0  # lookups that went to the database (observable in tests)

    def cached(self, token: str) -> Delivered | None:
        """The cached lookup of a (normalized) token; None when it must be asked for."""
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return None
            delivered, expires = entry
            if expires and time.monotonic() > expires:
                del self._entries[token]
                return None
            self._entries.move_to_end(token)
            return delivered

    def _keep(self, token: str, delivered: Delivered) -> None:
        expires = 0.0 if delivered.sent_at else time.monotonic() + self.unsent_seconds
        with self._lock:
            self._entries[token] = (delivered, expires)
            self._entries.move_to_end(token)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def find(self, session: Session, token: str) -> Delivered | None:
        """The delivery behind a (normalized) token, from the cache or the database."""
        return self.find_many(session, [token]).get(token)

    def find_many(self, session: Session, tokens: Iterable[str]) -> dict[str, Delivered]:
        """The deliveries behind these (normalized) tokens; unknown ones are left out."""
        found: dict[str, Delivered] = {}
        missing: list[str] = []
        for token in dict.fromkeys(tokens):
            delivered = self.cached(token)
            if delivered is None:
                missing.append(token)
            else:
                found[token] = delivered
        for start in range(0, len(missing), QUERY_CHUNK):
            chunk = missing[start:start + QUERY_CHUNK]
            self.queries += 1
            rows = session.execute(
                select(
                    Delivery.token, Delivery.id, Delivery.reader_id, Delivery.issue_id,
                    Delivery.sent_at,
                ).where(Delivery.token.in_(chunk))
            ).all()
            for token, delivery_id, reader_id, issue_id, sent_at in rows:
                delivered = Delivered(delivery_id, reader_id, issue_id, sent_at)
                self._keep(token, delivered)
                found[token] = delivered
        return found
