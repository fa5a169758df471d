"""Faults under a running service: the database goes away mid-send and comes back, a
template breaks, a channel raises. The service stays up, loses nothing and sends nothing
twice.

The outages are real: a private PostgreSQL server (tests/pg_cluster.py) stopped with
`pg_ctl stop -m fast` under a real `dispatch run`, and a SQLite file locked by another
connection for longer than the busy timeout. Every wait polls a condition with a
deadline; how long an outage lasts is a stimulus, never asserted.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import socket
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO, SAMPLE_ISSUE
from pg_cluster import PrivatePostgres
from smtp_servers import MailServer
from sqlalchemy import select
from test_service import (
    Site,
    by_recipient,
    email_readers,
    healthy,
    http_get,
    message_id,
    site,
    wait_for,
)

from dispatch.config import load
from dispatch.db.models import Delivery
from dispatch.deliver.channel import Outcome, Outgoing
from dispatch.deliver.smtp import SmtpChannel
from dispatch.deliver.worker import Worker
from dispatch.health import Part
from dispatch.runtime import Runtime
from dispatch.service import supervise

N = 2000
# Slow enough that the outage lands mid-send, fast enough for a short test: 400/s.
RATE = {"rate_per_minute": 24_000}


def health(s: Site) -> tuple[int, str]:
    return http_get(f"{s.base_url}/healthz")


def assert_each_reader_got_exactly_one(s: Site, mail: MailServer, issue: int, n: int) -> None:
    received = by_recipient(mail)
    assert len(received) == n
    twice = sorted(to for to, copies in received.items() if len(copies) > 1)
    assert not twice, f"{len(twice)} readers got the issue twice: {twice[:5]}"
    assert len({message_id(copies[0]) for copies in received.values()}) == n
    states = Counter(state for _, _, ch, state in s.deliveries() if ch == "email")
    assert states == {"sent": n}, states
    sent_records = Counter(outcomes.count("sent") for outcomes in s.attempts().values())
    assert sent_records == {1: n}, sent_records
    assert s.status(issue)["status"] == "sent"


def outage_mid_send(s: Site, mail: MailServer, down: Callable[[], None], up: Callable[[], None],
                    hold: Callable[[], bool], what: str) -> list[str]:
    """Start `dispatch run`, cut the database (`down`) once a few hundred messages are
    out, keep it cut until `hold()` is false, bring it back (`up`); what /healthz said
    during the outage, one body per distinct answer."""
    run = s.start("run", "run")
    wait_for(lambda: healthy(s), "/healthz ok at start", 60, watch=[run])
    wait_for(lambda: len(mail.accepted) >= 300, "a few hundred messages", 60, watch=[run])
    down()
    assert len(mail.accepted) < N, "everything went out before the outage: nothing was tested"
    said: list[str] = []

    def unavailable() -> bool:
        status, body = health(s)
        if status == 503 and body not in said:
            said.append(body)
        return status == 503 and "\nworker: down" in body

    wait_for(unavailable, f"/healthz 503 with the worker down during the {what}", 30, watch=[run])
    run.wait_log(r"WARNING dispatch\.deliver\.worker: worker \S+: \w+Error: .*; trying again in")
    wait_for(lambda: not hold(), f"the {what} to have lasted", 60, watch=[run])
    up()

    wait_for(lambda: len(by_recipient(mail)) == N, "every reader served", 90, watch=[run])
    wait_for(lambda: s.email_pending() == 0, "every delivery acked", 30, watch=[run])
    wait_for(lambda: healthy(s), "/healthz ok after the outage", 30, watch=[run])
    assert run.proc.poll() is None
    log = run.log()
    assert run.stop() == 0, log
    # Faults are WARNING lines, without tracebacks or readers' addresses.
    assert "Traceback" not in log and "ended unexpectedly" not in log, log
    assert "@example.com" not in log
    return said


# -- PostgreSQL stopped and started again ---------------------------------------------------


@pytest.mark.pg
@pytest.mark.slow
def test_postgresql_stopped_mid_send_then_started_again(tmp_path, mail):
    with PrivatePostgres() as pg, site(tmp_path, pg.url, mail, smtp=RATE) as s:
        s.import_readers(email_readers(N))
        issue = s.final_issue()
        stopped_at: list[float] = []

        def down() -> None:
            pg.stop()
            stopped_at.append(time.monotonic())

        said = outage_mid_send(
            s, mail, down, pg.start,
            hold=lambda: time.monotonic() - stopped_at[0] < 15,  # ~15 s without a database
            what="PostgreSQL outage",
        )
        assert any(b.startswith("unavailable: ") and "\ndatabase: unavailable: " in b
                   for b in said), said
        assert_each_reader_got_exactly_one(s, mail, issue, N)


# -- SQLite locked by another connection ----------------------------------------------------


@pytest.mark.slow
def test_sqlite_locked_longer_than_the_busy_timeout_mid_send(tmp_path, sqlite_url, mail):
    with site(tmp_path, sqlite_url, mail, smtp=RATE,
              database={"busy_timeout_seconds": 1}) as s:
        s.import_readers(email_readers(N))
        issue = s.final_issue()
        path = sqlite_url.removeprefix("sqlite:///")
        lock = sqlite3.connect(path, isolation_level=None, timeout=30)

        def gave_up_waiting() -> int:
            return len(re.findall(r"worker \S+: OperationalError: database is locked", run_log()))

        def run_log() -> str:
            return next(x for x in s.services if x.name == "run").log()

        try:
            said = outage_mid_send(
                s, mail, lambda: lock.execute("BEGIN EXCLUSIVE"), lambda: lock.execute("ROLLBACK"),
                # Locked until the worker has waited out the busy timeout three times.
                hold=lambda: gave_up_waiting() < 3,
                what="lock",
            )
        finally:
            lock.close()
        assert any("worker: down for" in b and "database is locked" in b for b in said), said
        assert_each_reader_got_exactly_one(s, mail, issue, N)


# -- a batch's outcomes outlive a database that went away --------------------------------


class LockAfterSending:
    """The email channel, and right after it has sent the first batch, the database is
    locked by another connection: the worker can't record what it just sent."""

    name = "email"

    def __init__(self, inner: SmtpChannel, lock: sqlite3.Connection):
        self.inner = inner
        self.lock = lock
        self.locked = False

    async def push(self, batch: list[Outgoing]) -> list[Outcome]:
        outcomes = await self.inner.push(batch)
        if not self.locked:
            self.lock.execute("BEGIN EXCLUSIVE")
            self.locked = True
        return outcomes

    async def flush(self) -> None: ...

    async def close(self) -> None:
        await self.inner.close()


