"""`dispatch run`'s inbox part: reads the [imap] mailbox every poll_seconds.

Like the scheduler (dispatch.plan.scheduler), APScheduler only ticks, with an in-memory
job store: each tick runs one poll (dispatch.feedback.imap) in a thread; two polls never
overlap (max_instances=1), and a poll of another process at the same moment stores each
message once (Feedback.source_key). A poll that meets a fault (server down, login
refused, database locked) logs one WARNING line and marks the `inbox` health part down;
the next poll tries again. Only counts are logged.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from dispatch import clock, faults
from dispatch.feedback.imap import MailboxFault, poller
from dispatch.health import Part
from dispatch.runtime import Runtime

log = logging.getLogger(__name__)


class InboxStopped(RuntimeError):
    """APScheduler is no longer running: `dispatch run` starts a new one."""


class Inbox:
    def __init__(self, runtime: Runtime, health: Part | None = None):
        # The settings are checked here, before `dispatch run` starts anything: a
        # configuration that can't work is refused at start (Refused), like SMTP's.
        self.poller = poller(runtime.config, runtime.sessions)
        self.poll_seconds = runtime.config.imap.poll_seconds
        self.health = health if health is not None else Part("inbox")
        self.scheduler = AsyncIOScheduler(timezone=clock.LOCAL_TZ)
        self._halt = threading.Event()  # tells a poll in its thread to stop early

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; raise if APScheduler stops on its own."""
        self.scheduler = AsyncIOScheduler(timezone=clock.LOCAL_TZ)
        self._halt.clear()
        self.start()
        try:
            while not stop.is_set():
                await faults.sleep_unless(stop, self.poll_seconds)
                if not self.scheduler.running:
                    raise InboxStopped("the inbox scheduler stopped by itself")
        finally:
            self._halt.set()
            if self.scheduler.running:
                self.scheduler.shutdown(wait=False)

    def start(self) -> None:
        self.scheduler.add_job(
            self.poll, "interval", seconds=self.poll_seconds,
            next_run_time=clock.to_local(clock.utcnow()),  # first poll now
            max_instances=1, coalesce=True, id="inbox",
        )
        self.scheduler.start()
        log.info("inbox: reading the mailbox every %ss", self.poll_seconds)

    async def poll(self) -> None:
        try:
            result = await asyncio.to_thread(self.poller.poll, self._halt.is_set)
        except MailboxFault as exc:
            log.warning("inbox: %s; trying again in %ss", exc, self.poll_seconds)
            self.health.down(str(exc))
            return
        except Exception as exc:  # the next poll tries again
            if faults.is_transient(exc):
                log.warning("inbox: poll failed (%s); trying again in %ss",
                            faults.describe(exc), self.poll_seconds)
            else:  # a bug: its traceback is wanted
                log.exception("inbox: poll failed; trying again in %ss", self.poll_seconds)
            self.health.down(f"poll failed: {faults.describe(exc)}")
            return
        self.health.ok()
        if result.found:
            log.info("inbox: %s", result.summary())
