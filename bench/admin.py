"""The staff web under load: one `dispatch run` on SQLite, its /admin pages hammered by
Debian's `wrk` with a signed-in staff member's cookie.

The reader app is measured by bench/web.py; this is the other half of the same server,
the pages editors keep open. They are few people, but each open issue page polls its live
counts every 2 s and the readers list filters and pages 10,000 readers in SQL on every
request, so what matters is how far each page stays from the server's floor and whether
one of them is much slower than the rest (and eats the one process's time the readers'
pixels and clicks need).

Sets up a real instance (`dispatch init`), ingests and finalizes the sample issue, imports
READERS readers with the CLI (drawn like bench/render.py's: Chinese names from 41
surnames, weighted industries, 8 % following 全部; with organisations and groups), plans
the issue with `dispatch send` and marks every delivery sent an hour ago (no mail is sent).
Then fills what the reports and the inbox read, straight into the tables: 30 % of the
deliveries opened (a quarter of those twice), 10 % clicked (an article or two), 3 % read
on the web, 2 % opened by a machine only (an image proxy); 200 feedback rows (votes,
comments, replies, auto-replies, bounces; a third of the non-votes handled). Adds a staff
account with `dispatch staff add bench --role admin` (the password piped on stdin), starts
`dispatch run`, signs in over HTTP as a browser does (GET /admin/login for the form token,
POST the form, keep the `dispatch_staff` cookie) and runs `wrk -t2 -c8 -dDURATION` with
that cookie against, in turn:

    /healthz                            the baseline: the same server's floor
    /admin                              home: the newest issues
    /admin/readers                      the readers list, first page of READERS
    /admin/readers?q=王                 search (name, organisation, email, WeCom id)
    /admin/readers?industry=biomed&page=3   a filter, and a page past the first
    /admin/issues/ID                    the issue: articles, tags, live counts, change log
    /admin/issues/ID/progress           the live counts each open issue page polls (2 s)
    /admin/reports/ID                   the report, with its charts
    /admin/feedback                     the inbox

Every page is fetched twice before timing (both times are printed) and must answer 200 (a
303 to the sign-in page means the cookie was refused); during the runs the wrk script
counts every response by status, since wrk's own "Non-2xx or 3xx" count takes a redirect
for a success. Any status but 2xx is a failure: the bench says so, and exits 1 after its
JSON line. A second's pause between targets lets a slow page's requests still in flight
finish before the next target starts.

    .venv/bin/python bench/admin.py [--readers 10000] [--feedback 200] [--duration 10]
        [--connections 8] [--threads 2] [--seed 1] [--keep DIR]

Prints a table to stderr and, last, one JSON line on stdout: rate = /admin/readers req/s,
baseline_rate = /healthz req/s, ratio = rate / baseline_rate, peak_rss_mb of the
`dispatch run` process (VmHWM), <target>_rate and <target>_ratio (to /healthz) for every
target, readers (N), errors (non-2xx responses and socket errors).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import html
import http.client
import json
import random
import re
import secrets
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from harness import (
    BROWSER,
    SAMPLE,
    WRK,
    Instance,
    free_port,
    lua_paths,
    peak_rss_mb,
    running,
    say,
    sent_issue,
    wrk,
)
from render import readers as drawn_readers  # bench/render.py: one population for the benches

from dispatch.industries import BY_CODE

STAFF = "bench"
COOKIE = "dispatch_staff"
SURNAME = "王"  # one of bench/render.py's 41 surnames, drawn evenly: about 2.4 % of readers
ORGANIZATIONS = [
    "许昌市发展和改革委员会", "许昌市工业和信息化局", "许昌市科学技术局", "许昌市商务局",
    "许昌市财政局", "魏都区人民政府", "建安区人民政府", "长葛市人民政府", "禹州市人民政府",
    "许继集团有限公司", "瑞贝卡发制品股份有限公司", "众品食业股份有限公司",
    "森源电气股份有限公司", "黄河旋风股份有限公司", "许昌学院", "许昌市生产力促进中心",
]
GROUPS = ["", "", "市直部门", "县市区", "重点企业", "高校院所"]
PAUSE = 1.0  # seconds between wrk runs


# -- the instance ----------------------------------------------------------------------


def readers_csv(path: Path, n: int, rng: random.Random) -> None:
    """N readers as a list staff would import: bench/render.py's names, positions and
    industries (as their Chinese names), with an organisation and a group."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["姓名", "单位", "职务", "分组", "邮箱", "关注产业"])
        for r in drawn_readers(n, rng):
            follows = "全部" if r.follows_all else "、".join(BY_CODE[c].name for c in sorted(r.industries))
            writer.writerow([r.name, rng.choice(ORGANIZATIONS), r.position, rng.choice(GROUPS),
                             r.email, follows])


