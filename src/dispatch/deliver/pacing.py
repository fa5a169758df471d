"""When a WeChat Work message may go: the quiet minutes and the per-member window. Pure;
the caller brings the time.

- Quiet minutes: WeChat Work's documentation (发送应用消息, 调用建议) warns that most
  applications push at :00 and :30 and that messages sent then are delivered late. No
  call is made in the minutes of the hour listed in ``[wecom] quiet_minutes`` (local
  time, Asia/Shanghai; its offset is whole hours, so the minute is the same anywhere
  but the rule reads as staff read the clock).
- The member window: the server drops, silently (the answer is still ok), what one
  application sends one member beyond 30 messages a minute or 1000 an hour (频率限制).
  `MemberWindow` remembers what was sent to each member in the last hour and admits a
  message only while both limits hold. It is per process: the outbox holds one delivery
  per issue, reader and channel, so going over 30 a minute to one member would take more
  than 30 issues a minute; a second worker process (its own window) is no real risk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from dispatch.clock import LOCAL_TZ

PER_MINUTE = 30
PER_HOUR = 1000


def quiet_wait(now: datetime, quiet_minutes: Collection[int]) -> float:
    """Seconds to wait before a call may be made at `now` (aware, or naive UTC): 0 outside
    the quiet minutes, else until the next minute that is not quiet."""
    if not quiet_minutes:
        return 0.0
    if now.tzinfo is None:  # naive: UTC, as dispatch.clock.utcnow gives it
        now = now.replace(tzinfo=UTC)
    local = now.astimezone(LOCAL_TZ)
    quiet = {m % 60 for m in quiet_minutes}
    if len(quiet) >= 60:
        raise ValueError("every minute of the hour is quiet: nothing could ever be sent")
    if local.minute not in quiet:
        return 0.0
    start = local.replace(second=0, microsecond=0)
    minute = start
    while minute.minute in quiet:
        minute += timedelta(minutes=1)
    return (minute - local).total_seconds()


class MemberWindow:
    """What was sent to each member in the last hour; `admit` says whether one more may go
    now, and counts it if so. Times are seconds on any steady clock."""

    def __init__(self, per_minute: int = PER_MINUTE, per_hour: int = PER_HOUR) -> None:
        self.per_minute = per_minute
        self.per_hour = per_hour
        self._sent: dict[str, deque[float]] = {}

    def admit(self, member: str, now: float) -> bool:
        key = member.lower()  # the server does not tell userids apart by case
        times = self._sent.setdefault(key, deque())
        while times and times[0] <= now - 3600:
            times.popleft()
        in_minute = 0
        for t in reversed(times):  # newest first: stop at the first older than a minute
            if t <= now - 60:
                break
            in_minute += 1
        if in_minute >= self.per_minute or len(times) >= self.per_hour:
            return False
        times.append(now)
        return True

    def forget_idle(self, now: float) -> None:
        """Drop members with nothing in the last hour (keeps memory bounded)."""
        for key in [k for k, t in self._sent.items() if not t or t[-1] <= now - 3600]:
            del self._sent[key]
