"""Signed form values: the one place for the signing key and the format of what it signs.

A reader page's form (preferences, a comment under a vote) carries a value signed for its
purpose and its delivery's token, with the time it was made: a form posted from another
site, for another token or long after, is refused. The key is $DISPATCH_SECRET_KEY when
set; otherwise one is made at random the first time and kept in the database (site_keys),
so every process on the database signs alike and a restart does not void open forms.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dispatch.db.models import SiteKey
from dispatch.db.session import transaction

KEY_NAME = "form-signing"
# A form left open on a phone overnight still posts; one from last week is refused.
MAX_AGE_SECONDS = 7 * 24 * 3600


def load_key(sessions: sessionmaker[Session], configured: str) -> bytes:
    """The signing key: the configured secret, else the one kept in the database."""
    if configured:
        return configured.encode("utf-8")
    stored = _stored(sessions)
    if stored is None:
        try:
            with transaction(sessions) as session:
                session.add(SiteKey(name=KEY_NAME, value=secrets.token_urlsafe(48)))
        except IntegrityError:
            pass  # another process made it first: use theirs
        stored = _stored(sessions)
        assert stored is not None
    return stored.encode("ascii")


def _stored(sessions: sessionmaker[Session]) -> str | None:
    with sessions() as session:
        return session.scalar(select(SiteKey.value).where(SiteKey.name == KEY_NAME))


def _mac(key: bytes, purpose: str, subject: str, stamp: str) -> str:
    digest = hmac.new(key, f"{purpose}\n{subject}\n{stamp}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode("ascii")


def sign(key: bytes, purpose: str, subject: str, now: float | None = None) -> str:
    """`STAMP.MAC`: STAMP the Unix time in base 36, MAC over purpose, subject and stamp."""
    stamp = _base36(int(time.time() if now is None else now))
    return f"{stamp}.{_mac(key, purpose, subject, stamp)}"


def verify(
    key: bytes, purpose: str, subject: str, value: str,
    max_age: float = MAX_AGE_SECONDS, now: float | None = None,
) -> bool:
    stamp, dot, mac = value.partition(".")
    if not dot or not stamp.isalnum() or len(stamp) > 12:
        return False
    if not hmac.compare_digest(mac.encode(), _mac(key, purpose, subject, stamp).encode()):
        return False
    age = (time.time() if now is None else now) - int(stamp, 36)
    return -300 <= age <= max_age  # a few minutes of clock skew between processes


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
