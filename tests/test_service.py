"""The delivery engine as an operator runs it: real `dispatch run`, `dispatch worker` and
`dispatch send` processes against a real SMTP server on loopback, stopped by signals and
killed outright.

The set-up steps (import, ingest, finalize, status) run in-process through the CLI, as
the other CLI tests do: each fresh `python -m dispatch` costs ~2 s of imports, and what is
under test here is the long-running processes. Every wait polls with a deadline; a child
still running when a test ends is killed.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import REPO, SAMPLE_ISSUE, Dispatch, _truncate_pg
from smtp_servers import MailServer, Received, free_port, slow
from sqlalchemy import func, select

from dispatch.db.models import Delivery, DeliveryAttempt, Reader
from dispatch.db.session import make_engine

pytestmark = pytest.mark.slow

SRC = REPO / "src"
PENDING = ("queued", "sending", "retry")
INDUSTRIES = ["全部", "新材料、装备制造", "生物医药", "发制品、轻纺", "新一代信息技术、智能装备"]
T = TypeVar("T")


# -- helpers -------------------------------------------------------------------------------


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child `dispatch`: ours without any DISPATCH_* of the
    developer's shell, the repo's src first on the path, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def wait_for(check: Callable[[], T], what: str, timeout: float = 30.0, *,
             watch: tuple[Service, ...] | list[Service] = ()) -> T:
    """Poll `check` until it returns something true; fail naming `what` after `timeout`
    seconds, or as soon as a watched service has died."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        for service in watch:
            if service.proc.poll() is not None:
                pytest.fail(f"{service.name} exited ({service.proc.returncode}) while waiting "
                            f"for {what}\n{service.log()}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {s.name}\n{s.log()[-3000:]}" for s in watch)
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(0.02)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


class Service:
    """A `dispatch` child process; its stdout and stderr go to a log file."""

    def __init__(self, name: str, args: list[str], cwd: Path, env: dict[str, str]):
        self.name = name
        self.log_path = cwd / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dispatch", *args],
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, pattern: str, timeout: float = 30.0) -> re.Match:
        return wait_for(lambda: re.search(pattern, self.log()), f"{pattern!r} in {self.name}'s log",
                        timeout, watch=[self])

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, as an init system would; the exit code (fails if it hangs)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} still running {timeout:.0f}s after SIGTERM\n{self.log()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        self.kill()
        self._log.close()


class Site(Dispatch):
    """One installation: a folder with its config.toml and database, mailing to `mail`.

    Calling it runs a CLI command in-process (conftest.Dispatch); `start` runs one as a
    child process."""

    def __init__(self, home: Path, db_url: str, mail: MailServer, **sections: dict[str, Any]):
        super().__init__(home, db_url)
        self.web_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        settings: dict[str, dict[str, Any]] = {
            "database": {"url": db_url},
            "web": {"listen": f"127.0.0.1:{self.web_port}", "base_url": self.base_url},
            "smtp": {"host": mail.host, "port": mail.port, "security": "none",
                     "rate_per_minute": 0, "reply_domain": "bulletin.test"},
            "schedule": {"tick_seconds": 1},
            # A long lease where a test doesn't need one to lapse (see test 5).
            "delivery": {"lease_seconds": 30, "idle_seconds": 0.2, "batch_size": 50},
            "tagging": {"rules": str(REPO / "rules" / "industries.toml")},
            "paths": {"templates": str(REPO / "templates"), "recipients": str(home)},
        }
        for name, values in sections.items():
            settings[name].update(values)
        self.config.write_text(
            "".join(
                f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())
                for name, values in settings.items()
            ),
            encoding="utf-8",
        )
        self.env: dict[str, str] = {}  # DISPATCH_* settings for every command of this site
        self.services: list[Service] = []

    # in-process commands
    def cli_json(self, *args: str) -> Any:
        r = self(*args, "--json", env=self.env)
        assert r.exit_code == 0, f"dispatch {' '.join(args)} → {r.exit_code}\n{r.stdout}\n{r.stderr}"
        return json.loads(r.stdout)

    def import_readers(self, rows: list[dict[str, str]]) -> None:
        path = self.home / "readers.csv"
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, ["姓名", "邮箱", "企业微信账号", "关注产业", "接收方式", "状态"])
            writer.writeheader()
            writer.writerows(rows)
        result = self.cli_json("recipients", "import", str(path))
        assert result["added"] == len(rows) and not result["errors"], result

    def final_issue(self) -> int:
        """The sample issue, ingested and finalized with publication now."""
        issue = self.cli_json("issues", "ingest", str(SAMPLE_ISSUE))["id"]
        r = self("issues", "finalize", str(issue), env=self.env)
        assert r.exit_code == 0, r.stdout + r.stderr
        return issue

    def status(self, issue: int) -> dict:
        return self.cli_json("status", str(issue))

    # child processes
    def start(self, name: str, *args: str) -> Service:
        service = Service(name, ["--config", str(self.config), *args], self.home,
                          child_env(self.env))
        self.services.append(service)
        return service

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dispatch", "--config", str(self.config), *args],
            cwd=self.home, env=child_env(self.env), capture_output=True, text=True,
            timeout=timeout,
        )

    def close(self) -> None:
        for service in self.services:
            service.close()

    # the database, read directly
    def deliveries(self) -> list[tuple[int, str | None, str, str]]:
        """(delivery id, reader's email, channel, state) of every delivery."""
        engine = make_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(
                    select(Delivery.id, Reader.email, Delivery.channel, Delivery.state)
                    .join(Reader, Reader.id == Delivery.reader_id)
                )]
        finally:
            engine.dispose()

    def attempts(self) -> dict[int, list[str]]:
        """Each delivery's recorded attempt outcomes."""
        engine = make_engine(self.db_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(DeliveryAttempt.delivery_id, DeliveryAttempt.outcome)
                    .order_by(DeliveryAttempt.id)
                ).all()
        finally:
            engine.dispose()
        out: dict[int, list[str]] = defaultdict(list)
        for delivery_id, outcome in rows:
            out[delivery_id].append(outcome)
        return out

    def holders(self) -> Counter[str]:
        """How many rows each lease holder has in 'sending'."""
        engine = make_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return Counter(dict(conn.execute(
                    select(Delivery.lease_owner, func.count())
                    .where(Delivery.state == "sending").group_by(Delivery.lease_owner)
                ).all()))
        finally:
            engine.dispose()

    def email_pending(self) -> int:
        return sum(1 for _, _, ch, state in self.deliveries() if ch == "email" and state in PENDING)