def engagement(inst: Instance, issue: int, rng: random.Random, feedback: int) -> dict[str, int]:
    """What readers did with the issue, straight into events and feedback (see the
    docstring); the rows written, by kind."""
    with contextlib.closing(sqlite3.connect(inst.database)) as db, db:
        deliveries = db.execute(
            "SELECT deliveries.id, deliveries.reader_id, deliveries.sent_at, readers.email "
            "FROM deliveries JOIN readers ON readers.id = deliveries.reader_id "
            "WHERE deliveries.issue_id = ? AND deliveries.state = 'sent' ORDER BY deliveries.id",
            (issue,)).fetchall()
        articles = [a for (a,) in db.execute(
            "SELECT articles.id FROM articles JOIN sections ON sections.id = articles.section_id "
            "WHERE sections.issue_id = ? ORDER BY sections.position, articles.position", (issue,))]
        title = db.execute("SELECT title FROM issues WHERE id = ?", (issue,)).fetchone()[0]
        sent_at = datetime.fromisoformat(deliveries[0][2])
        span = (datetime.now(UTC).replace(tzinfo=None) - sent_at).total_seconds()

        def later(start: float = 60, end: float = span - 60) -> str:  # after sending, before now
            return (sent_at + timedelta(seconds=rng.uniform(start, end))).isoformat(sep=" ")

        def article() -> tuple[int, int]:  # (n, id): the first articles are read most
            i = min(int(rng.expovariate(1 / 6)), len(articles) - 1)
            return i + 1, articles[i]

        events: list[tuple] = []
        n = len(deliveries)
        opened = rng.sample(deliveries, round(n * 0.30))
        for d in opened:
            for _ in range(2 if rng.random() < 0.25 else 1):
                events.append((issue, d[0], "open", None, None, later(), 0, BROWSER, "10.1.2.3"))
        for d in rng.sample(opened, round(n * 0.10)):
            for _ in range(rng.choice((1, 1, 2))):
                link, article_id = article()
                events.append((issue, d[0], "click", article_id, link, later(), 0, BROWSER, "10.1.2.3"))
        for d in rng.sample(opened, round(n * 0.03)):
            events.append((issue, d[0], "web_view", None, None, later(), 0, BROWSER, "10.1.2.3"))
        opened_ids = {d[0] for d in opened}
        unopened = [d for d in deliveries if d[0] not in opened_ids]
        for d in rng.sample(unopened, round(n * 0.02)):
            events.append((issue, d[0], "open", None, None, later(1, 30), 1,
                           "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
                           "(via ggpht.com GoogleImageProxy)", "66.249.84.1"))
        db.executemany(
            "INSERT INTO events (issue_id, delivery_id, kind, article_id, n, at, machine, "
            "user_agent, client_ip) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", events)

        # Feedback: votes, comments, replies, auto-replies, bounces (11 : 3 : 3 : 2 : 1).
        shares = {"vote": 11, "comment": 3, "reply": 3, "auto_reply": 2, "bounce": 1}
        counts = {k: feedback * s // sum(shares.values()) for k, s in shares.items()}
        counts["vote"] += feedback - sum(counts.values())
        rows: list[tuple] = []
        voted: set[tuple[int, int]] = set()
        while len(voted) < counts["vote"]:
            d = rng.choice(opened)
            _, article_id = article()
            if (d[0], article_id) in voted:
                continue
            voted.add((d[0], article_id))
            kind = "useful" if rng.random() < 0.8 else "not_useful"
            rows.append((d[1], issue, d[0], article_id, "web", kind, "", None, None, None,
                         later(), None, None))
        texts = ["很有参考价值，建议多发一些新能源汽车方面的动态。", "第三篇的数据来源能否注明？",
                 "收到，谢谢！", "请把我们单位的李主任也加进名单。", "希望增加政策解读。"]
        for kind in ("comment", "reply", "auto_reply", "bounce"):
            for i, d in enumerate(rng.sample(opened if kind != "bounce" else unopened, counts[kind])):
                handled = kind != "bounce" and rng.random() < 1 / 3
                at = later()
                if kind == "comment":
                    rows.append((d[1], issue, d[0], article()[1], "web", kind, rng.choice(texts),
                                 None, None, None, at, at if handled else None,
                                 STAFF if handled else None))
                    continue
                words = {"reply": rng.choice(texts), "auto_reply": "您好，我正在出差，邮件稍后回复。",
                         "bounce": f"550 5.1.1 <{d[3]}>: Recipient address rejected"}[kind]
                sender = d[3] if kind != "bounce" else "MAILER-DAEMON@example.gov.cn"
                rows.append((d[1], issue, d[0], None, "email", kind, words, sender,
                             f"Re: {title}" if kind != "bounce" else "Undelivered Mail",
                             f"imap:<bench-{kind}-{i}@example.gov.cn>", at,
                             at if handled else None, STAFF if handled else None))
                if kind == "bounce":
                    db.execute("UPDATE deliveries SET bounced_at = ? WHERE id = ?", (at, d[0]))
        db.executemany(
            "INSERT INTO feedback (reader_id, issue_id, delivery_id, article_id, channel, kind, "
            "text, sender, subject, source_key, received_at, handled_at, handled_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        written = dict(db.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
        written["feedback"] = len(rows)
        db.execute("ANALYZE")
    return written


# -- signing in ------------------------------------------------------------------------


def sign_in(base_url: str, name: str, password: str) -> str:
    """The session cookie's value, from the sign-in form as a browser posts it."""
    conn = http.client.HTTPConnection(urlsplit(base_url).hostname, urlsplit(base_url).port, timeout=30)
    try:
        conn.request("GET", "/admin/login", headers={"User-Agent": BROWSER})
        r = conn.getresponse()
        page = r.read().decode()
        found = re.search(r'name="csrf" value="([^"]*)"', page)
        if r.status != 200 or not found:
            raise SystemExit(f"GET /admin/login: {r.status}, no form token")
        form = urlencode({"name": name, "password": password, "csrf": html.unescape(found.group(1)),
                          "next": "/admin"})
        # The sign-in page's own cookie: the form's token is bound to it.
        login_cookie = (r.headers.get("Set-Cookie") or "").split(";")[0]
        conn.request("POST", "/admin/login", form, headers={
            "User-Agent": BROWSER, "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": login_cookie})
        r = conn.getresponse()
        r.read()
        jar = SimpleCookie()
        for header in r.headers.get_all("Set-Cookie") or []:
            jar.load(header)
        if r.status != 303 or COOKIE not in jar or not jar[COOKIE].value:
            raise SystemExit(f"POST /admin/login: {r.status}, no {COOKIE} cookie (signed in? "
                             f"{r.headers.get('Location')})")
        return jar[COOKIE].value
    finally:
        conn.close()


def fetch(base_url: str, path: str, cookie: str) -> tuple[int, int, float, str]:
    """One GET without following redirects: (status, bytes, seconds, Location)."""
    conn = http.client.HTTPConnection(urlsplit(base_url).hostname, urlsplit(base_url).port, timeout=120)
    try:
        t0 = time.perf_counter()
        conn.request("GET", path, headers={"User-Agent": BROWSER, "Cookie": f"{COOKIE}={cookie}"})
        r = conn.getresponse()
        body = r.read()
        return r.status, len(body), time.perf_counter() - t0, r.headers.get("Location", "")
    finally:
        conn.close()


# -- main ------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readers", type=int, default=10_000)
    ap.add_argument("--feedback", type=int, default=200, help="feedback rows")
    ap.add_argument("--duration", type=int, default=10, help="seconds per target")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="build the instance here and keep it")
    args = ap.parse_args()
    if not Path(WRK).exists():
        raise SystemExit(f"{WRK} is needed: apt-get install wrk")
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="bench-admin-") as tmp:
        folder = args.keep or Path(tmp) / "instance"
        inst = Instance(folder, free_port())
        inst.init()
        readers_file = folder / "readers.csv"
        readers_csv(readers_file, args.readers, rng)
        issue, _ = sent_issue(inst, SAMPLE, readers_file)
        t0 = time.perf_counter()
        written = engagement(inst, issue, rng, args.feedback)
        say(f"issue {issue}, {args.readers} readers; events and feedback written in "
            f"{time.perf_counter() - t0:.1f}s: {written}")
        password = secrets.token_urlsafe(18)
        inst.cli("staff", "add", STAFF, "--role", "admin", stdin=f"{password}\n{password}\n")

        targets = [
            ("healthz", "/healthz"),
            ("home", "/admin"),
            ("readers", "/admin/readers"),
            ("search", f"/admin/readers?q={quote(SURNAME)}"),
            ("industry", "/admin/readers?industry=biomed&page=3"),
            ("issue", f"/admin/issues/{issue}"),
            ("progress", f"/admin/issues/{issue}/progress"),
            ("report", f"/admin/reports/{issue}"),
            ("feedback", "/admin/feedback"),
        ]
        results: dict[str, dict] = {}
        failures: list[str] = []
        with running(inst) as proc:
            cookie = sign_in(inst.base_url, STAFF, password)
            headers = {"Cookie": f"{COOKIE}={cookie}"}
            say(f"signed in as {STAFF}; each page twice (first / second request):")
            sizes: dict[str, int] = {}
            for name, path in targets:
                status, size, first, location = fetch(inst.base_url, path, cookie)
                _, _, second, _ = fetch(inst.base_url, path, cookie)
                sizes[name] = size
                say(f"  {name:<10} {status} {size / 1024:>7.1f} KB  {first * 1000:>7.1f} / "
                    f"{second * 1000:>6.1f} ms  {path}" + (f" → {location}" if location else ""))
                if status != 200:
                    failures.append(f"{path}: {status}" + (f" → {location}" if location else ""))
            if failures:
                raise SystemExit("pages not served (a redirect to /admin/login: the cookie was "
                                 "refused): " + "; ".join(failures))

            for name, path in targets:
                time.sleep(PAUSE)  # the previous target's requests still in flight finish
                script = Path(tmp) / f"{name}.lua"
                lua_paths(script, [path], headers=headers, statuses=True)
                r = results[name] = wrk(inst.base_url + "/", args, script)
                statuses = r.get("statuses", {})
                bad = {s: c for s, c in statuses.items() if not 200 <= s < 300}
                r["bad"] = sum(bad.values()) + r["non_2xx_3xx"]
                if r["bad"] or not statuses:
                    failures.append(f"{path}: statuses {statuses or 'not counted'}")
                say(f"  {name:<10} {r['rate']:>8,.1f} req/s  p99 {r['p99_ms']:>8.1f} ms  "
                    f"({r['requests']} requests, statuses {statuses}, "
                    f"{r['socket_errors']} socket errors)")
            rss = peak_rss_mb(proc.pid)

    base = results["healthz"]["rate"]
    say("")
    say(f"{'target':<10}{'req/s':>10}{'× /healthz':>12}{'p99 ms':>10}{'KB':>8}  path")
    for name, path in targets:
        r = results[name]
        say(f"{name:<10}{r['rate']:>10,.1f}{r['rate'] / base:>12.3f}{r['p99_ms']:>10.1f}"
            f"{sizes[name] / 1024:>8.1f}  {path}")
    say(f"peak RSS of dispatch run: {rss:.0f} MB; {args.readers} readers, wrk -t{args.threads} "
        f"-c{args.connections} -d{args.duration}s")
    for name, path in targets:
        if results[name]["socket_errors"]:
            say(f"WARNING: {path}: {results[name]['socket_errors']} socket errors (wrk times a "
                f"request out after 2 s)")
    for failure in failures:
        say(f"FAILED: {failure}")

    summary: dict[str, object] = {
        "rate": round(results["readers"]["rate"], 1),
        "baseline_rate": round(base, 1),
        "ratio": round(results["readers"]["rate"] / base, 3),
        "peak_rss_mb": round(rss, 1),
    }
    for name, _ in targets:
        summary[f"{name}_rate"] = round(results[name]["rate"], 1)
        summary[f"{name}_ratio"] = round(results[name]["rate"] / base, 3)
    summary["readers"] = args.readers
    summary["errors"] = sum(r["bad"] + r["socket_errors"] for r in results.values())
    print(json.dumps(summary), flush=True)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