class RaiseOnce:
    """The email channel, but its first push raises before sending anything (a bug)."""

    name = "email"

    def __init__(self, inner: SmtpChannel):
        self.inner = inner
        self.raised = False

    async def push(self, batch: list[Outgoing]) -> list[Outcome]:
        if not self.raised:
            self.raised = True
            raise RuntimeError("the channel broke")
        return await self.inner.push(batch)

    async def flush(self) -> None: ...

    async def close(self) -> None:
        await self.inner.close()


def planned(s: Site, n: int) -> tuple[int, Runtime]:
    s.import_readers(email_readers(n))
    issue = s.final_issue()
    s.cli_json("send", str(issue))  # plans; nothing sent
    return issue, Runtime(load(s.config, env={}))


async def run_until(worker: Worker, done: Callable[[], bool], during: Callable[[], None]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    deadline = time.monotonic() + 60
    while not done():
        assert not task.done(), task
        assert time.monotonic() < deadline, "timed out"
        during()
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 30)


def test_outcomes_the_database_could_not_take_are_recorded_when_it_is_back(
    tmp_path, sqlite_url, mail, caplog
):
    n = 30
    with site(tmp_path, sqlite_url, mail, database={"busy_timeout_seconds": 0.5},
              delivery={"batch_size": 10}) as s:
        issue, runtime = planned(s, n)
        lock = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        channel = LockAfterSending(SmtpChannel.from_config(runtime.config), lock)
        worker = Worker(runtime, {"email": channel})
        seen_down: list[str] = []

        def during() -> None:
            # Unlock once the worker has met the lock twice, keeping the first batch's
            # outcomes: the lock outlived the busy timeout.
            if worker.health.down_since is not None and worker.health.reason not in seen_down:
                seen_down.append(worker.health.reason)
            if channel.locked and lock.in_transaction and len(seen_down) >= 2:
                lock.execute("ROLLBACK")

        with caplog.at_level(logging.INFO):
            asyncio.run(run_until(worker, lambda: s.email_pending() == 0, during))
        lock.close()

    assert seen_down and all("database is locked" in r for r in seen_down), seen_down
    received = by_recipient(mail)
    assert len(received) == n and all(len(c) == 1 for c in received.values())
    # Claimed once each: the first batch was recorded from memory, never claimed again.
    with runtime.sessions() as session:
        assert set(session.scalars(select(Delivery.attempts))) == {1}
    assert Counter(o for outcomes in s.attempts().values() for o in outcomes) == {"sent": n}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and r.name == "dispatch.deliver.worker"]
    assert warnings and "10 outcomes kept to record" in warnings[0].getMessage()
    assert "outcomes kept through a fault are recorded" in caplog.text
    assert not [r for r in caplog.records if r.name.startswith("dispatch")
                and r.levelno >= logging.INFO and "@example.com" in r.getMessage()]
    assert s.status(issue)["status"] == "sent"


