"""End to end delivery of an issue to WeChat Work readers, beside a naive wechatpy loop.

One WeChat Work stand-in (dispatch.wecom_sim.WecomSim, the app behind `dispatch wecom-sim`)
runs as its own process on loopback and takes both sides:

- dispatch: `dispatch send ISSUE --wait --json` (plan, render, send, ack in that one
  process), timed from the moment it starts until the last delivery is acked 'sent'
  (its last sent_at). `[wecom]` is enabled with the stand-in's URL and, unlike the real
  defaults, `rate_per_minute = 0` and `quiet_minutes = []`: the defaults cap at 600
  calls a minute and send nothing in the minutes :00 and :30, which would measure the
  cap and the clock, not the engine.
- baseline: wechatpy's own `wechatpy.enterprise.WeChatClient(corp_id, secret)` with its
  API base URL pointed at the stand-in (and its token URL, which wechatpy hard-codes to
  qyapi.weixin.qq.com), calling `client.message.send(agent_id, userid, msg=…)` for each
  reader one after the other. Its bodies are the very ones dispatch sent (rendered again
  here before the clock starts, with each delivery's token): the loop only sends.

Every answer of the stand-in waits `--latency-ms` (30 ms by default) after the call is
done: loopback answers in about a millisecond, the real API across the internet in tens
of them, and what dispatch does with that wait (4 calls in flight; wechatpy's loop has
one) is what a real send feels. `--latency-ms 0` measures the bare CPU cost of each side.

The stand-in's counters (gettoken and message/send calls, messages delivered and dropped,
and who got them) are read before and after each side through one extra read-only route
the bench adds to it; the bench stops unless each side delivered exactly one message to
each of the N readers and nothing was dropped. The stand-in keeps no files (the real
server writes none either).

Readers are inserted straight into the tables with SQLAlchemy Core (as bench/deliver.py
does), drawn like bench/render.py's, each with a WeChat Work userid and only that channel.
The issue is samples/issue-sample.txt, ingested and finalized with the CLI.

Memory: `peak_rss_mb` is the peak RSS (VmHWM) of the `dispatch send --wait` process,
sampled from /proc while it runs.

SQLite by default; `--database postgresql`: a server on 127.0.0.1:5432 with trust auth,
the bench creates its own database and drops it afterwards.

    .venv/bin/python bench/wecom.py [--readers 2000] [--database sqlite|postgresql]
        [--message-type news|textcard|markdown|template_card] [--batch-size 100]
        [--latency-ms 30]

Prints a summary to stderr and, last, one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sqlalchemy import func, select  # noqa: E402

from dispatch import editorial  # noqa: E402
from dispatch.config import load  # noqa: E402
from dispatch.db.models import Delivery, Reader  # noqa: E402
from dispatch.db.session import make_engine, session_factory  # noqa: E402
from dispatch.render.pipeline import IssueRenderer, ReaderView  # noqa: E402
from dispatch.render.templates import environment  # noqa: E402

CORP_ID = "wwbenchcorp"
AGENT_ID = 1000002
SECRET = "bench-secret"  # the stand-in's, made up here
COUNTERS = "/bench/counters"


def _bench_module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# bench/deliver.py's process helpers (Children, run_timed, proc_status, databases) and
# bench/render.py's reader generator: one way of doing each for every bench.
bd = _bench_module("deliver")
say = bd.say


# -- the stand-in, in its own process -------------------------------------------------------


def serve_sim(host: str, latency: float) -> None:
    """Child mode (--serve-sim): `dispatch wecom-sim`'s server (WecomSim + serve_forever)
    with no folder, plus a read-only route for its counters; prints its URL first."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from dispatch.wecom_sim import WecomSim, listen, serve_forever

    sim = WecomSim(corp_id=CORP_ID, secret=SECRET, agent_id=AGENT_ID, latency=latency)

    async def counters(request: Request) -> JSONResponse:
        since = int(request.query_params.get("since", "0"))
        return JSONResponse({
            "token_requests": sim.token_requests, "send_calls": sim.send_calls,
            "delivered": len(sim.delivered), "dropped": len(sim.dropped),
            "members": [d.member for d in sim.delivered[since:]],
        })

    sim.app.router.routes.append(Route(COUNTERS, counters, methods=["GET"]))
    sock = listen(host, 0)
    print(f"http://{host}:{sock.getsockname()[1]}", flush=True)
    serve_forever(sim, sock)


