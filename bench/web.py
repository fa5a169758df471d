"""The reader web app under load: one `dispatch run` on SQLite, hammered by Debian's `wrk`.

Sets up a real instance (`dispatch init`), ingests a large issue (ARTICLES articles,
built from the sample issue's articles under the text-file caps: 8,495 by default, the
size of a year of issues in one file), imports READERS readers with the CLI, plans the
issue with `dispatch send` and marks every delivery sent an hour ago (no mail is sent: it
is the web app under test, not delivery; the hour keeps the opens out of the machine
window). Then starts `dispatch run` (web app, scheduler and worker, events recorded as
in production) and runs `wrk -t2 -c32 -dDURATION` against, in turn:

    /healthz              the baseline: the same server's floor (a database round trip)
    /o/TOKEN.gif          the open pixel
    /c/TOKEN/1            a click (302)
    /w/TOKEN              the whole issue as a page
    POST /u/TOKEN         RFC 8058 one-click unsubscribe (a write)

Each target but /healthz cycles through TOKENS readers' tokens (a wrk Lua script), so it
is not one reader's cached lookup. Afterwards the service is stopped (SIGTERM: it flushes
its events) and the events table is counted against the requests wrk completed.

    .venv/bin/python bench/web.py [--articles 8495] [--readers 2000] [--tokens 1000]
        [--duration 10] [--connections 32] [--threads 2] [--keep DIR]

Prints a table to stderr and, last, one JSON line on stdout: rate = pixel req/s,
baseline_rate = /healthz req/s, ratio = rate / baseline_rate, page_rate, click_rate,
unsubscribe_rate (req/s) and their ratios to the baseline, peak_rss_mb of the
`dispatch run` process (VmHWM), events_recorded (rows in events) and events_expected.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import shutil
import sqlite3
import tempfile
import time
import urllib.request
from pathlib import Path

from harness import (
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

INDUSTRIES = ["全部", "新材料、装备制造", "生物医药", "发制品、轻纺", "新一代信息技术、智能装备",
              "食品", "新能源汽车", "节能环保"]
TITLE_MAX = 40  # ingest's longest title-like line


# -- the instance ----------------------------------------------------------------------


def sample_articles() -> list[tuple[str, list[str]]]:
    """(title, paragraphs) of the sample issue's articles: a title-like line after a
    blank line or a section, then its paragraphs."""
    articles: list[tuple[str, list[str]]] = []
    fresh = True
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("●"):
            fresh = True
            continue
        if fresh and len(line) <= TITLE_MAX and not line.endswith("。"):
            articles.append((line, []))
        elif articles:
            articles[-1][1].append(line)
        fresh = False
    # (The sample's last lines are page numbers: not articles.)
    return [(t, ps) for t, ps in articles if ps and not t.isdigit()]


def big_issue(path: Path, count: int) -> None:
    """An issue of `count` articles in 100-article sections, each a sample article's
    title (numbered) and first two paragraphs cut short: under 5 MB and 50,000 lines."""
    base = sample_articles()
    lines = ["许昌竞争情报快递 2024年第1期"]
    for i in range(count):
        if i % 100 == 0:
            lines.append(f"●专题{i // 100 + 1}")
        title, paragraphs = base[i % len(base)]
        lines.append(f"{i + 1}.{title}"[:TITLE_MAX].rstrip("：:，,"))
        lines.extend(p[:150] + ("。" if len(p) > 150 else "") for p in paragraphs[:2])
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def readers_csv(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["姓名", "邮箱", "关注产业"])
        for i in range(n):
            writer.writerow([f"读者{i}", f"reader{i}@example.gov.cn", INDUSTRIES[i % len(INDUSTRIES)]])


def prepare(inst: Instance, articles: int, readers: int) -> tuple[int, list[str]]:
    """The issue id and every delivery's token."""
    inst.init()
    issue_file = inst.folder / "big-issue.txt"
    if articles:
        big_issue(issue_file, articles)
    else:
        shutil.copy(SAMPLE, issue_file)
    readers_file = inst.folder / "readers.csv"
    readers_csv(readers_file, readers)
    return sent_issue(inst, issue_file, readers_file)


