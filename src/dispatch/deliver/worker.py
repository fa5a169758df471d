"""A delivery worker: claim a batch, render each row, hand them to its channel, ack.

The database calls are synchronous SQLAlchemy run in threads (one code path for
SQLite and PostgreSQL); the channels are asyncio. Rendering runs in the thread too,
so the web app in the same loop keeps answering while a batch is prepared.

Faults (dispatch.faults): the worker outlives them. A database that is down, restarting
or locked ends the round with one WARNING line and a pause (0.5 s doubling to 10 s,
reset by a success), and the worker tries again, keeping what it knows:

- outcomes of messages already handed to a channel stay in memory until they are
  recorded (still fenced by worker name and attempt), before anything new is claimed;
  the lease keeper goes on renewing those rows, so no one else takes them meanwhile.
  Should the outage outlast the lease and another worker claim a row, our late ack is
  fenced out and that worker sends it again: the in-flight duplicate the guarantees
  allow, with the same Message-ID;
- rows claimed but not handed to a channel go back to 'queued' ("not attempted").

A channel that raises (instead of reporting outcomes) makes its messages temporary
failures, retried with the usual backoff, and pauses the worker like a database fault.
A render error fails only what it concerns, permanently, with the reason for
`dispatch status`: one reader's message (`not sent: render error: …`), or every row of
the issue in the batch when the issue can't be rendered for anyone (its templates can't
be found or parsed): `not sent: the issue can't be rendered: …`.

At start, `run` makes the rows of workers that died on this host claimable at once
(see dispatch.deliver.owner) instead of waiting for their leases to run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from jinja2 import Environment, TemplateNotFound, TemplatesNotFound, TemplateSyntaxError
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from dispatch import clock, editorial, faults
from dispatch.db.models import Reader
from dispatch.db.session import transaction
from dispatch.deliver import leases
from dispatch.deliver.channel import Channel, Outcome, Outgoing, configured
from dispatch.deliver.owner import is_dead_here, worker_name
from dispatch.health import Part
from dispatch.lifecycle import finish_if_done
from dispatch.render.pipeline import IssueRenderer, ReaderView
from dispatch.render.templates import environment
from dispatch.runtime import Runtime
from dispatch.track.links import Links

log = logging.getLogger(__name__)

__all__ = ["BatchResult", "ChannelFault", "Worker", "default_channels", "worker_name"]

# Met while rendering one reader, these mean the templates are unusable for anyone.
ISSUE_WIDE = (TemplateNotFound, TemplatesNotFound, TemplateSyntaxError)


def default_channels(runtime: Runtime) -> dict[str, Channel]:
    """One channel for each the installation serves (dispatch.deliver.channel.configured).
    Rows of any other channel stay queued (never failed) until one is."""
    from dispatch.deliver.smtp import SmtpChannel
    from dispatch.deliver.wecom import WecomChannel

    config = runtime.config
    builders: dict[str, Callable[[], Channel]] = {
        "email": lambda: SmtpChannel.from_config(config),
        # Refuses an enabled [wecom] without its secret, corp id or agent id.
        "wecom": lambda: WecomChannel.from_config(config, runtime.sessions),
    }
    return {name: builders[name]() for name in configured(config)}


class ChannelFault(Exception):
    """A channel raised instead of reporting outcomes; its messages were recorded as
    temporary failures."""


@dataclass
class BatchResult:
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    issues: set[int] = field(default_factory=set)


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        channels: dict[str, Channel] | None = None,
        *,
        name: str | None = None,
        health: Part | None = None,
    ):
        self.runtime = runtime
        self.channels = channels if channels is not None else default_channels(runtime)
        self.name = name or worker_name()
        self.health = health if health is not None else Part("worker")
        cfg = runtime.config.delivery
        self.batch_size = cfg.batch_size
        self.lease_seconds = cfg.lease_seconds
        self.idle_seconds = cfg.idle_seconds
        self.horizon = timedelta(hours=cfg.retry_horizon_hours)
        self.retry_base = timedelta(seconds=cfg.retry_base_seconds)
        self.wake = asyncio.Event()
        self._renderers: dict[int, IssueRenderer] = {}
        self._env: Environment | None = None
        self._rng = random.Random()
        # Claimed and not yet acked: what a crash would leave in flight.
        self._inflight: dict[int, leases.Claimed] = {}
        # Outcomes known and not yet recorded (the database was out when they came).
        self._outcomes: dict[int, Outcome] = {}
        # With a channel right now: neither recorded nor "not attempted".
        self._handed: set[int] = set()
        # A fault cut a batch short: rows it claimed and never sent are to be given back.
        self._cut_short = False
        self._unfinished: set[int] = set()  # issues to close once their acks are in
        self._keeper: asyncio.Task[None] | None = None
        self._dead_expired = False
        self.sent = 0

    # -- the loop ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, riding out faults; then release what is still
        held and close."""
        log.info("worker %s started (channels: %s)", self.name, ", ".join(sorted(self.channels)))
        failures = 0
        try:
            while not stop.is_set():
                try:
                    if not self._dead_expired:
                        await asyncio.to_thread(self._expire_dead)
                        self._dead_expired = True
                    result = await self.run_batch()
                except Exception as exc:  # the worker outlives its faults
                    failures += 1
                    pause = faults.pause_after(failures)
                    self._fault(exc, pause)
                    await faults.sleep_unless(stop, pause)
                    continue
                if failures:
                    log.info("worker %s: working again after %d failed rounds", self.name, failures)
                    failures = 0
                self.health.ok()
                if result.claimed == 0:
                    await self._idle(stop)
        finally:
            await self.close()

    def _fault(self, exc: Exception, pause: float) -> None:
        kept = f"; {len(self._outcomes)} outcomes kept to record" if self._outcomes else ""
        if faults.is_transient(exc) or isinstance(exc, ChannelFault):
            what = faults.describe(exc)
            log.warning("worker %s: %s%s; trying again in %.1fs", self.name, what, kept, pause)
        else:  # not a fault of the machine: a bug; its traceback is wanted
            what = f"unexpected error: {faults.describe(exc)}"
            log.error("worker %s: %s%s; trying again in %.1fs", self.name, what, kept, pause,
                      exc_info=exc)
        self.health.down(f"{what} (next try in {pause:.0f}s)")

    async def _idle(self, stop: asyncio.Event) -> None:
        self.wake.clear()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
        try:
            await asyncio.wait(
                waiters, timeout=self.idle_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for w in waiters:
                w.cancel()

    async def close(self) -> None:
        """Record what is known, give back what was never sent, close the channels. While
        the database is out, what is held stays 'sending' until its lease runs out."""
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        try:
            await self.settle()
            released = await asyncio.to_thread(self._release, set(self._handed))
        except Exception as exc:  # stopping anyway
            log.warning(
                "worker %s: stopping without the database (%s): %d outcomes not recorded, "
                "%d deliveries held until their lease runs out",
                self.name, faults.describe(exc), len(self._outcomes), len(self._inflight),
            )
        else:
            self._forget(set(self._inflight) - self._handed)
            if released:
                log.info("worker %s released %d deliveries it held", self.name, released)
        for channel in self.channels.values():
            try:
                await channel.close()
            except Exception:  # closing must not hide the real outcome
                log.exception("closing channel %s", channel.name)
        log.info("worker %s stopped after %d sent", self.name, self.sent)

    async def run_batch(self) -> BatchResult:
        """One claim → render → send → ack cycle, after recording what an earlier cycle
        could not. Raises on a fault, keeping what it must still record or give back."""
        result = BatchResult()
        await self.settle()
        try:
            claimed = await asyncio.to_thread(self._claim)
            self._inflight.update((c.delivery_id, c) for c in claimed)
            if not claimed:
                return result
            # A live worker keeps what it holds: the lease only frees rows of a dead one.
            # Without this, a batch slower than the lease (a strict rate cap, a slow
            # server) would be claimed and sent again by another worker.
            self._start_keeper()
            prepared = await asyncio.to_thread(self._render_batch, claimed)
            channel_fault: Exception | None = None
            for channel_name, (outgoing, early) in prepared.items():
                result.claimed += len(outgoing) + len(early)
                outcomes = list(early)
                self._outcomes.update((o.delivery_id, o) for o in early)
                if outgoing:
                    pushed, fault = await self._push(self.channels[channel_name], outgoing)
                    outcomes += pushed
                    channel_fault = channel_fault or fault
                for o in outcomes:
                    result.outcomes[o.kind] += 1
                issues, sent = await self._record()
                result.issues |= issues
        except BaseException:
            self._cut_short = True
            raise
        if channel_fault is not None:
            raise ChannelFault(faults.describe(channel_fault)) from channel_fault
        return result

    async def settle(self) -> None:
        """Record the outcomes a fault left unrecorded, close their issues when done, and
        give back rows a fault left unsent. Raises (keeping all of it) while the database
        is still out."""
        if self._outcomes:
            kept = len(self._outcomes)
            await self._record()
            log.info("worker %s: %d outcomes kept through a fault are recorded", self.name, kept)
        if self._unfinished:
            await asyncio.to_thread(self._finish, set(self._unfinished))
            self._unfinished.clear()
        if self._cut_short:
            # Everything held under our name but what a channel may have: rows claimed
            # for the batch, and any claim committed while its answer was lost.
            released = await asyncio.to_thread(self._release, set(self._handed))
            self._forget(set(self._inflight) - self._handed)
            self._cut_short = False
            if released:
                log.info("worker %s: %d deliveries not sent before the fault are queued again",
                         self.name, released)

    async def _push(
        self, channel: Channel, outgoing: list[Outgoing]
    ) -> tuple[list[Outcome], Exception | None]:
        ids = [o.delivery_id for o in outgoing]
        self._handed.update(ids)
        fault = None
        try:
            outcomes = await channel.push(outgoing)
        except Exception as exc:  # a channel's bug must not stop delivery
            # Whether any went out is unknown: temporary, retried later with the same
            # Message-ID, like a dropped connection.
            fault = exc
            detail = f"channel error: {faults.describe(exc)}"
            outcomes = [Outcome(i, "temporary", detail) for i in ids]
        self._outcomes.update((o.delivery_id, o) for o in outcomes)
        self._handed.difference_update(ids)
        return outcomes, fault

    async def _record(self) -> tuple[set[int], int]:
        """Ack every known outcome; the issues touched and how many 'sent' were accepted."""
        outcomes = list(self._outcomes.values())
        if not outcomes:
            return set(), 0
        claims = [self._inflight[o.delivery_id] for o in outcomes]
        accepted = await asyncio.to_thread(self._ack, outcomes, claims)
        # Recorded, or fenced out (another worker holds the row now): not ours either way.
        self._forget(o.delivery_id for o in outcomes)
        sent = sum(o.kind == "sent" and o.delivery_id in accepted for o in outcomes)
        self.sent += sent
        issues = {c.issue_id for c in claims}
        self._unfinished |= issues
        await asyncio.to_thread(self._finish, issues)
        self._unfinished -= issues
        return issues, sent

    def _forget(self, delivery_ids: Iterable[int]) -> None:
        for d in list(delivery_ids):
            self._inflight.pop(d, None)
            self._outcomes.pop(d, None)

    def _start_keeper(self) -> None:
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep_leases(), name=f"leases {self.name}")

    async def _keep_leases(self) -> None:
        """Renew what this worker holds, as long as it lives (see `close`)."""
        interval = self.lease_seconds / 3
        failures = 0
        while True:
            await asyncio.sleep(min(interval, faults.pause_after(failures)) if failures else interval)
            held = list(self._inflight)
            if not held:
                continue
            try:
                renewed = await asyncio.to_thread(self._renew, held)
            except Exception as exc:  # try again; the lease still runs
                failures += 1
                if failures == 1:
                    log.warning("worker %s: renewing %d leases failed (%s); trying again",
                                self.name, len(held), faults.describe(exc))
                continue
            if failures:
                failures = 0
                lost = len([d for d in held if d in self._inflight]) - renewed
                if lost > 0:
                    log.warning(
                        "worker %s: %d rows were taken by another worker while the leases "
                        "could not be renewed; it sends them again (same Message-ID)",
                        self.name, lost,
                    )

    # -- in threads ------------------------------------------------------------------

    def _expire_dead(self) -> int:
        with transaction(self.runtime.sessions) as session:
            return leases.expire_dead(session, is_dead_here, clock.utcnow())

    def _claim(self) -> list[leases.Claimed]:
        with transaction(self.runtime.sessions) as session:
            return leases.claim(
                session, self.name, self.batch_size, self.lease_seconds,
                set(self.channels), clock.utcnow(),
            )

    def _renew(self, held: list[int]) -> int:
        with transaction(self.runtime.sessions) as session:
            return leases.renew(session, self.name, held, self.lease_seconds, clock.utcnow())

    def _render_batch(
        self, claimed: list[leases.Claimed]
    ) -> dict[str, tuple[list[Outgoing], list[Outcome]]]:
        broken: dict[int, str] = {}  # issue → why it can't be rendered for anyone
        with self.runtime.sessions() as session:
            readers = {
                r.id: r
                for r in session.scalars(
                    select(Reader)
                    .where(Reader.id.in_({c.reader_id for c in claimed}))
                    .options(selectinload(Reader.industry_rows))
                )
            }
            for issue_id in sorted({c.issue_id for c in claimed} - set(self._renderers)):
                try:
                    self._renderers[issue_id] = self._renderer(session, issue_id)
                except Exception as exc:
                    if faults.is_transient(exc):
                        raise
                    broken[issue_id] = faults.describe(exc)
            views = {rid: ReaderView.of(r) for rid, r in readers.items()}
            statuses = {rid: r.status for rid, r in readers.items()}
        out: dict[str, tuple[list[Outgoing], list[Outcome]]] = {}
        unrendered: set[str] = set()
        for c in claimed:
            outgoing, early = out.setdefault(c.channel, ([], []))
            if c.issue_id in broken:
                why = f"not sent: the issue can't be rendered: {broken[c.issue_id]}"
                early.append(Outcome(c.delivery_id, "permanent", why))
                continue
            reader = views.get(c.reader_id)
            if reader is None or statuses[c.reader_id] != "active":
                why = "reader removed" if reader is None else f"reader is {statuses[c.reader_id]}"
                early.append(Outcome(c.delivery_id, "permanent", f"not sent: {why}"))
                continue
            try:
                outgoing.append(self._render(c, reader))
            except ValueError as exc:
                # Bad data in one row (an address the splicer refuses): that row fails,
                # the batch goes on.
                early.append(Outcome(c.delivery_id, "permanent", f"not sent: {exc}"))
            except Exception as exc:
                if faults.is_transient(exc):
                    raise
                if isinstance(exc, ISSUE_WIDE):
                    broken[c.issue_id] = faults.describe(exc)
                    why = f"not sent: the issue can't be rendered: {broken[c.issue_id]}"
                else:
                    unrendered.add(type(exc).__name__)
                    why = f"not sent: render error: {faults.describe(exc)}"
                early.append(Outcome(c.delivery_id, "permanent", why))
        for issue_id, why in broken.items():
            # Not cached: the next batch tries again (the templates may be fixed by then).
            self._renderers.pop(issue_id, None)
            log.warning("worker %s: issue %s can't be rendered (%s): its deliveries in this "
                        "batch failed; `dispatch retry %s` once it is fixed",
                        self.name, issue_id, why, issue_id)
        if unrendered:
            # The exception's text may quote the reader: only its type goes to the log.
            log.warning("worker %s: render errors (%s): those deliveries failed, reasons in "
                        "`dispatch status`", self.name, ", ".join(sorted(unrendered)))
        return out

    def _renderer(self, session: Session, issue_id: int) -> IssueRenderer:
        if self._env is None:
            self._env = environment(self.runtime.config)
        issue = editorial.get_issue(session, issue_id)
        return IssueRenderer.for_issue(issue, self._env, self.runtime.config)

    def _render(self, c: leases.Claimed, reader: ReaderView) -> Outgoing:
        renderer = self._renderers[c.issue_id]
        if c.channel == "email":
            if not reader.email:
                raise ValueError("the reader has no email address any more")
            payload = renderer.email_message(reader, c.token)
            sender = Links(renderer.base_url, renderer.reply_domain, c.token).envelope_sender
            return Outgoing(c.delivery_id, reader.email, payload, sender)
        if c.channel == "wecom":
            if not reader.wecom_userid:
                raise ValueError("the reader has no WeChat Work account any more")
            body = renderer.wecom_json(reader, c.token).encode("utf-8")
            return Outgoing(c.delivery_id, reader.wecom_userid, body)
        raise ValueError(f"unknown channel {c.channel}")

    def _ack(self, outcomes: list[Outcome], claims: list[leases.Claimed]) -> set[int]:
        """Record outcomes in one transaction; the ids whose ack was accepted."""
        with transaction(self.runtime.sessions) as session:
            return leases.ack_many(
                session, self.name,
                [(o, c.attempts) for o, c in zip(outcomes, claims, strict=True)],
                clock.utcnow(), rng=self._rng, horizon=self.horizon, base=self.retry_base,
            )

    def _finish(self, issues: set[int]) -> None:
        with transaction(self.runtime.sessions) as session:
            for issue_id in sorted(issues):
                finish_if_done(session, issue_id)

    def _release(self, keep: set[int]) -> int:
        with transaction(self.runtime.sessions) as session:
            return leases.release(session, self.name, keep)
