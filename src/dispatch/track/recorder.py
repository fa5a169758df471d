"""Recording what readers do: the web app's events, written in small batches off the request.

`Recorder.record` is the web app's `on_event` hook. It only appends the event to an
in-memory queue and returns: a request never waits on a write, and a burst of opens
doesn't queue up on SQLite's one writer. A thread drains the queue: whatever has come in
within `interval` seconds (at most `batch` events) goes in as one multi-row INSERT in one
transaction. Opens arrive without their delivery (the pixel answers without touching the
database); the thread looks their tokens up, a batch at a time, and leaves out tokens
that name no delivery.

The database going away costs no request: the thread keeps its batch and tries again
(dispatch.faults' pauses), the queue holds up to `max_queue` events meanwhile, and past
that new events are dropped and counted, with a WARNING (a count, never a token or an
address). `flush()` waits until everything recorded before it is written (tests, and
`close()` when `dispatch run` stops).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from typing import Any, cast

from sqlalchemy import Engine, Table, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatch import faults
from dispatch.db.models import Event
from dispatch.track.deliveries import DeliveryLookup
from dispatch.track.events import USER_AGENT_CHARS, PageEvent
from dispatch.track.machines import is_machine_event

log = logging.getLogger(__name__)

MAX_QUEUE = 50_000  # events waiting: ~30 MB at most
BATCH = 500  # events in one INSERT
INTERVAL = 0.25  # seconds an event may wait for others to share its INSERT
CLIENT_IP_CHARS = 45
# Control characters (NUL above all: PostgreSQL refuses it in text) never reach a row.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
DROP_LOG_SECONDS = 10.0  # at most one drop warning this often


class Recorder:
    def __init__(
        self, engine: Engine, machine_seconds: float, *,
        max_queue: int = MAX_QUEUE, batch: int = BATCH, interval: float = INTERVAL,
        lookup: DeliveryLookup | None = None,
    ):
        self.engine = engine
        self.machine_seconds = machine_seconds
        self.max_queue = max_queue
        self.batch = batch
        self.interval = interval
        self.lookup = lookup or DeliveryLookup()
        self._queue: deque[PageEvent] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._flushes = 0  # flush() calls waiting: write at once, don't wait for more
        self._flush_calls = 0  # each one also cuts a pause between retries short
        self._queued = 0  # events ever queued …
        self._handled = 0  # … and of those, written or left out
        # Counters, for tests, the bench and the log:
        self.written = 0
        self.dropped = 0  # the queue was full
        self.unknown = 0  # a token (of an open) that names no delivery
        self.lost = 0  # a batch the database refused, or still unwritten at close
        self._drops_unlogged = 0
        self._drop_logged_at = 0.0

    # -- the hook ------------------------------------------------------------------------

    def record(self, event: PageEvent) -> None:
        """Queue an event; never blocks, never raises."""
        with self._cond:
            if self._closing or len(self._queue) >= self.max_queue:
                self.dropped += 1
                self._drops_unlogged += 1
                now = time.monotonic()
                if now - self._drop_logged_at < DROP_LOG_SECONDS:
                    return
                count, self._drops_unlogged, self._drop_logged_at = self._drops_unlogged, 0, now
            else:
                self._queue.append(event)
                self._queued += 1
                # Wake the writer for the first event (it waits for one: a lone open must
                # reach the table within `interval`, not with the next batch or at stop)
                # and for a full batch (it gathers no longer).
                if len(self._queue) == 1 or len(self._queue) >= self.batch:
                    self._cond.notify_all()
                return
        log.warning(
            "event queue full (%d waiting, database slow or down): dropped %d events",
            len(self._queue), count,
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Recorder:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
            self._thread.start()
        return self

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every event recorded before this call is written (or left out).
        False if that took longer than `timeout` (the database is down)."""
        with self._cond:
            target = self._queued
            self._flushes += 1
            self._flush_calls += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._handled >= target, timeout)
            finally:
                self._flushes -= 1

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (waiting at most `timeout`), then stop the thread."""
        if self._thread:
            self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout)
        with self._cond:
            left = len(self._queue)
            self._queue.clear()
        if left:
            self.lost += left
            log.warning("stopping: %d events could not be written", left)
        if self.dropped:
            log.warning("events dropped while the queue was full: %d", self.dropped)

    @property
    def waiting(self) -> int:
        return len(self._queue)

    # -- the writer thread ---------------------------------------------------------------

    def _take(self) -> list[PageEvent] | None:
        """The next batch; None when closing and nothing is left."""
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            # Let a burst gather into one INSERT, unless someone waits for it.
            deadline = time.monotonic() + self.interval
            while len(self._queue) < self.batch and not (self._flushes or self._closing):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            n = min(self.batch, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while (events := self._take()) is not None:
            try:
                self._write_retrying(events)
            except Exception:  # a bug: lose this batch, not the recorder
                self.lost += len(events)
                log.exception("recording %d events failed", len(events))
            with self._cond:
                self._handled += len(events)
                self._cond.notify_all()

    def _write_retrying(self, events: list[PageEvent]) -> None:
        failures = 0
        while True:
            try:
                self._write(events)
                if failures:
                    log.warning("events are being recorded again")
                return
            except Exception as exc:
                if not faults.is_transient(exc):
                    raise
                failures += 1
                if self._closing:
                    self.lost += len(events)
                    log.warning("stopping: %d events not recorded (%s)", len(events),
                                faults.describe(exc))
                    return
                pause = faults.pause_after(failures)
                log.warning("recording %d events: %s; trying again in %.1fs",
                            len(events), faults.describe(exc), pause)
                self._pause(pause)

    def _pause(self, seconds: float) -> None:
        """Wait before trying again; a flush() or close() cuts it short."""
        with self._cond:
            calls = self._flush_calls
            self._cond.wait_for(lambda: self._closing or self._flush_calls != calls, seconds)

    def _write(self, events: list[PageEvent]) -> None:
        rows = self._rows(events)
        if not rows:
            return
        table = cast(Table, Event.__table__)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(table), rows)
            self.written += len(rows)
        except IntegrityError:
            # A delivery or article deleted since (a draft's, in tests): write the others.
            for row in rows:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(insert(table), [row])
                    self.written += 1
                except IntegrityError:
                    self.unknown += 1

    def _rows(self, events: list[PageEvent]) -> list[dict[str, Any]]:
        unresolved = [e.token for e in events if e.delivery is None]
        found = {}
        if unresolved:
            with Session(self.engine) as session:
                found = self.lookup.find_many(session, unresolved)
        rows = []
        for e in events:
            delivered = e.delivery or found.get(e.token)
            if delivered is None:
                self.unknown += 1
                continue
            agent = _CONTROL.sub("", e.user_agent)[:USER_AGENT_CHARS]
            address = _CONTROL.sub("", e.client_ip)[:CLIENT_IP_CHARS] if e.client_ip else None
            rows.append({
                "issue_id": delivered.issue_id,
                "delivery_id": delivered.delivery_id,
                "kind": e.kind,
                "article_id": e.article_id,
                "n": e.n,
                "at": e.at,
                "machine": is_machine_event(
                    agent, address, e.at, delivered.sent_at, self.machine_seconds
                ),
                "user_agent": agent,
                "client_ip": address,
            })
        return rows
