"""What `dispatch run`'s parts say about themselves, for /healthz.

Each part (the scheduler, the worker) holds a `Part`: it calls `ok()` after each round
that went well and `down(reason)` when it met a fault or is being restarted. A part with
`max_silence` must also show a sign of life that often (the scheduler ticks), else it is
reported down as "not ticking". Only the event loop's thread writes; the web app's
threads read (plain attribute reads: a slightly stale answer is fine).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Part:
    name: str
    max_silence: float | None = None
    clock: Callable[[], float] = time.monotonic
    reason: str = ""  # empty while up
    down_since: float | None = None
    last_ok: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.last_ok = self.clock()  # starting counts as a sign of life

    def ok(self) -> None:
        self.reason, self.down_since, self.last_ok = "", None, self.clock()

    def down(self, reason: str) -> None:
        if self.down_since is None:
            self.down_since = self.clock()
        self.reason = reason

    def status(self) -> tuple[bool, str]:
        """(up, one line for an operator)."""
        now = self.clock()
        if self.down_since is not None:
            return False, f"down for {now - self.down_since:.0f}s: {self.reason}"
        silent = now - self.last_ok
        if self.max_silence is not None and silent > self.max_silence:
            return False, f"down: not ticking for {silent:.0f}s"
        return True, "ok"


class Health:
    """The parts of one process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.parts: dict[str, Part] = {}

    def part(self, name: str, max_silence: float | None = None) -> Part:
        part = self.parts[name] = Part(name, max_silence, self.clock)
        return part
