"""The staff web's session cookie and form tokens, signed by dispatch.track.signing (the
service's one key and format).

Cookie: `ID.EPOCH.STAMP.MAC`, STAMP the time it was issued; it is good for MAX_AGE and
while the account is active and its session_epoch is still EPOCH. A form token is signed
for the cookie's value itself, so it is good only within that session.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from dispatch.track import signing

COOKIE = "dispatch_staff"
LOGIN_COOKIE = "dispatch_login"  # the sign-in page's: what its form token is bound to
MAX_AGE = 8 * 3600
SESSION_PURPOSE = "staff-session"
CSRF_PURPOSE = "staff-csrf"
LOGIN_PURPOSE = "staff-login"


@dataclass(frozen=True)
class Claim:
    staff_id: int
    epoch: int


def issue(key: bytes, staff_id: int, epoch: int, now: float) -> str:
    subject = f"{staff_id}.{epoch}"
    return f"{subject}.{signing.sign(key, SESSION_PURPOSE, subject, now)}"


def read(key: bytes, value: str, now: float) -> Claim | None:
    """The cookie's account and epoch if it is genuine and unexpired; else None."""
    parts = value.split(".")
    if len(parts) != 4 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    if len(parts[0]) > 12 or len(parts[1]) > 12:
        return None
    subject = f"{parts[0]}.{parts[1]}"
    if not signing.verify(key, SESSION_PURPOSE, subject, f"{parts[2]}.{parts[3]}",
                          max_age=MAX_AGE, now=now):
        return None
    return Claim(int(parts[0]), int(parts[1]))


def form_token(key: bytes, cookie: str, now: float) -> str:
    return signing.sign(key, CSRF_PURPOSE, cookie, now)


def form_token_ok(key: bytes, cookie: str, token: str, now: float) -> bool:
    return signing.verify(key, CSRF_PURPOSE, cookie, token, max_age=MAX_AGE, now=now)


def new_login_nonce() -> str:
    """The sign-in page's own cookie value (LOGIN_COOKIE): a random word the browser keeps,
    which the form's token is signed for, as a session's forms are for its cookie."""
    return secrets.token_urlsafe(18)


def login_nonce_ok(value: str) -> bool:
    return 16 <= len(value) <= 64 and all(c.isalnum() or c in "-_" for c in value)


def login_token(key: bytes, nonce: str, now: float) -> str:
    """The sign-in form's token: no session yet, so signed for the page's own cookie; a
    page of another browser (another site's hidden form) carries a token for another one."""
    return signing.sign(key, LOGIN_PURPOSE, nonce, now)


def login_token_ok(key: bytes, nonce: str, token: str, now: float) -> bool:
    return login_nonce_ok(nonce) and signing.verify(key, LOGIN_PURPOSE, nonce, token,
                                                    max_age=MAX_AGE, now=now)