# -- main ------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--articles", type=int, default=8495, help="0: the sample issue itself")
    ap.add_argument("--readers", type=int, default=2000)
    ap.add_argument("--tokens", type=int, default=1000, help="distinct tokens each target cycles through")
    ap.add_argument("--duration", type=int, default=10, help="seconds per target")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="build the instance here and keep it")
    args = ap.parse_args()
    if not Path(WRK).exists():
        raise SystemExit(f"{WRK} is needed: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        folder = args.keep or Path(tmp) / "instance"
        inst = Instance(folder, free_port())
        issue, tokens = prepare(inst, args.articles, args.readers)
        tokens = tokens[: args.tokens]
        with contextlib.closing(sqlite3.connect(inst.database)) as db:
            articles = db.execute(
                "SELECT count(*) FROM articles JOIN sections ON sections.id = articles.section_id "
                "WHERE sections.issue_id = ?", (issue,)).fetchone()[0]
        say(f"issue {issue}: {articles} articles; {len(tokens)} tokens of {args.readers} readers")

        scripts = Path(tmp)
        lua_paths(scripts / "pixel.lua", [f"/o/{t}.gif" for t in tokens])
        lua_paths(scripts / "click.lua", [f"/c/{t}/1" for t in tokens])
        lua_paths(scripts / "page.lua", [f"/w/{t}" for t in tokens])
        lua_paths(scripts / "unsubscribe.lua", [f"/u/{t}" for t in tokens],
                  method="POST", body="List-Unsubscribe=One-Click")

        results: dict[str, dict[str, float]] = {}
        with running(inst) as proc:
            # Build the issue's views and each kind of reader's page before timing: a
            # one-time cost per issue (`build_s`), not the steady state measured here.
            t0 = time.perf_counter()
            for token in tokens[: len(INDUSTRIES)]:  # readers 0… follow each choice in turn
                with urllib.request.urlopen(f"{inst.base_url}/w/{token}", timeout=600) as r:
                    page_bytes = len(r.read())
            build_s = time.perf_counter() - t0
            say(f"/w page: {page_bytes / 1e6:.2f} MB; issue and {len(INDUSTRIES)} pages built in {build_s:.1f}s")
            targets = [
                ("healthz", "/healthz", None),
                ("pixel", "/", scripts / "pixel.lua"),
                ("click", "/", scripts / "click.lua"),
                ("page", "/", scripts / "page.lua"),
                ("unsubscribe", "/", scripts / "unsubscribe.lua"),
            ]
            for name, path, script in targets:
                results[name] = wrk(inst.base_url + path, args, script)
                r = results[name]
                say(f"  {name:<12} {r['rate']:>9,.0f} req/s  p99 {r['p99_ms']:>8.1f} ms  "
                    f"({r['requests']} requests, {r['non_2xx_3xx']} non-2xx/3xx, "
                    f"{r['socket_errors']} socket errors)")
            rss = peak_rss_mb(proc.pid)

        with contextlib.closing(sqlite3.connect(inst.database)) as db:
            recorded = dict(db.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
            machine = db.execute("SELECT count(*) FROM events WHERE machine").fetchone()[0]
            unsubscribed = db.execute("SELECT count(*) FROM readers WHERE status = 'unsubscribed'").fetchone()[0]
        expected = {
            "open": results["pixel"]["requests"],
            "click": results["click"]["requests"],
            "web_view": results["page"]["requests"] + len(INDUSTRIES),  # and the warm-up reads
        }
        events_recorded = sum(recorded.values())
        events_expected = sum(expected.values())
        base = results["healthz"]["rate"]

        say("")
        say(f"{'target':<14}{'req/s':>10}{'× /healthz':>12}{'p99 ms':>10}")
        for name, r in results.items():
            say(f"{name:<14}{r['rate']:>10,.0f}{r['rate'] / base:>12.2f}{r['p99_ms']:>10.1f}")
        say(f"events: {recorded} ({machine} machine), expected {expected}; "
            f"readers unsubscribed: {unsubscribed}; peak RSS of dispatch run: {rss:.0f} MB")
        # wrk counts the responses it read; requests still in flight when it stopped
        # were served and recorded too: up to one per connection and target.
        in_flight = args.connections * len(expected)
        if not 0 <= events_recorded - events_expected <= in_flight:
            say(f"WARNING: events recorded differ from requests served by "
                f"{events_recorded - events_expected} (see {folder}/run.log)")

    print(json.dumps({
        "rate": round(results["pixel"]["rate"], 1),
        "baseline_rate": round(base, 1),
        "ratio": round(results["pixel"]["rate"] / base, 2),
        "peak_rss_mb": round(rss, 1),
        "page_rate": round(results["page"]["rate"], 1),
        "click_rate": round(results["click"]["rate"], 1),
        "unsubscribe_rate": round(results["unsubscribe"]["rate"], 1),
        "page_ratio": round(results["page"]["rate"] / base, 2),
        "click_ratio": round(results["click"]["rate"] / base, 2),
        "unsubscribe_ratio": round(results["unsubscribe"]["rate"] / base, 2),
        "events_recorded": events_recorded,
        "events_expected": events_expected,
        "articles": articles,
        "page_mb": round(page_bytes / 1e6, 2),
        "build_s": round(build_s, 1),
        "errors": sum(r["non_2xx_3xx"] + r["socket_errors"] for r in results.values()),
    }))


if __name__ == "__main__":
    main()
