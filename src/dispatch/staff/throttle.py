"""Sign-in, and a signed-in member's own password confirmed: the password check behind
the throttle.

After ACCOUNT_LIMIT failures for a name, or ADDRESS_LIMIT from one address, within WINDOW,
further attempts are refused unchecked until the oldest of them leaves the window. A name
no account has counts like one that has (the answer never tells which). A success clears
the name's count; the address's stays. Failures live in the database (login_failures), so
the limits hold across restarts and processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from dispatch.clock import as_utc
from dispatch.db.models import LoginFailure, Staff
from dispatch.staff import passwords

WINDOW = timedelta(minutes=15)
ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 20


@dataclass(frozen=True)
class Outcome:
    staff: Staff | None = None  # signed in
    wait_minutes: int = 0  # > 0: throttled, try again after this many minutes


def _wait(times: list[datetime], limit: int, now: datetime) -> timedelta | None:
    """How long until fewer than `limit` of `times` (newest first) are in the window."""
    if len(times) < limit:
        return None
    return times[limit - 1] + WINDOW - now


def sign_in(session: Session, name: str, password: str, address: str, now: float, *,
            signing_in: bool = True) -> Outcome:
    """The password of `name` checked behind the throttle. `signing_in=False`: the same
    check and counting for a signed-in member confirming their password (a new one of
    their own), which is not a sign-in (last_login_at stays). A failure is written in the
    caller's transaction: commit it even when the answer is no."""
    at = as_utc(now)
    since = at - WINDOW
    name = name.strip()[:100]
    address = address[:64]
    session.execute(delete(LoginFailure).where(LoginFailure.at < since))
    by_name = list(session.scalars(
        select(LoginFailure.at).where(
            LoginFailure.name == name, LoginFailure.counts_for_name, LoginFailure.at >= since
        ).order_by(LoginFailure.at.desc()).limit(ACCOUNT_LIMIT)
    ))
    by_address = list(session.scalars(
        select(LoginFailure.at).where(LoginFailure.address == address, LoginFailure.at >= since)
        .order_by(LoginFailure.at.desc()).limit(ADDRESS_LIMIT)
    ))
    waits = [w for w in (_wait(by_name, ACCOUNT_LIMIT, at), _wait(by_address, ADDRESS_LIMIT, at))
             if w is not None]
    if waits:
        return Outcome(wait_minutes=max(1, math.ceil(max(waits).total_seconds() / 60)))

    staff = session.scalar(select(Staff).where(Staff.name == name)) if name else None
    # An unknown name costs a verification too: the same time as a wrong password.
    ok = passwords.verify(staff.password_hash if staff else passwords.DUMMY_HASH, password)
    if staff is None or not ok or not staff.active:
        session.add(LoginFailure(at=at, name=name, address=address, counts_for_name=True))
        if staff is not None:
            staff.failed_logins += 1
            if len(by_name) + 1 >= ACCOUNT_LIMIT:
                staff.locked_until = (by_name[ACCOUNT_LIMIT - 2] if by_name else at) + WINDOW
        return Outcome()
    if passwords.needs_rehash(staff.password_hash):
        staff.password_hash = passwords.hash_password(password)
    session.execute(
        update(LoginFailure).where(LoginFailure.name == name).values(counts_for_name=False)
    )
    staff.failed_logins = 0
    staff.locked_until = None
    if signing_in:
        staff.last_login_at = at
    return Outcome(staff=staff)