def test_a_channel_that_raises_pauses_the_worker_and_its_messages_are_retried(
    tmp_path, sqlite_url, mail, caplog
):
    n = 8
    with site(tmp_path, sqlite_url, mail, delivery={"retry_base_seconds": 0.1}) as s:
        issue, runtime = planned(s, n)
        channel = RaiseOnce(SmtpChannel.from_config(runtime.config))
        worker = Worker(runtime, {"email": channel})
        with caplog.at_level(logging.INFO):
            asyncio.run(run_until(worker, lambda: s.email_pending() == 0, lambda: None))

    [warning] = [r for r in caplog.records
                 if r.levelno >= logging.WARNING and r.name.startswith("dispatch")]
    assert re.search(r"ChannelFault: RuntimeError: the channel broke; trying again in",
                     warning.getMessage())
    received = by_recipient(mail)
    assert len(received) == n and all(len(c) == 1 for c in received.values())
    assert all(outcomes == ["temporary", "sent"] for outcomes in s.attempts().values())
    assert s.status(issue)["status"] == "sent"


# -- render errors ---------------------------------------------------------------------------


def templates_with(tmp_path: Path, name: str, edit: Callable[[str], str]) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(REPO / "templates", folder)
    path = folder / name
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    return folder


def test_a_render_error_fails_only_the_readers_it_concerns(tmp_path, sqlite_url, mail):
    # A template mistake that only 全部 readers' variant meets.
    folder = templates_with(tmp_path, "email.txt.j2", lambda t: (
        "{% if digest.whole_issue %}{{ no_such_variable }}{% endif %}" + t))
    n = 10  # every fifth follows 全部 (email_readers)
    with site(tmp_path, sqlite_url, mail, paths={"templates": str(folder)}) as s:
        s.import_readers(email_readers(n))
        issue = s.final_issue()
        data = s.cli_json("send", str(issue), "--wait")
        shown = s.ok("status", str(issue))

    whole = {f"reader{i}@example.com" for i in range(0, n, 5)}
    assert set(by_recipient(mail)) == {f"reader{i}@example.com" for i in range(n)} - whole
    assert data["counts"]["email"]["failed"] == len(whole) and data["pending"] == 0
    reasons = {f["reason"] for f in data["failures"]}
    assert reasons == {"not sent: render error: UndefinedError: 'no_such_variable' is undefined"}
    assert "生成出错：UndefinedError" in shown
    assert data["status"] == "sent"