@dataclass
class Counts:
    token_requests: int
    send_calls: int
    delivered: int
    dropped: int
    members: list[str]


class Sim:
    def __init__(self, children: Any, workdir: Path, latency: float) -> None:
        self.log = workdir / "wecom-sim.log"
        with self.log.open("wb") as err:
            self.proc = children.start(
                [sys.executable, __file__, "--serve-sim", "127.0.0.1", "--latency-ms",
                 str(latency * 1000)],
                stdout=subprocess.PIPE, stderr=err,
            )
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("http://"):
            self.proc.wait(5)
            raise RuntimeError(f"wecom sim did not start: {self.log.read_text(errors='replace')}")
        self.base_url = line
        deadline = time.monotonic() + 10
        while True:
            try:
                self.counts()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"wecom sim did not answer: {self.log.read_text(errors='replace')}") from None
                time.sleep(0.05)

    def counts(self, since: int = 0) -> Counts:
        with urllib.request.urlopen(f"{self.base_url}{COUNTERS}?since={since}", timeout=10) as r:
            return Counts(**json.loads(r.read()))

    def cpu(self) -> float:
        return bd.proc_cpu(self.proc.pid)

    def rss_mb(self) -> float:
        return bd.proc_status(self.proc.pid).get("VmHWM", 0) / 1024


@dataclass
class Side:
    """What the stand-in saw of one side."""

    token_requests: int
    calls: int
    delivered: int
    dropped: int
    sim_cpu: float  # CPU seconds the stand-in spent on this side
    machine_cpu: float  # busy CPU seconds of the whole machine meanwhile


@dataclass
class Mark:
    counts: Counts
    sim_cpu: float
    busy: float

    @classmethod
    def now(cls, sim: Sim) -> Mark:
        return cls(sim.counts(since=1 << 62), sim.cpu(), bd.system_busy()[0])


def side_of(sim: Sim, mark: Mark, userids: set[str], who: str) -> Side:
    before = mark.counts
    after = sim.counts(since=before.delivered)
    side = Side(after.token_requests - before.token_requests, after.send_calls - before.send_calls,
                after.delivered - before.delivered, after.dropped - before.dropped,
                sim.cpu() - mark.sim_cpu, bd.system_busy()[0] - mark.busy)
    members = after.members
    if side.delivered != len(userids) or side.dropped or len(set(members)) != len(members) \
            or set(members) != userids:
        raise RuntimeError(f"{who}: the stand-in delivered {side.delivered} ({len(set(members))} readers), "
                           f"dropped {side.dropped}, of {len(userids)} readers")
    return side


# -- dispatch's side ---------------------------------------------------------------------------


def write_config(path: Path, db_url: str, sim_url: str, args: argparse.Namespace) -> None:
    """bench/deliver.py's instance, with SMTP to the discard port (no email reader here)
    and WeChat Work to the stand-in, unpaced."""
    bd.write_config(path, db_url, 9, args, smtp="", idle_seconds=0.2, extra=f"""\
[wecom]
enabled = true
corp_id = "{CORP_ID}"
agent_id = {AGENT_ID}
api_base_url = "{sim_url}"
message_type = "{args.message_type}"
rate_per_minute = 0
quiet_minutes = []
timeout_seconds = 30.0
""")


def userid(reader_id: int) -> str:
    return f"bench{reader_id:07d}"


def insert_readers(engine: Any, n: int, seed: int) -> float:
    """N readers straight into the tables (ids 1..N), each by WeChat Work only; seconds."""
    return bd.insert_readers(engine, n, seed, channel="wecom", wecom_userid=userid)


@dataclass
class Dispatched:
    rate: float
    seconds: float  # CLI start to the last sent_at
    cli_seconds: float  # CLI start to exit
    first_sent_seconds: float
    steady_rate: float
    peak_rss_mb: float
    side: Side
    bodies: list[tuple[str, dict[str, Any]]]  # (userid, message/send body) as dispatch sent them


