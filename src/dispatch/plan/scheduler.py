"""APScheduler only ticks: every tick runs reconcile() in a thread.

In-memory job store on purpose: APScheduler's SQLAlchemy job store runs jobs twice when
two processes share it and silently drops a date job missed by more than its grace
time. Our tables say what is due; a tick at any time, in any process, is harmless.

A tick that fails (the database is out) logs one line and changes nothing the next tick
can't redo: a claim is one statement, planning resumes where it stopped. Every tick
reports to the `scheduler` health part; `run` is what `dispatch run` supervises.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from dispatch import clock, faults
from dispatch.health import Part
from dispatch.plan.reconcile import reconcile
from dispatch.runtime import Runtime

log = logging.getLogger(__name__)


class SchedulerStopped(RuntimeError):
    """APScheduler is no longer running: `dispatch run` starts a new one."""


class Reconciler:
    def __init__(
        self,
        runtime: Runtime,
        on_planned: Callable[[], None] | None = None,
        health: Part | None = None,
    ):
        self.runtime = runtime
        self.on_planned = on_planned
        self.tick_seconds = runtime.config.schedule.tick_seconds
        # Silent for three ticks: the scheduler is reported down.
        self.health = health if health is not None else Part("scheduler", 3 * self.tick_seconds)
        self.max_lateness = timedelta(hours=runtime.config.schedule.max_lateness_hours)
        self._told_overdue: set[int] = set()
        self.scheduler = AsyncIOScheduler(timezone=clock.LOCAL_TZ)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set; raise if APScheduler stops on its own."""
        self.scheduler = AsyncIOScheduler(timezone=clock.LOCAL_TZ)  # a fresh one per run
        self.start()
        try:
            while not stop.is_set():
                await faults.sleep_unless(stop, self.tick_seconds)
                if not self.scheduler.running:
                    raise SchedulerStopped("the scheduler stopped by itself")
        finally:
            self.stop()

    def start(self) -> None:
        self.scheduler.add_job(
            self.tick,
            "interval",
            seconds=self.tick_seconds,
            next_run_time=clock.to_local(clock.utcnow()),  # first tick now: catch up
            max_instances=1,
            coalesce=True,
            id="reconcile",
        )
        self.scheduler.start()
        log.info("scheduler ticking every %ss", self.tick_seconds)

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def tick(self) -> None:
        try:
            result = await asyncio.to_thread(reconcile, self.runtime.sessions, self.max_lateness)
        except Exception as exc:  # the next tick tries again
            if faults.is_transient(exc):
                log.warning("scheduler: tick failed (%s); trying again next tick",
                            faults.describe(exc))
            else:  # a bug: its traceback is wanted
                log.exception("scheduler: tick failed; trying again next tick")
            self.health.down(f"tick failed: {faults.describe(exc)}")
            return
        self.health.ok()
        for issue_id, counts in result.planned.items():
            log.info("issue %s is due: planned %s", issue_id, counts)
        for issue_id in result.overdue:
            if issue_id not in self._told_overdue:
                self._told_overdue.add(issue_id)
                log.warning(
                    "issue %s passed its publication time more than %s ago while the service "
                    "was down; it waits for staff: `dispatch send %s`",
                    issue_id, self.max_lateness, issue_id,
                )
        if result.planned and self.on_planned:
            self.on_planned()
