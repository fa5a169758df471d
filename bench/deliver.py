"""End to end delivery (plan, render, send) into Postfix's smtp-sink, beside smtp-source.

One smtp-sink on loopback takes both: Postfix's own generator `smtp-source` pushing N
messages of dispatch's average size (-d: many messages per connection, -s sessions), and
dispatch sending an issue to N readers: `dispatch worker` processes (already running,
sharing the outbox) and `dispatch send ISSUE` (plan), timed from the moment `send`
starts until the last delivery is acked 'sent'. The sink's counters confirm it accepted
every message of both.

Readers are inserted straight into the tables with SQLAlchemy Core (fast, not through
`dispatch recipients import`), drawn like bench/render.py's: weighted industries, 8 %
following 全部. The issue is samples/issue-sample.txt, ingested and finalized with the CLI.

Memory: the peak RSS (VmHWM) of each dispatch process, read from /proc: for a worker just
before it is stopped, for the `send` process while it runs. `peak_rss_mb` is the MAX
over those processes (the largest single process), the sum of the workers is printed too.

Needs Postfix's test tools (/usr/sbin/smtp-sink, smtp-source): on Debian,
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix
and, for PostgreSQL (the default), a server on 127.0.0.1:5432 with trust auth; the bench
creates its own database and drops it afterwards.

    .venv/bin/python bench/deliver.py [--readers 10000] [--large 100000 | --no-large]
        [--database postgresql|sqlite|both] [--workers 2] [--concurrency 8]
        [--batch-size 100] [--sessions 16]

Prints a summary to stderr and, last, one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sqlalchemy import create_engine, exists, func, insert, select, text  # noqa: E402

from dispatch import editorial  # noqa: E402
from dispatch.config import load  # noqa: E402
from dispatch.db.models import Delivery, Reader, ReaderChannel, ReaderIndustry  # noqa: E402
from dispatch.db.session import make_engine, session_factory  # noqa: E402
from dispatch.render.pipeline import IssueRenderer, ReaderView  # noqa: E402
from dispatch.render.templates import environment  # noqa: E402
from dispatch.track.tokens import new_token  # noqa: E402

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PENDING = ("queued", "sending", "retry")
SIZE_SAMPLE = 2000  # readers rendered in-process to learn the average message size
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _bench_render():
    """bench/render.py's reader generator (one population model for both benches)."""
    spec = importlib.util.spec_from_file_location("bench_render", Path(__file__).with_name("render.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- processes -----------------------------------------------------------------------


class Children:
    """Every process the bench starts; all of them are ended on exit."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(args, **kw)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen, timeout: float = 15.0) -> None:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait(5)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self) -> None:
        for p in list(self.procs):
            self.stop(p, timeout=5.0)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (KiB) of a live process, from /proc."""
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_cpu(dbname: str) -> float:
    """CPU seconds of the PostgreSQL backends connected to `dbname` (live ones)."""
    total = 0.0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"postgres: ") and f" {dbname} ".encode() in cmd:
            total += proc_cpu(int(d.name))
    return total


def all_cpu() -> dict[int, tuple[str, float]]:
    """{pid: (short command, CPU seconds)} of every process on the machine."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        cpu = proc_cpu(int(d.name))
        if cpu:
            out[int(d.name)] = (cmd[:90] or f"[{d.name}]", cpu)
    return out


def top_consumers(before: dict, after: dict, n: int = 6) -> list[tuple[str, float]]:
    """Who used the CPU between two all_cpu() snapshots (processes alive at the end)."""
    used = [(cmd, cpu - before.get(pid, ("", 0.0))[1]) for pid, (cmd, cpu) in after.items()]
    return sorted((u for u in used if u[1] > 0.05), key=lambda u: -u[1])[:n]


def system_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_timed(children: Children, args: list[str], env: dict, timeout: float) -> tuple[float, str, float]:
    """Run a command to its end: (seconds, stdout, peak RSS MiB).

    The peak is the child's VmHWM, sampled every 10 ms once it has exec'd (it only
    grows, so the last sample holds it). Not wait4's ru_maxrss: on Linux that keeps
    the high-water mark of the forked copy of this process from before exec.
    """
    t0 = time.perf_counter()
    want = "\0".join(args).encode()
    peak_kib = 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = children.start(args, stdout=out, stderr=err, env=env)
        deadline = time.monotonic() + timeout
        cmdline = Path(f"/proc/{p.pid}/cmdline")
        while p.poll() is None:
            with contextlib.suppress(OSError):
                if cmdline.read_bytes().rstrip(b"\0") == want:
                    peak_kib = max(peak_kib, proc_status(p.pid).get("VmHWM", 0))
            if time.monotonic() > deadline:
                children.stop(p)
                raise RuntimeError(f"{' '.join(args)}: no end after {timeout:.0f}s")
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        children.procs.remove(p)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {p.returncode}\n{stdout}\n{stderr}")
    return elapsed, stdout, peak_kib / 1024


# -- the sink --------------------------------------------------------------------------


class Sink:
    """smtp-sink on loopback, counting (-c) and keeping nothing (no -d/-D)."""

    def __init__(self, children: Children, workdir: Path) -> None:
        self.port = free_port()
        self.log = workdir / "smtp-sink.out"
        args = [SMTP_SINK, "-c"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]  # required when started as root
        args += [f"127.0.0.1:{self.port}", "1000"]
        with self.log.open("wb") as out:
            self.proc = children.start(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1) as s:
                s.recv(100)
                s.sendall(b"QUIT\r\n")
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"smtp-sink did not start: {self.log.read_text(errors='replace')}")

    def messages(self) -> int:
        """Messages accepted so far (the last 'mesg=N' counter)."""
        with self.log.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4000))
            found = re.findall(rb"mesg=(\d+)", f.read())
        return int(found[-1]) if found else 0

    def wait_for(self, count: int, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while (n := self.messages()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return n

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)


def baseline(sink: Sink, children: Children, count: int, size: int, sessions: int) -> float:
    before = sink.messages()
    elapsed, _, _ = run_timed(
        children,
        [SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(count), "-l", str(size),
         "-f", "bulletin@localhost", "-t", "reader@example.gov.cn", f"127.0.0.1:{sink.port}"],
        env=os.environ.copy(), timeout=600,
    )
    got = sink.wait_for(before + count) - before
    if got != count:
        raise RuntimeError(f"smtp-sink accepted {got} of smtp-source's {count} messages")
    rate = count / elapsed
    say(f"  smtp-source: {count} × {size} B, {sessions} sessions: {elapsed:.2f}s, {rate:,.0f}/s "
        f"(sink counted {got})")
    return rate


# -- a database with readers and an issue ------------------------------------------------


@dataclass
class Setup:
    url: str
    label: str  # postgresql | sqlite
    dbname: str = ""
    workdir: Path = field(default_factory=Path)

    def drop(self) -> None:
        if self.label == "postgresql" and self.dbname:
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)'))
            admin.dispose()


def new_database(kind: str, workdir: Path, tag: str) -> Setup:
    if kind == "sqlite":
        return Setup(f"sqlite:///{workdir}/bench-{tag}.db", "sqlite", workdir=workdir)
    dbname = f"dispatch_bench_{os.getpid()}_{tag}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}"'))
        conn.execute(text(f'CREATE DATABASE "{dbname}"'))
    admin.dispose()
    return Setup(f"postgresql://postgres@127.0.0.1:5432/{dbname}", "postgresql", dbname, workdir)


def write_config(path: Path, db_url: str, sink_port: int, args: argparse.Namespace, *,
                 smtp: str | None = None, idle_seconds: float | None = None,
                 extra: str = "") -> None:
    """The bench's instance: the database, SMTP to `sink_port` (`smtp`: its tuning lines,
    by default this bench's concurrency and no rate limit), the checkout's rules and
    templates, and `extra` sections (bench/wecom.py's [wecom])."""
    if smtp is None:
        smtp = f"concurrency = {args.concurrency}\nrate_per_minute = 0\ntimeout_seconds = 30.0\n"
    idle = args.idle_seconds if idle_seconds is None else idle_seconds
    path.write_text(f"""\
[database]
url = "{db_url}"

[smtp]
host = "127.0.0.1"
port = {sink_port}
security = "none"
from = "许昌竞争情报快递 <bulletin@localhost>"
reply_domain = "localhost"
{smtp}
{extra}
[delivery]
batch_size = {args.batch_size}
lease_seconds = 120.0
idle_seconds = {idle}

[tagging]
rules = "{REPO / 'rules/industries.toml'}"

[paths]
templates = "{REPO / 'templates'}"
recipients = "{REPO / 'recipients'}"
""", encoding="utf-8")


def insert_readers(engine, n: int, seed: int, channel: str = "email",
                   wecom_userid=None) -> float:
    """N readers straight into the tables (ids 1..N), each by `channel` only (email; or
    wecom, with `wecom_userid(reader_id)` as the userid); returns seconds."""
    people = _bench_render().readers(n, random.Random(seed))
    now = datetime.now(UTC).replace(tzinfo=None)
    t0 = time.perf_counter()
    chunk = 5000
    with engine.begin() as conn:
        for i in range(0, n, chunk):
            part = people[i:i + chunk]
            conn.execute(insert(Reader.__table__), [
                {"id": r.id, "name": r.name, "organization": "", "position": r.position,
                 "group_name": "",
                 "email": r.email if channel == "email" else None,
                 "wecom_userid": wecom_userid(r.id) if channel == "wecom" else None,
                 "follows_all": r.follows_all, "status": "active",
                 "created_at": now, "updated_at": now}
                for r in part
            ])
            industries = [{"reader_id": r.id, "industry": c} for r in part for c in sorted(r.industries)]
            if industries:
                conn.execute(insert(ReaderIndustry.__table__), industries)
            conn.execute(insert(ReaderChannel.__table__),
                         [{"reader_id": r.id, "channel": channel} for r in part])
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('readers', 'id'), :n)"), {"n": n})
    with engine.begin() as conn:
        # A real list was imported days before publication: autovacuum has analyzed it.
        conn.execute(text("ANALYZE"))
    return time.perf_counter() - t0


def average_size(config_path: Path, engine, issue_id: int) -> tuple[int, int]:
    """Average bytes of the messages dispatch renders for the first readers: (avg, variants)."""
    config = load(config_path, env={})
    factory = session_factory(engine)
    with factory() as session:
        issue = editorial.get_issue(session, issue_id)
        renderer = IssueRenderer.for_issue(issue, environment(config), config)
        readers = session.scalars(select(Reader).order_by(Reader.id).limit(SIZE_SAMPLE)).all()
        views = [ReaderView.of(r) for r in readers]
    sizes = [len(renderer.email_message(v, new_token())) for v in views]
    return round(sum(sizes) / len(sizes)), renderer.variants_built


# -- one end-to-end run --------------------------------------------------------------------


@dataclass
class Result:
    readers: int
    rate: float
    seconds: float
    first_sent_seconds: float
    steady_rate: float
    plan_seconds: float
    peak_rss_mb: float  # max over the dispatch processes
    worker_rss_mb: list[float]
    send_rss_mb: float
    avg_size: int
    variants: int
    cpu: dict[str, float]


DISPATCH = [sys.executable, "-m", "dispatch"]


def dispatch_cmd(config: Path, *args: str) -> list[str]:
    return [*DISPATCH, "--config", str(config), *args]


def run_dispatch(
    children: Children, sink: Sink, kind: str, readers: int, args: argparse.Namespace,
    workdir: Path, tag: str,
) -> Result:
    setup = new_database(kind, workdir, tag)
    workers: list[subprocess.Popen] = []
    try:
        config = workdir / f"config-{tag}.toml"
        write_config(config, setup.url, sink.port, args)
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "DISPATCH_LOG_LEVEL": "WARNING"}
        env = {k: v for k, v in env.items() if not k.startswith("DISPATCH_") or k == "DISPATCH_LOG_LEVEL"}
        run_timed(children, dispatch_cmd(config, "db", "upgrade"), env, 120)
        engine = make_engine(setup.url)
        secs = insert_readers(engine, readers, args.seed)
        say(f"  {readers} readers inserted directly in {secs:.1f}s ({setup.label})")
        _, out, _ = run_timed(
            children, dispatch_cmd(config, "issues", "ingest", str(REPO / "samples/issue-sample.txt"), "--json"),
            env, 120,
        )
        issue_id = json.loads(out)["id"]
        run_timed(children, dispatch_cmd(config, "issues", "finalize", str(issue_id)), env, 120)
        avg, variants = average_size(config, engine, issue_id)
        say(f"  issue {issue_id}: average message {avg} B over {SIZE_SAMPLE} readers, {variants} variants")

        for i in range(args.workers):
            with (workdir / f"worker-{tag}-{i}.log").open("wb") as log:
                workers.append(children.start(
                    dispatch_cmd(config, "worker"), stdout=log, stderr=subprocess.STDOUT, env=env))
        deadline = time.monotonic() + 60
        for i, w in enumerate(workers):
            logfile = workdir / f"worker-{tag}-{i}.log"
            while b" started (channels" not in logfile.read_bytes():
                if w.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {i} did not start:\n{logfile.read_text(errors='replace')}")
                time.sleep(0.05)

        start_rss = [proc_status(w.pid).get("VmRSS", 0) / 1024 for w in workers]
        sink_before = sink.messages()
        cpu0 = {"workers": sum(proc_cpu(w.pid) for w in workers), "smtp-sink": sink.cpu(),
                "postgres": postgres_cpu(setup.dbname) if setup.dbname else 0.0}
        busy0, total0 = system_busy()
        snap0 = all_cpu()
        start_wall = datetime.now(UTC).replace(tzinfo=None)
        t0 = time.perf_counter()
        plan_s, out, send_rss = run_timed(children, dispatch_cmd(config, "send", str(issue_id), "--json"), env, 600)
        planned = sum(n for states in json.loads(out)["counts"].values() for n in states.values())
        if planned != readers:
            raise RuntimeError(f"planned {planned} deliveries for {readers} readers")

        # EXISTS on the (state, available_at) index: cheap even at 100,000 rows, so the
        # polling costs the database next to nothing.
        pending_q = select(exists().where(Delivery.state.in_(PENDING), Delivery.issue_id == issue_id))
        deadline = time.monotonic() + args.timeout
        peak_cpu = {"postgres": cpu0["postgres"]}
        polls = 0
        while True:
            with engine.connect() as conn:
                left = conn.scalar(pending_q)
            if setup.dbname and (not left or polls % 3 == 0):  # backends: sampled while alive
                peak_cpu["postgres"] = max(peak_cpu["postgres"], postgres_cpu(setup.dbname))
            polls += 1
            if not left:
                break
            for i, w in enumerate(workers):
                if w.poll() is not None:
                    tail = (workdir / f"worker-{tag}-{i}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"worker {i} exited {w.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"deliveries still pending after {args.timeout:.0f}s")
            time.sleep(0.2)  # the end time is the last sent_at, not the poll
        t_poll = time.perf_counter() - t0
        with engine.connect() as conn:
            by_state = dict(conn.execute(
                select(Delivery.state, func.count()).where(Delivery.issue_id == issue_id)
                .group_by(Delivery.state)).all())
            first_sent, last_sent = conn.execute(
                select(func.min(Delivery.sent_at), func.max(Delivery.sent_at))
                .where(Delivery.issue_id == issue_id)).one()
        busy1, total1 = system_busy()
        top = top_consumers(snap0, all_cpu())
        cpu = {
            "workers": sum(proc_cpu(w.pid) for w in workers) - cpu0["workers"],
            "smtp-sink": sink.cpu() - cpu0["smtp-sink"],
            "postgres": peak_cpu["postgres"] - cpu0["postgres"],
            "machine": busy1 - busy0,
            "machine_capacity": total1 - total0,
        }
        seconds = (last_sent - start_wall).total_seconds() if last_sent else t_poll
        first_s = (first_sent - start_wall).total_seconds() if first_sent else 0.0
        # After the first batch: the pace of sending alone, once planned and warmed up.
        steady = readers / max(seconds - first_s, 1e-6)
        sent = by_state.get("sent", 0)
        got = sink.wait_for(sink_before + readers) - sink_before
        if sent != readers or got != readers:
            raise RuntimeError(f"sent {sent}, sink accepted {got}, of {readers}: {by_state}")
        worker_rss = [proc_status(w.pid).get("VmHWM", 0) / 1024 for w in workers]
        rate = readers / seconds
        say(f"  dispatch: {readers} readers, {args.workers} workers, {setup.label}: plan (send CLI) "
            f"{plan_s:.2f}s, first sent after {first_s:.2f}s, all sent after {seconds:.2f}s: "
            f"{rate:,.0f}/s end to end, {steady:,.0f}/s after the first (sink counted {got})")
        say(f"    CPU s: workers {cpu['workers']:.1f}, smtp-sink {cpu['smtp-sink']:.1f}, "
            f"postgres backends {cpu['postgres']:.1f}, whole machine {cpu['machine']:.1f} "
            f"of {cpu['machine_capacity']:.1f}")
        say("    top CPU consumers (s): " + "; ".join(f"{cpu:.1f} {cmd}" for cmd, cpu in top))
        say(f"    peak RSS MiB: workers {', '.join(f'{m:.0f}' for m in worker_rss)} "
            f"(sum {sum(worker_rss):.0f}; {', '.join(f'{m:.0f}' for m in start_rss)} when started, idle), "
            f"send/plan {send_rss:.0f}")
        engine.dispose()
        return Result(
            readers=readers, rate=rate, seconds=seconds, plan_seconds=plan_s,
            first_sent_seconds=first_s, steady_rate=steady,
            peak_rss_mb=max([*worker_rss, send_rss]), worker_rss_mb=worker_rss,
            send_rss_mb=send_rss, avg_size=avg, variants=variants, cpu=cpu,
        )
    finally:
        for w in workers:
            children.stop(w)
        with contextlib.suppress(Exception):
            setup.drop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readers", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=0,
                    help="then a second run with this many readers, to show memory stays flat (0: none)")
    ap.add_argument("--with-100k", dest="large", action="store_const", const=100_000,
                    help="same as --large 100000 (about 9 minutes at today's engine speed)")
    ap.add_argument("--database", choices=("postgresql", "sqlite", "both"), default="postgresql")
    ap.add_argument("--workers", type=int, default=2, help="dispatch worker processes")
    ap.add_argument("--concurrency", type=int, default=8, help="[smtp] concurrency per worker")
    ap.add_argument("--batch-size", type=int, default=100, help="[delivery] batch_size")
    ap.add_argument("--idle-seconds", type=float, default=0.2, help="[delivery] idle_seconds")
    ap.add_argument("--sessions", type=int, default=16, help="smtp-source -s")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=900, help="limit for one delivery run")
    ap.add_argument("--dispatch-cmd", help="how to run dispatch (default: this python -m dispatch), "
                    "e.g. to measure a patched build")
    args = ap.parse_args()
    if args.dispatch_cmd:
        DISPATCH[:] = shlex.split(args.dispatch_cmd)

    for tool in (SMTP_SINK, SMTP_SOURCE):
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} missing: install Debian's postfix package (see this file's docstring)")

    children = Children()

    def on_signal(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="dispatch-bench-"))
    try:
        sink = Sink(children, workdir)
        say(f"smtp-sink on 127.0.0.1:{sink.port}; {os.cpu_count()} CPUs")
        kinds = ["postgresql", "sqlite"] if args.database == "both" else [args.database]
        main_kind = kinds[0]
        say(f"[{args.readers} readers, {main_kind}]")
        res = run_dispatch(children, sink, main_kind, args.readers, args, workdir, "main")
        base_a = baseline(sink, children, args.readers, res.avg_size, args.sessions)
        extra: dict[str, Result] = {}
        for kind in kinds[1:]:
            say(f"[{args.readers} readers, {kind}]")
            extra[kind] = run_dispatch(children, sink, kind, args.readers, args, workdir, kind)
        base_b = baseline(sink, children, args.readers, res.avg_size, args.sessions)
        base = (base_a + base_b) / 2
        large = None
        if args.large:
            say(f"[{args.large} readers, {main_kind}]")
            large = run_dispatch(children, sink, main_kind, args.large, args, workdir, "large")
        say(f"dispatch {res.rate:,.0f}/s vs smtp-source {base:,.0f}/s (runs: {base_a:,.0f}, {base_b:,.0f}): "
            f"ratio {res.rate / base:.3f}; peak RSS (max of dispatch processes) {res.peak_rss_mb:.0f} MiB"
            + (f"; at {large.readers}: {large.rate:,.0f}/s, {large.peak_rss_mb:.0f} MiB" if large else ""))
        summary = {
            "rate": round(res.rate, 1),
            "baseline_rate": round(base, 1),
            "ratio": round(res.rate / base, 3),
            "peak_rss_mb": round(res.peak_rss_mb, 1),
            "readers": res.readers,
            "rate_100k": round(large.rate, 1) if large else None,
            "peak_rss_mb_100k": round(large.peak_rss_mb, 1) if large else None,
            "workers": args.workers,
            "database": main_kind,
            "rss": "max over dispatch processes (each worker, the send CLI)",
            "worker_rss_mb_sum": round(sum(res.worker_rss_mb), 1),
            "avg_message_bytes": res.avg_size,
            "plan_seconds": round(res.plan_seconds, 2),
            "first_sent_seconds": round(res.first_sent_seconds, 2),
            "steady_rate": round(res.steady_rate, 1),
            "concurrency": args.concurrency,
            "batch_size": args.batch_size,
            "sessions": args.sessions,
        }
        if large:
            summary["readers_large"] = large.readers
            summary["worker_rss_mb_sum_100k"] = round(sum(large.worker_rss_mb), 1)
        for kind, r in extra.items():
            summary[f"rate_{kind}"] = round(r.rate, 1)
            summary[f"ratio_{kind}"] = round(r.rate / base, 3)
            summary[f"peak_rss_mb_{kind}"] = round(r.peak_rss_mb, 1)
        print(json.dumps(summary), flush=True)
    finally:
        children.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