def run_dispatch(children: Any, sim: Sim, args: argparse.Namespace, workdir: Path) -> Dispatched:
    setup = bd.new_database(args.database, workdir, "wecom")
    try:
        config_path = workdir / "config.toml"
        write_config(config_path, setup.url, sim.base_url, args)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
        env |= {"PYTHONPATH": str(REPO / "src"), "DISPATCH_LOG_LEVEL": "WARNING",
                "DISPATCH_WECOM_SECRET": SECRET}
        bd.run_timed(children, bd.dispatch_cmd(config_path, "db", "upgrade"), env, 120)
        engine = make_engine(setup.url)
        secs = insert_readers(engine, args.readers, args.seed)
        say(f"  {args.readers} WeChat Work readers inserted directly in {secs:.1f}s ({setup.label})")
        _, out, _ = bd.run_timed(
            children,
            bd.dispatch_cmd(config_path, "issues", "ingest", str(REPO / "samples/issue-sample.txt"), "--json"),
            env, 120,
        )
        issue_id = json.loads(out)["id"]
        bd.run_timed(children, bd.dispatch_cmd(config_path, "issues", "finalize", str(issue_id)), env, 120)

        mark = Mark.now(sim)
        start_wall = datetime.now(UTC).replace(tzinfo=None)
        cli_s, out, rss = bd.run_timed(
            children, bd.dispatch_cmd(config_path, "send", str(issue_id), "--wait", "--json"), env, args.timeout)
        counts = json.loads(out)["counts"]
        with engine.connect() as conn:
            by_state = dict(conn.execute(
                select(Delivery.state, func.count()).where(Delivery.issue_id == issue_id)
                .group_by(Delivery.state)).all())
            first_sent, last_sent = conn.execute(
                select(func.min(Delivery.sent_at), func.max(Delivery.sent_at))
                .where(Delivery.issue_id == issue_id)).one()
            tokens = dict(conn.execute(
                select(Delivery.reader_id, Delivery.token)
                .where(Delivery.issue_id == issue_id, Delivery.channel == "wecom")).all())
        if by_state != {"sent": args.readers}:
            raise RuntimeError(f"deliveries by state {by_state} (send said {counts}), want {args.readers} sent")
        userids = {userid(i) for i in range(1, args.readers + 1)}
        side = side_of(sim, mark, userids, "dispatch")
        seconds = (last_sent - start_wall).total_seconds()
        first_s = (first_sent - start_wall).total_seconds()
        bodies = render_bodies(config_path, engine, issue_id, tokens)
        engine.dispose()
        return Dispatched(
            rate=args.readers / seconds, seconds=seconds, cli_seconds=cli_s, first_sent_seconds=first_s,
            steady_rate=args.readers / max(seconds - first_s, 1e-6), peak_rss_mb=rss, side=side,
            bodies=bodies,
        )
    finally:
        with contextlib.suppress(Exception):
            setup.drop()


def render_bodies(
    config_path: Path, engine: Any, issue_id: int, tokens: dict[int, str],
) -> list[tuple[str, dict[str, Any]]]:
    """Each reader's message/send body as dispatch rendered it (same renderer, same token)."""
    config = load(config_path, env={})
    with session_factory(engine)() as session:
        issue = editorial.get_issue(session, issue_id)
        renderer = IssueRenderer.for_issue(issue, environment(config), config)
        readers = session.scalars(select(Reader).order_by(Reader.id)).all()
        views = [ReaderView.of(r) for r in readers]
    return [(v.wecom_userid or "", json.loads(renderer.wecom_json(v, tokens[v.id]))) for v in views]


# -- the baseline: wechatpy, one reader after the other -------------------------------------


def naive(sim: Sim, bodies: list[tuple[str, dict[str, Any]]]) -> tuple[float, float, Side]:
    """(rate, seconds, side): wechatpy's WeChatClient sending each body in turn."""
    from wechatpy.enterprise import WeChatClient

    base = f"{sim.base_url}/cgi-bin/"

    class Client(WeChatClient):  # type: ignore[misc]
        API_BASE_URL = base

        def fetch_access_token(self) -> dict[str, Any]:
            # wechatpy's own, but at the stand-in: it hard-codes qyapi.weixin.qq.com.
            return self._fetch_access_token(url=f"{base}gettoken",
                                            params={"corpid": self.corp_id, "corpsecret": self.secret})

    # What send() adds itself: the rest of each body is the message.
    msgs = [(uid, {k: v for k, v in body.items() if k not in ("touser", "agentid")}) for uid, body in bodies]
    mark = Mark.now(sim)
    t0 = time.perf_counter()
    client = Client(CORP_ID, SECRET)
    for uid, msg in msgs:
        answer = client.message.send(AGENT_ID, uid, msg=msg)
        if answer.get("errcode") != 0 or answer.get("invaliduser"):
            raise RuntimeError(f"wechatpy: message/send answered {answer}")
    seconds = time.perf_counter() - t0
    client._http.close()
    side = side_of(sim, mark, {uid for uid, _ in bodies}, "wechatpy")
    return len(bodies) / seconds, seconds, side


