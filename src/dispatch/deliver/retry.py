"""The retry policy: the one place for backoff, jitter and the horizon.

A temporary failure (a full mailbox, a greylisting server, WeChat Work's rate limit) is
tried again later: 1 min, 2, 4, 8 … capped at 1 h, each with *equal jitter* (somewhere
between half the step and the whole step) so that rows failing together do not come back
together. Past the horizon (2 days from the delivery's first attempt, by default) a
temporary failure counts as final.

Pure: time and randomness come from the caller.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

BASE = timedelta(minutes=1)
CAP = timedelta(hours=1)
HORIZON = timedelta(days=2)

_system_rng = random.SystemRandom()


def step(attempt: int, base: timedelta = BASE, cap: timedelta = CAP) -> timedelta:
    """The un-jittered wait after the `attempt`-th try (1-based): base · 2^(attempt-1),
    capped (at an hour for deliveries). `base` is 1 min unless the operator (or a test)
    says otherwise."""
    n = max(attempt, 1) - 1
    if n >= 32:  # far past the cap; avoid huge powers
        return cap
    return min(base * (1 << n), cap)


def backoff(
    attempt: int,
    rng: random.Random | None = None,
    base: timedelta = BASE,
    cap: timedelta = CAP,
) -> timedelta:
    """How long to wait after the `attempt`-th try failed temporarily.

    Equal jitter: uniformly in [step/2, step], so never sooner than half the step and
    never later than the cap. The service's own faults (see dispatch.faults) use the same
    curve with seconds instead of minutes.
    """
    full = step(attempt, base, cap)
    half = full / 2
    r = (rng or _system_rng).random()
    return half + (full - half) * r


def gives_up(first_attempt_at: datetime, retry_at: datetime, horizon: timedelta = HORIZON) -> bool:
    """True when the next try would fall past the horizon: the failure is then final."""
    return retry_at > first_attempt_at + horizon


def describe_span(span: timedelta) -> str:
    """'2 d 3 h', '5 h 12 min', '40 min': how long we kept trying, for the reason text."""
    minutes = int(span.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"