def test_an_issue_that_cannot_be_rendered_fails_its_rows_and_the_batch_goes_on(
    tmp_path, sqlite_url, mail
):
    # The numbered issue's email includes a template that does not exist.
    folder = templates_with(tmp_path, "email.html.j2", lambda t: (
        "{% if issue.number %}{% include 'missing.html.j2' %}{% endif %}" + t))
    numbered = tmp_path / "numbered.txt"
    numbered.write_text("许昌竞争情报快递\n2024年第9期\n" + SAMPLE_ISSUE.read_text(encoding="utf-8"),
                        encoding="utf-8")
    n = 5
    with site(tmp_path, sqlite_url, mail, paths={"templates": str(folder)}) as s:
        s.import_readers(email_readers(n))
        broken = s.cli_json("issues", "ingest", str(numbered))["id"]
        s.ok("issues", "finalize", str(broken))
        s.cli_json("send", str(broken))  # planned first: the same batch as the next one
        fine = s.final_issue()
        data = s.cli_json("send", str(fine), "--wait")
        failed = s.status(broken)

    assert data["counts"]["email"]["sent"] == n and data["status"] == "sent"
    assert len(mail.accepted) == n
    assert failed["counts"]["email"]["failed"] == n
    [reason] = {f["reason"] for f in failed["failures"]}
    assert reason.startswith(
        "not sent: the issue can't be rendered: TemplateNotFound: missing.html.j2"
    ), reason


# -- what ends `dispatch run`, and what doesn't ----------------------------------------------


def test_a_web_port_already_taken_is_a_fatal_error_at_start(tmp_path, sqlite_url, mail):
    with site(tmp_path, sqlite_url, mail) as s, socket.socket() as taken:
        taken.bind(("127.0.0.1", s.web_port))
        taken.listen()
        s.import_readers(email_readers(3))
        s.final_issue()
        done = s.run("run", timeout=60)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"web app: cannot listen on 127.0.0.1:{s.web_port}" in done.stderr
        # It stopped before the worker started: nothing was claimed or sent.
        assert not mail.accepted
        assert {state for *_, state in s.deliveries()} <= {"queued"}


def test_a_part_that_ends_unexpectedly_is_restarted_with_a_pause(caplog):
    runs: list[int] = []
    part = Part("scheduler")

    async def main() -> None:
        stop = asyncio.Event()

        async def flaky() -> None:
            runs.append(len(runs) + 1)
            if len(runs) == 1:
                raise RuntimeError("a bug")
            if len(runs) == 2:
                return  # ended without being asked to
            assert not part.status()[0]  # down while it is being restarted
            stop.set()

        await asyncio.wait_for(supervise("scheduler", flaky, stop, part), 30)

    with caplog.at_level(logging.INFO):
        asyncio.run(main())
    assert runs == [1, 2, 3]
    errors = [r.getMessage() for r in caplog.records if r.name == "dispatch.service"]
    assert re.fullmatch(r"scheduler ended unexpectedly \(RuntimeError: a bug\); "
                        r"restarting it in \d+\.\ds", errors[0]), errors
    assert re.fullmatch(r"scheduler ended unexpectedly \(it returned\); restarting it in \d+\.\ds",
                        errors[1]), errors
    assert part.reason == "restarting after: it returned"


# -- started before its database -----------------------------------------------------------


@pytest.mark.pg
@pytest.mark.slow
def test_run_started_before_postgresql_waits_for_it_then_delivers(tmp_path, mail):
    n = 20
    with PrivatePostgres() as pg, site(tmp_path, pg.url, mail) as s:
        s.import_readers(email_readers(n))
        issue = s.final_issue()
        pg.stop()  # a reboot where dispatch comes up first

        run = s.start("run", "run")
        wait_for(lambda: run.log().count("database not available yet") >= 2,
                 "the service saying it waits for the database", 60, watch=[run])
        assert run.proc.poll() is None
        pg.start()
        wait_for(lambda: health(s)[0] == 200, "/healthz 200 once the database is up", 60,
                 watch=[run])
        wait_for(lambda: s.email_pending() == 0 and len(by_recipient(mail)) == n,
                 "every reader served", 60, watch=[run])
        assert run.stop() == 0, run.log()
        assert "@example.com" not in run.log()
        assert s.status(issue)["counts"]["email"]["sent"] == n

        # A fault that waiting won't mend is refused at once, in one line.
        s.env["DISPATCH_DATABASE_URL"] = pg.url.rsplit("/", 1)[0] + "/no_such_database"
        done = s.run("run")
        assert done.returncode == 1, done.stderr
        assert "不存在" in done.stderr and "Traceback" not in done.stderr
    assert all(len(copies) == 1 for copies in by_recipient(mail).values())
