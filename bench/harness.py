"""What the web benches share (bench/web.py, bench/admin.py): a real instance made by
`dispatch init` and driven by its CLI, an issue planned and its deliveries marked sent,
`dispatch run` started and stopped, and Debian's `wrk` run against it from a Lua script.

Not a benchmark itself: the benches import it (they run as scripts, so bench/ is on
sys.path).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "issue-sample.txt"
WRK = "/usr/bin/wrk"
BROWSER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/124.0.0.0 Safari/537.36")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the instance ----------------------------------------------------------------------


class Instance:
    def __init__(self, folder: Path, port: int):
        self.folder = folder
        self.config = folder / "config.toml"
        self.base_url = f"http://127.0.0.1:{port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
        self.env.update({
            "PYTHONPATH": str(REPO / "src"),
            "DISPATCH_WEB__LISTEN": f"127.0.0.1:{port}",
            "DISPATCH_WEB__BASE_URL": self.base_url,
            # Nothing listens there: the benches send no mail (deliveries are marked sent).
            "DISPATCH_SMTP__PORT": str(free_port()),
        })

    def cli(self, *args: str, timeout: float = 600, stdin: str | None = None) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "dispatch", "--config", str(self.config), *args],
            env=self.env, capture_output=True, text=True, timeout=timeout, input=stdin,
        )
        if r.returncode:
            raise SystemExit(f"dispatch {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r.stdout

    def init(self) -> None:
        """`dispatch init`: the folder, its config.toml and an SQLite database."""
        subprocess.run([sys.executable, "-m", "dispatch", "init", str(self.folder)],
                       env=self.env, check=True, capture_output=True)

    @property
    def database(self) -> Path:
        return self.folder / "var" / "dispatch.db"


def sent_issue(inst: Instance, issue_file: Path, readers_file: Path) -> tuple[int, list[str]]:
    """In an instance made by Instance.init: the issue ingested and finalized, the
    readers imported with the CLI, the issue planned with `dispatch send` and every
    delivery marked sent an hour ago (no mail is sent; the hour keeps later opens out of
    the machine window). The issue id and every delivery's token, in delivery order."""
    t0 = time.perf_counter()
    issue = json.loads(inst.cli("issues", "ingest", str(issue_file), "--json"))["id"]
    say(f"ingested issue {issue} ({issue_file.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f}s")
    inst.cli("issues", "finalize", str(issue))
    t0 = time.perf_counter()
    inst.cli("recipients", "import", str(readers_file))
    say(f"imported {readers_file.name} in {time.perf_counter() - t0:.1f}s")
    inst.cli("send", str(issue))  # plans the outbox: one delivery (token) per reader
    sent_at = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None)
    with contextlib.closing(sqlite3.connect(inst.database)) as db, db:
        db.execute("UPDATE deliveries SET state = 'sent', sent_at = ?, attempts = 1",
                   (sent_at.isoformat(sep=" "),))
        tokens = [t for (t,) in db.execute("SELECT token FROM deliveries ORDER BY id")]
    return issue, tokens


# -- the service -----------------------------------------------------------------------


def wait_healthy(base_url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dispatch run exited with {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(base_url + "/healthz", timeout=2) as r:
            if r.status == 200:
                return
        time.sleep(0.1)
    raise SystemExit("dispatch run did not become healthy")


@contextlib.contextmanager
def running(inst: Instance) -> Iterator[subprocess.Popen]:
    """`dispatch run` (web app, scheduler and worker), healthy, its output in run.log;
    stopped with SIGTERM afterwards (it flushes its events). A non-zero exit ends the
    bench with the log's tail."""
    log_path = inst.folder / "run.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatch", "--config", str(inst.config), "run"],
        env=inst.env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(inst.base_url, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
    if proc.returncode:
        say(log_path.read_text(errors="replace")[-3000:])
        raise SystemExit(f"dispatch run ended with {proc.returncode}")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- wrk -------------------------------------------------------------------------------


def lua_paths(script: Path, paths: list[str], method: str = "GET", body: str = "",
              headers: dict[str, str] | None = None, statuses: bool = False) -> None:
    """A wrk script that sends `paths` in turn (each thread from its own offset), with a
    browser's User-Agent and `headers`. With `statuses`, it counts the responses by
    status and prints them at the end (`statuses: 200=N 303=M`), which wrk() reads: wrk's
    own "Non-2xx or 3xx" count takes a redirect (to the sign-in page) for a success."""
    quoted = ",\n".join(json.dumps(p) for p in paths)
    # A reader's browser: wrk sends no User-Agent, which the tracker counts as a machine.
    sent = {"User-Agent": BROWSER, **(headers or {})}
    if body:
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    lua_headers = "{" + ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in sent.items()) + "}"
    text = (
        f"local paths = {{\n{quoted}\n}}\n"
        "local i = 0\n"
        f"local headers = {lua_headers}\n"
        "local threads = {}\n"
        "function setup(thread)\n"
        "  thread:set('offset', math.random(#paths))\n"
        "  table.insert(threads, thread)\n"
        "end\n"
        "function init(args) i = (offset or 0) end\n"
        "function request()\n"
        "  i = i % #paths + 1\n"
        f"  return wrk.format({json.dumps(method)}, paths[i], headers, {json.dumps(body) if body else 'nil'})\n"
        "end\n"
    )
    if statuses:
        text += (
            "counts = {}\n"
            "function response(status, headers, body)\n"
            "  counts[status] = (counts[status] or 0) + 1\n"
            "end\n"
            "function done(summary, latency, requests)\n"
            "  local total = {}\n"
            "  for _, thread in ipairs(threads) do\n"
            "    for status, n in pairs(thread:get('counts')) do\n"
            "      total[status] = (total[status] or 0) + n\n"
            "    end\n"
            "  end\n"
            "  local parts = {}\n"
            "  for status, n in pairs(total) do table.insert(parts, status .. '=' .. n) end\n"
            "  io.write('statuses: ' .. table.concat(parts, ' ') .. '\\n')\n"
            "end\n"
        )
    script.write_text(text, encoding="utf-8")


def wrk(url: str, args: argparse.Namespace, script: Path | None = None) -> dict:
    """One wrk run (args.threads, args.connections, args.duration): req/s, requests,
    non-2xx/3xx, socket errors, p99 latency; and `statuses` ({status: count}) when the
    script counts them (lua_paths(statuses=True))."""
    cmd = [WRK, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    result = {
        "rate": rate,
        "requests": total,
        "non_2xx_3xx": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else 0.0,
    }
    counted = re.search(r"^statuses:(.*)$", out, re.M)
    if counted:
        result["statuses"] = {int(s): int(n) for s, n in
                              (part.split("=") for part in counted.group(1).split())}
    return result