# -- main ----------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readers", type=int, default=2000)
    ap.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--message-type", choices=("news", "textcard", "markdown", "template_card"),
                    default="news", help="[wecom] message_type (news: the default of config.toml)")
    ap.add_argument("--batch-size", type=int, default=100, help="[delivery] batch_size")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=900, help="limit for dispatch's run")
    ap.add_argument("--dispatch-cmd", help="how to run dispatch (default: this python -m dispatch), "
                    "e.g. under a profiler or to measure a patched build")
    ap.add_argument("--latency-ms", type=float, default=30.0,
                    help="how long the stand-in waits before each answer: the round trip to "
                    "qyapi.weixin.qq.com that loopback lacks (0: loopback as it is)")
    ap.add_argument("--serve-sim", metavar="HOST", help=argparse.SUPPRESS)  # the bench's child
    args = ap.parse_args()
    if args.serve_sim:
        serve_sim(args.serve_sim, args.latency_ms / 1000)
        return
    if args.dispatch_cmd:
        bd.DISPATCH[:] = shlex.split(args.dispatch_cmd)

    children = bd.Children()

    def on_signal(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="dispatch-bench-wecom-"))
    try:
        sim = Sim(children, workdir, args.latency_ms / 1000)
        say(f"wecom sim (own process) at {sim.base_url}; {os.cpu_count()} CPUs")
        say(f"[{args.readers} readers, {args.database}, {args.message_type}; "
            f"rate_per_minute = 0, quiet_minutes = []; {args.latency_ms:g} ms per answer]")
        res = run_dispatch(children, sim, args, workdir)
        say(f"  dispatch send --wait: first sent after {res.first_sent_seconds:.2f}s, all sent after "
            f"{res.seconds:.2f}s (CLI exit {res.cli_seconds:.2f}s): {res.rate:,.0f}/s end to end, "
            f"{res.steady_rate:,.0f}/s after the first; {res.side.calls} calls, "
            f"{res.side.token_requests} gettoken; peak RSS {res.peak_rss_mb:.0f} MiB; CPU s: stand-in "
            f"{res.side.sim_cpu:.1f}, whole machine {res.side.machine_cpu:.1f}")
        base_rate, base_s, base = naive(sim, res.bodies)
        say(f"  wechatpy loop: {len(res.bodies)} in {base_s:.2f}s: {base_rate:,.0f}/s; "
            f"{base.calls} calls, {base.token_requests} gettoken; CPU s: stand-in {base.sim_cpu:.1f}, "
            f"whole machine {base.machine_cpu:.1f}")
        avg = sum(len(json.dumps(b, ensure_ascii=False).encode()) for _, b in res.bodies) / len(res.bodies)
        say(f"dispatch {res.rate:,.0f}/s vs wechatpy loop {base_rate:,.0f}/s: ratio {res.rate / base_rate:.3f}; "
            f"stand-in delivered {res.side.delivered} + {base.delivered}, dropped 0; "
            f"its peak RSS {sim.rss_mb():.0f} MiB")
        print(json.dumps({
            "rate": round(res.rate, 1),
            "baseline_rate": round(base_rate, 1),
            "ratio": round(res.rate / base_rate, 3),
            "peak_rss_mb": round(res.peak_rss_mb, 1),
            "readers": args.readers,
            "database": args.database,
            "message_type": args.message_type,
            "calls": res.side.calls,
            "token_requests": res.side.token_requests,
            "baseline_calls": base.calls,
            "baseline_token_requests": base.token_requests,
            "seconds": round(res.seconds, 2),
            "baseline_seconds": round(base_s, 2),
            "cli_seconds": round(res.cli_seconds, 2),
            "first_sent_seconds": round(res.first_sent_seconds, 2),
            "steady_rate": round(res.steady_rate, 1),
            "avg_body_bytes": round(avg),
            "sim_cpu_seconds": round(res.side.sim_cpu, 2),
            "baseline_sim_cpu_seconds": round(base.sim_cpu, 2),
            "batch_size": args.batch_size,
            "latency_ms": args.latency_ms,
            "pacing": "rate_per_minute=0, quiet_minutes=[] (defaults: 600 calls/min, nothing at :00 and :30)",
            "rss": "the dispatch send --wait process",
        }), flush=True)
    finally:
        children.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