@contextlib.contextmanager
def site(tmp_path: Path, db_url: str, mail: MailServer, **sections: dict[str, Any]) -> Iterator[Site]:
    s = Site(tmp_path, db_url, mail, **sections)
    try:
        yield s
    finally:
        s.close()


def email_readers(n: int) -> list[dict[str, str]]:
    return [{"姓名": f"读者{i}", "邮箱": f"reader{i}@example.com",
             "关注产业": INDUSTRIES[i % len(INDUSTRIES)]} for i in range(n)]


def recipient(message: Received) -> str:
    [to] = message.rcpt_tos
    return to


def message_id(message: Received) -> str:
    return message_from_bytes(message.data, policy=policy.default)["Message-ID"]


def by_recipient(mail: MailServer) -> dict[str, list[Received]]:
    out: dict[str, list[Received]] = defaultdict(list)
    for m in list(mail.accepted):
        out[recipient(m)].append(m)
    return out


def http_get(url: str) -> tuple[int, str]:
    """(status, body); (0, "") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8")
    except OSError:
        return 0, ""


def healthy(s: Site) -> bool:
    status, body = http_get(f"{s.base_url}/healthz")
    return status == 200 and body.startswith("ok\n")


def worker_of(service: Service) -> str:
    """The worker name a `dispatch run`/`worker` process logged at start."""
    return service.wait_log(r"worker (\S+) started", 60).group(1)


# -- 1. publication day, nobody touching anything -------------------------------------------


def test_run_sends_on_publication_day_and_stops_cleanly(tmp_path, sqlite_url, mail):
    rows: list[dict[str, str]] = []
    for i in range(20):
        row = {"姓名": f"读者{i}", "关注产业": INDUSTRIES[i % len(INDUSTRIES)]}
        if i < 10 or i >= 15:
            row["邮箱"] = f"reader{i}@example.com"
        if 10 <= i < 18:
            row["企业微信账号"] = f"Reader{i}"
        if i >= 18:
            row["状态"] = "停用"  # on the list, paused: gets nothing
        rows.append(row)
    active_email = {f"reader{i}@example.com" for i in [*range(10), 15, 16, 17]}
    wecom_readers = 8  # 10–17

    with site(tmp_path, sqlite_url, mail) as s:
        s.import_readers(rows)
        issue = s.final_issue()
        run = s.start("run", "run")

        wait_for(lambda: healthy(s), "/healthz", watch=[run])
        wait_for(lambda: len(mail.accepted) >= len(active_email), "one message per email reader",
                 watch=[run])
        wait_for(lambda: s.email_pending() == 0, "every email delivery acked", watch=[run])

        # The web-view link of a received message answers while the service is up.
        body = message_from_bytes(mail.accepted[0].data, policy=policy.default)
        text = body.get_body(("plain",)).get_content()
        link = re.search(re.escape(s.base_url) + r"/w/[a-z2-7]+\b", text)
        assert link, text
        status, page = http_get(link.group())
        assert status == 200 and "许昌竞争情报快递" in page

        assert run.stop() == 0, run.log()

    received = by_recipient(mail)
    assert set(received) == active_email
    assert all(len(copies) == 1 for copies in received.values())
    data = s.status(issue)
    assert data["counts"]["email"]["sent"] == len(active_email)
    assert data["counts"]["wecom"]["queued"] == wecom_readers  # no channel: waits, never fails
    for channel, states in data["counts"].items():
        assert states["sending"] == 0, (channel, states)
        assert states["failed"] == 0, (channel, states)
    assert data["pending"] == wecom_readers and not data["failures"]


# -- 2. a crash in the middle ----------------------------------------------------------------


def test_kill_mid_send_loses_nothing_and_duplicates_only_in_flight(tmp_path, sqlite_url, mail):
    n = 2000
    # The server takes its time over one message: the kill lands while a batch is held.
    stuck = "reader350@example.com"
    mail.faults[stuck] = [slow(30)]
    # A lease far longer than the test: what the killed process held comes back only
    # because the restart on the same host sees that its process is gone.
    with site(tmp_path, sqlite_url, mail, delivery={"lease_seconds": 600}) as s:
        s.import_readers(email_readers(n))
        issue = s.final_issue()

        first = s.start("run1", "run")
        dead = worker_of(first)
        wait_for(lambda: stuck in mail.state.delayed, "a batch in flight", 60, watch=[first])
        first.proc.send_signal(signal.SIGKILL)
        first.kill()
        before_kill = len(mail.accepted)
        assert before_kill < n, "everything went out before the kill: nothing was tested"
        held = s.holders()
        in_flight = {email for _, email, _, state in s.deliveries() if state == "sending"}
        assert set(held) == {dead} and held[dead], held

        # Restarted: it takes the dead process's rows at once, then is stopped cleanly
        # mid-send: a live process gives back what it holds, nothing stays in flight.
        second = s.start("run2", "run")
        second.wait_log(rf"{held[dead]} deliveries held by 1 dead worker\(s\) on this host "
                        rf"are claimable now: {re.escape(dead)}")
        wait_for(lambda: len(mail.accepted) >= before_kill + 500, "more messages", 60,
                 watch=[second])
        assert second.stop() == 0, second.log()
        assert len(mail.accepted) < n, "everything went out before SIGTERM: nothing was tested"
        assert s.holders() == {}, "rows still 'sending' after a clean stop"
        assert not {e for _, e, _, state in s.deliveries() if state == "sending"}

        third = s.start("run3", "run")
        wait_for(lambda: len(by_recipient(mail)) == n, "every reader served", 90, watch=[third])
        wait_for(lambda: s.email_pending() == 0, "every delivery acked", watch=[third])
        assert third.stop() == 0, third.log()

    received = by_recipient(mail)
    assert len(received) == n
    twice = {to for to, copies in received.items() if len(copies) > 1}
    assert twice <= in_flight, f"duplicates not in flight at the kill: {sorted(twice - in_flight)}"
    for to in twice:
        assert len({message_id(m) for m in received[to]}) == 1, to
        assert len(received[to]) == 2, to
    # One Message-ID per reader, never shared between two readers.
    assert len({message_id(copies[0]) for copies in received.values()}) == n

    states = Counter(state for _, _, ch, state in s.deliveries() if ch == "email")
    assert states == {"sent": n}
    sent_records = {d: outcomes.count("sent") for d, outcomes in s.attempts().items()}
    assert len(sent_records) == n and set(sent_records.values()) == {1}
    assert s.status(issue)["status"] == "sent"


# -- 3. three workers on PostgreSQL -----------------------------------------------------------


def test_three_workers_share_one_issue_on_postgresql(tmp_path, pg_database, mail):
    _truncate_pg(pg_database)
    n = 600
    with site(tmp_path, pg_database, mail, delivery={"batch_size": 20}) as s:
        s.import_readers(email_readers(n))
        issue = s.final_issue()
        # The workers first, idle and polling, then the plan: each of them finds work.
        workers = [s.start(f"worker{i}", "worker") for i in range(3)]
        for w in workers:
            w.wait_log(r"worker \S+ started", 60)

        planned = s.cli_json("send", str(issue))  # without --wait: plans only
        assert sum(planned["counts"]["email"].values()) == n

        wait_for(lambda: len(mail.accepted) >= n, "every message", 60, watch=workers)
        wait_for(lambda: s.email_pending() == 0, "every delivery acked", watch=workers)
        for w in workers:
            assert w.stop() == 0, w.log()

    received = by_recipient(mail)
    assert len(received) == n and all(len(copies) == 1 for copies in received.values())
    assert len(mail.accepted) == n
    attempts = s.attempts()
    assert len(attempts) == n and all(outcomes == ["sent"] for outcomes in attempts.values())
    sent_by = [int(w.wait_log(r"stopped after (\d+) sent", 5).group(1)) for w in workers]
    assert sum(sent_by) == n
    assert all(sent_by), f"a worker sent nothing: {sent_by}"
    assert s.status(issue)["status"] == "sent"


# -- 4. too late while the service was down --------------------------------------------------


def test_issue_overdue_after_downtime_waits_for_staff(tmp_path, sqlite_url, mail):
    n = 5
    with site(tmp_path, sqlite_url, mail) as s:
        s.env["DISPATCH_SCHEDULE__MAX_LATENESS_HOURS"] = "0.0003"  # ~1 s
        s.import_readers(email_readers(n))
        issue = s.final_issue()
        wait_for(lambda: s.status(issue)["overdue"], "the issue to be overdue", 10)

        run = s.start("run", "run")
        told = run.wait_log(rf"issue {issue} passed its publication time.*`dispatch send {issue}`")
        assert "WARNING" in run.log()[: told.end()].splitlines()[-1]
        time.sleep(2.5)  # a few more ticks (1 s): nothing may go out
        assert not mail.accepted
        data = s.status(issue)
        assert data["status"] == "finalized" and data["overdue"] and data["counts"] == {}

        # Staff send it by hand while the service runs.
        sent = s.run("send", str(issue), "--wait", "--json")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        data = json.loads(sent.stdout)
        assert data["counts"]["email"]["sent"] == n and data["pending"] == 0, data
        assert data["status"] == "sent" and not data["overdue"]
        assert run.stop() == 0, run.log()

    received = by_recipient(mail)
    assert len(received) == n and all(len(copies) == 1 for copies in received.values())


# -- 5. a batch slower than its lease -----------------------------------------------------


def test_batch_slower_than_its_lease_is_not_sent_twice(tmp_path, sqlite_url, mail):
    n = 6
    # One batch of 6 at 60 a minute (3 at once, then one a second) takes ~3 s: longer than
    # the 2 s lease. The worker holding it is alive and working: nobody else may send it.
    with site(tmp_path, sqlite_url, mail, delivery={"batch_size": n, "lease_seconds": 2},
              smtp={"rate_per_minute": 60}) as s:
        s.import_readers(email_readers(n))
        issue = s.final_issue()
        workers = [s.start(f"worker{i}", "worker") for i in range(2)]
        for w in workers:
            w.wait_log(r"worker \S+ started", 60)
        s.cli_json("send", str(issue))

        def twice() -> list[str]:
            return sorted(to for to, copies in by_recipient(mail).items() if len(copies) > 1)

        wait_for(lambda: twice() or s.email_pending() == 0, "every delivery acked", 60,
                 watch=workers)
        assert not twice(), f"sent twice with no crash: {twice()}"
        assert len(by_recipient(mail)) == n
        for w in workers:
            assert w.stop() == 0, w.log()
