"""A delivery worker: claim a batch, render each row, hand them to its channel, ack.

The database calls are synchronous SQLAlchemy run in threads (one code path for
SQLite and PostgreSQL); the channels are asyncio. Rendering runs in the thread too,
so the web app in the same loop keeps answering while a batch is prepared.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from dispatch import clock, editorial
from dispatch.context import Context
from dispatch.db.models import Reader
from dispatch.db.session import transaction
from dispatch.deliver import outbox
from dispatch.deliver.channel import Channel, Outcome, Outgoing
from dispatch.plan.due import finish_if_done
from dispatch.render.pipeline import IssueRenderer, ReaderView
from dispatch.render.templates import environment
from dispatch.track.links import Links

log = logging.getLogger(__name__)


def worker_name() -> str:
    """Unique per process: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def default_channels(ctx: Context) -> dict[str, Channel]:
    """The channels this installation has configured. Rows of any other channel stay
    queued (never failed) until one is."""
    from dispatch.deliver.smtp import SmtpChannel

    channels: dict[str, Channel] = {"email": SmtpChannel.from_config(ctx.config)}
    if ctx.config.wecom.enabled:
        log.warning("WeChat Work is enabled in the config but not yet supported: rows stay queued")
    return channels


@dataclass
class BatchResult:
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    issues: set[int] = field(default_factory=set)


class Worker:
    def __init__(
        self,
        ctx: Context,
        channels: dict[str, Channel] | None = None,
        *,
        name: str | None = None,
    ):
        self.ctx = ctx
        self.channels = channels if channels is not None else default_channels(ctx)
        self.name = name or worker_name()
        cfg = ctx.config.delivery
        self.batch_size = cfg.batch_size
        self.lease_seconds = cfg.lease_seconds
        self.idle_seconds = cfg.idle_seconds
        self.horizon = timedelta(hours=cfg.retry_horizon_hours)
        self.retry_base = timedelta(seconds=cfg.retry_base_seconds)
        self.wake = asyncio.Event()
        self._renderers: dict[int, IssueRenderer] = {}
        self._env = None
        self._rng = random.Random()
        # Claimed and not yet acked: what a crash would leave in flight.
        self._inflight: dict[int, outbox.Claimed] = {}
        self.sent = 0

    # -- the loop ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then release what is still held and close."""
        log.info("worker %s started (channels: %s)", self.name, ", ".join(sorted(self.channels)))
        try:
            while not stop.is_set():
                result = await self.run_batch()
                if result.claimed == 0:
                    await self._idle(stop)
        finally:
            await self.close()

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
        released = await asyncio.to_thread(self._release)
        if released:
            log.info("worker %s released %d deliveries it held", self.name, released)
        for channel in self.channels.values():
            try:
                await channel.close()
            except Exception:  # noqa: BLE001 - closing must not hide the real outcome
                log.exception("closing channel %s", channel.name)
        log.info("worker %s stopped after %d sent", self.name, self.sent)

    async def run_batch(self) -> BatchResult:
        """One claim → render → send → ack cycle."""
        result = BatchResult()
        claimed = await asyncio.to_thread(self._claim)
        if not claimed:
            return result
        # A live worker keeps what it holds: the lease only frees rows of a dead one.
        # Without this, a batch slower than the lease (a strict rate cap, a slow
        # server) would be claimed and sent again by another worker.
        keeper = asyncio.create_task(self._keep_leases())
        try:
            prepared = await asyncio.to_thread(self._render_batch, claimed)
            for channel_name, (outgoing, early) in prepared.items():
                result.claimed += len(outgoing) + len(early)
                outcomes = list(early)
                if outgoing:
                    outcomes += await self.channels[channel_name].push(outgoing)
                issues, sent = await asyncio.to_thread(self._ack, outcomes)
                result.issues |= issues
                self.sent += sent
                for o in outcomes:
                    result.outcomes[o.kind] += 1
        finally:
            keeper.cancel()
        return result

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            held = list(self._inflight)
            try:
                await asyncio.to_thread(self._renew, held)
            except Exception:  # noqa: BLE001 - try again next round; the lease still runs
                log.exception("renewing leases")

    # -- in threads ------------------------------------------------------------------

    def _claim(self) -> list[outbox.Claimed]:
        with transaction(self.ctx.sessions) as session:
            claimed = outbox.claim(
                session, self.name, self.batch_size, self.lease_seconds,
                set(self.channels), clock.utcnow(),
            )
        self._inflight.update((c.delivery_id, c) for c in claimed)
        return claimed

    def _renew(self, held: list[int]) -> None:
        with transaction(self.ctx.sessions) as session:
            outbox.renew(session, self.name, held, self.lease_seconds, clock.utcnow())

    def _render_batch(
        self, claimed: list[outbox.Claimed]
    ) -> dict[str, tuple[list[Outgoing], list[Outcome]]]:
        with self.ctx.sessions() as session:
            readers = {
                r.id: r
                for r in session.scalars(
                    select(Reader)
                    .where(Reader.id.in_({c.reader_id for c in claimed}))
                    .options(selectinload(Reader.industry_rows))
                )
            }
            for issue_id in {c.issue_id for c in claimed} - set(self._renderers):
                self._renderers[issue_id] = self._renderer(session, issue_id)
            views = {rid: ReaderView.of(r) for rid, r in readers.items()}
            statuses = {rid: r.status for rid, r in readers.items()}
        out: dict[str, tuple[list[Outgoing], list[Outcome]]] = {}
        for c in claimed:
            outgoing, early = out.setdefault(c.channel, ([], []))
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
        return out

    def _renderer(self, session, issue_id: int) -> IssueRenderer:  # noqa: ANN001
        if self._env is None:
            self._env = environment(self.ctx.config)
        issue = editorial.get_issue(session, issue_id)
        return IssueRenderer.for_issue(issue, self._env, self.ctx.config)

    def _render(self, c: outbox.Claimed, reader: ReaderView) -> Outgoing:
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

    def _ack(self, outcomes: list[Outcome]) -> tuple[set[int], int]:
        """Record outcomes; the issues touched and how many 'sent' acks were accepted."""
        if not outcomes:
            return set(), 0
        now = clock.utcnow()
        claims = [self._inflight[o.delivery_id] for o in outcomes]
        with transaction(self.ctx.sessions) as session:
            accepted = outbox.ack_many(
                session, self.name,
                [(o, c.attempts) for o, c in zip(outcomes, claims, strict=True)], now,
                rng=self._rng, horizon=self.horizon, base=self.retry_base,
            )
        sent = sum(o.kind == "sent" and o.delivery_id in accepted for o in outcomes)
        for o in outcomes:
            del self._inflight[o.delivery_id]
        issues = {c.issue_id for c in claims}
        with transaction(self.ctx.sessions) as session:
            for issue_id in issues:
                finish_if_done(session, issue_id)
        return issues, sent

    def _release(self) -> int:
        with transaction(self.ctx.sessions) as session:
            return outbox.release(session, self.name)
