"""A messages-per-minute cap shared by every sender of one process.

A token bucket that refills smoothly (one token every 60/rate seconds) and holds at most
`burst` tokens, so an idle spell buys a few messages at once and never more. Callers take
a token *before* they send: `await bucket.acquire()`.

Each call reserves the next free slot at once (the bucket may go into debt) and then
sleeps until that slot comes: no lock, first come first served, and the arithmetic is
plain enough to check with an injected clock (`reserve()` says how long to wait without
sleeping). A caller cancelled while waiting gives its slot back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]

DEFAULT_BURST = 3


class TokenBucket:
    """Smooth rate cap: `rate_per_minute` tokens a minute, at most `burst` saved up.

    `rate_per_minute <= 0` means no cap (acquire never waits).
    """

    def __init__(
        self,
        rate_per_minute: float,
        *,
        burst: int = DEFAULT_BURST,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate_per_minute = rate_per_minute
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)  # may go negative: slots promised to waiting callers
        self._updated = clock()

    @property
    def unlimited(self) -> bool:
        return self.rate_per_minute <= 0

    @property
    def interval(self) -> float:
        """Seconds between two tokens."""
        return 0.0 if self.unlimited else 60.0 / self.rate_per_minute

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        if not self.unlimited:
            self._tokens = min(float(self.burst), self._tokens + elapsed / self.interval)

    def reserve(self) -> float:
        """Take one token now; return how many seconds to wait before using it."""
        if self.unlimited:
            return 0.0
        self._refill()
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens * self.interval

    def release(self) -> None:
        """Give back a token taken by `reserve()` and not used."""
        if not self.unlimited:
            self._refill()
            self._tokens = min(float(self.burst), self._tokens + 1.0)

    async def acquire(self) -> None:
        """Wait for a token and take it."""
        delay = self.reserve()
        if delay <= 0:
            return
        try:
            await self._sleep(delay)
        except asyncio.CancelledError:
            self.release()
            raise
