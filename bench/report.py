"""`dispatch report` on a large issue: 100,000 deliveries and 1,000,000 events, on SQLite and
PostgreSQL; the report's GROUP BY queries vs a naive loop over the deliveries.

The database is filled straight through the tables (SQLAlchemy Core; COPY on PostgreSQL):
readers drawn like bench/render.py's (weighted industries, 8 % following 全部), one email
delivery each and a WeChat Work one for the first tenth; 97 % sent (0.5 % of them bounced
later), 1 % failed, 2 % still queued. About 55 % of the sent deliveries have events: a fifth
of those only machine's (image proxies), the rest people's with a tenth of machine events
mixed in; opens, clicks on the issue's articles, web reads. Votes, comments, replies,
auto-replies and bounces in the feedback table.

Fast: dispatch.report.figures.issue_figures, in a child process (best of --repeat runs;
its peak RSS is `peak_rss_mb`), and `dispatch report ISSUE --json` run whole once (Python
start-up and all: `cli_seconds`). Naive: for each delivery, its events, its feedback and
its reader's industries by id, counted in Python. The naive figures must equal the fast
ones (the bench stops otherwise), so this also checks the SQL against the rules at scale.

    .venv/bin/python bench/report.py [--deliveries 100000] [--events 1000000]
        [--database postgresql|sqlite|both] [--naive N] [--repeat 3] [--seed 1]

`rate` = deliveries reported per second; `baseline_rate` the naive loop's (over --naive
deliveries, all by default; with fewer, the figures are not compared). Prints a summary to
stderr and, last, one JSON line on stdout. PostgreSQL: a server on 127.0.0.1:5432 with
trust auth; the bench creates its own database and drops it afterwards.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sqlalchemy import Engine, create_engine, insert, select, text, update  # noqa: E402

from dispatch import editorial  # noqa: E402
from dispatch.db.models import (  # noqa: E402
    Delivery,
    Event,
    Feedback,
    Issue,
    Reader,
    ReaderChannel,
    ReaderIndustry,
)
from dispatch.db.session import make_engine, migrate, session_factory, transaction  # noqa: E402
from dispatch.ingest import parse_file  # noqa: E402
from dispatch.tagging.rules import load_rules  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CHUNK = 50_000


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    """This process's peak RSS since it started (VmHWM): ru_maxrss would carry the parent's
    peak over fork and exec (Linux keeps it in the signal struct)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bench_render() -> Any:
    """bench/render.py's reader generator (one population model for the benches)."""
    spec = importlib.util.spec_from_file_location("bench_render", Path(__file__).with_name("render.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- a database ---------------------------------------------------------------------------


def new_database(kind: str, workdir: Path) -> tuple[str, str | None]:
    """(url, PostgreSQL database name to drop afterwards)."""
    if kind == "sqlite":
        return f"sqlite:///{workdir}/report.db", None
    name = f"dispatch_bench_report_{os.getpid()}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"postgresql://postgres@127.0.0.1:5432/{name}", name


def drop_database(name: str | None) -> None:
    if name:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def bulk(engine: Engine, table: Any, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> None:
    """Rows into a table: COPY on PostgreSQL, executemany in chunks on SQLite."""
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cur = raw.driver_connection.cursor()  # type: ignore[union-attr]
            with cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
        return
    stmt = insert(table)
    with engine.begin() as conn:
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(dict(zip(columns, row, strict=True)))
            if len(chunk) >= CHUNK:
                conn.execute(stmt, chunk)
                chunk = []
        if chunk:
            conn.execute(stmt, chunk)


def fill(url: str, deliveries: int, events: int, seed: int) -> tuple[int, int]:
    """The issue, readers, deliveries, events and feedback; returns (issue id, deliveries)."""
    rng = random.Random(seed)
    engine = make_engine(url)
    migrate(engine)
    now = datetime.now(UTC).replace(tzinfo=None)
    with transaction(session_factory(engine)) as s:
        issue = editorial.store_issue(
            s, parse_file(REPO / "samples/issue-sample.txt"), "sample",
            load_rules(REPO / "rules/industries.toml"),
        )
        issue.status, issue.publish_at = "sent", now - timedelta(days=1)
        issue.fanned_out_at = issue.publish_at
        issue_id = issue.id
        articles = [a.id for a in editorial.get_issue(s, issue_id).articles]
    with_wecom = deliveries // 10
    n_readers = deliveries - with_wecom
    people = _bench_render().readers(n_readers, rng)
    bulk(engine, Reader.__table__,
         ["id", "name", "organization", "position", "group_name", "email", "wecom_userid",
          "follows_all", "status", "email_bounces", "created_at", "updated_at"],
         ((r.id, r.name, "", r.position, "", r.email,
           f"wx{r.id}" if r.id <= with_wecom else None, r.follows_all, "active", 0, now, now)
          for r in people))
    bulk(engine, ReaderIndustry.__table__, ["reader_id", "industry"],
         ((r.id, c) for r in people for c in sorted(r.industries)))
    bulk(engine, ReaderChannel.__table__, ["reader_id", "channel"],
         [(r.id, "email") for r in people] + [(i, "wecom") for i in range(1, with_wecom + 1)])

    rows = []  # (id, reader, channel, state, bounced)
    for r in people:
        rows.append((len(rows) + 1, r.id, "email"))
        if r.id <= with_wecom:
            rows.append((len(rows) + 1, r.id, "wecom"))
    states = {}
    for d_id, _, _ in rows:
        roll = rng.random()
        states[d_id] = "sent" if roll < 0.97 else "failed" if roll < 0.98 else "queued"
    sent = [d for d, *_ in rows if states[d] == "sent"]
    bounced = set(rng.sample(sent, len(sent) // 200))
    sent_at = now - timedelta(hours=20)
    bulk(engine, Delivery.__table__,
         ["id", "issue_id", "reader_id", "channel", "token", "state", "attempts",
          "available_at", "created_at", "sent_at", "bounced_at"],
         ((d, issue_id, reader, ch, f"t{d:039d}", states[d], 1, sent_at, sent_at,
           sent_at if states[d] == "sent" else None,
           sent_at + timedelta(hours=1) if d in bounced else None)
          for d, reader, ch in rows))

    engaged = rng.sample(sent, int(len(sent) * 0.55))
    machine_only = set(engaged[: len(engaged) // 5])
    kinds = ("open", "click", "web_view", "article_view")

    def event_rows() -> Iterator[tuple[Any, ...]]:
        for e in range(1, events + 1):
            d = engaged[e % len(engaged)] if e <= len(engaged) else rng.choice(engaged)
            kind = rng.choices(kinds, (55, 25, 12, 8))[0]
            machine = d in machine_only or rng.random() < 0.1
            article = rng.choice(articles) if kind in ("click", "article_view") else None
            yield (e, issue_id, d, kind, article, 1 if kind == "click" else None,
                   sent_at + timedelta(minutes=e % 600), machine, "bench", None)

    bulk(engine, Event.__table__,
         ["id", "issue_id", "delivery_id", "kind", "article_id", "n", "at", "machine",
          "user_agent", "client_ip"], event_rows())

    reader_of = {d: r for d, r, _ in rows}
    people_engaged = [d for d in engaged if d not in machine_only]

    def feedback_rows() -> Iterator[tuple[Any, ...]]:
        n = 0
        for d in people_engaged[: len(people_engaged) // 25]:  # votes
            n += 1
            yield (n, reader_of[d], issue_id, d, rng.choice(articles), "web",
                   rng.choices(("useful", "not_useful"), (4, 1))[0], "", now)
        for kind, share in (("comment", 200), ("reply", 200), ("auto_reply", 300)):
            for d in rng.sample(people_engaged, len(people_engaged) // share):
                n += 1
                article = rng.choice(articles) if kind == "comment" else None
                yield (n, reader_of[d], issue_id, d, article,
                       "web" if kind == "comment" else "email", kind, "很有参考价值", now)
        for d in sorted(bounced):
            n += 1
            yield (n, reader_of[d], issue_id, d, None, "email", "bounce", "", now)

    bulk(engine, Feedback.__table__,
         ["id", "reader_id", "issue_id", "delivery_id", "article_id", "channel", "kind",
          "text", "received_at"], feedback_rows())
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            for table in ("readers", "deliveries", "events", "feedback"):
                conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"))
        conn.execute(text("ANALYZE"))
    with engine.begin() as conn:
        conn.execute(update(Issue).where(Issue.id == issue_id).values(status="sent"))
    engine.dispose()
    return issue_id, len(rows)


# -- fast: the report's queries, in a child process ------------------------------------


def measure(url: str, issue_id: int, repeat: int) -> None:
    """The child: times issue_figures; prints {"seconds", "peak_rss_mb", "figures"}."""
    from dispatch.report.figures import issue_figures, to_json

    engine = make_engine(url)
    factory = session_factory(engine)
    times = []
    figures = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        with factory() as session:
            figures = issue_figures(session, issue_id)
        times.append(time.perf_counter() - t0)
    assert figures is not None
    print(json.dumps({"seconds": min(times), "all_seconds": times,
                      "peak_rss_mb": peak_rss_mb(), "figures": to_json(figures)}))


def fast(url: str, issue_id: int, repeat: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--measure", url, str(issue_id), "--repeat", str(repeat)],
        capture_output=True, text=True, check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def cli_seconds(url: str, issue_id: int, workdir: Path) -> float:
    config = workdir / "config.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[tagging]\nrules = "{REPO / "rules/industries.toml"}"\n'
        f'[paths]\ntemplates = "{REPO / "templates"}"\n', encoding="utf-8")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dispatch", "--config", str(config), "report",
                    str(issue_id), "--json"], capture_output=True, check=True)
    return time.perf_counter() - t0


# -- naive: one delivery at a time -------------------------------------------------------


def naive(url: str, issue_id: int, limit: int | None) -> tuple[float, int, dict[str, Any]]:
    """(seconds, deliveries counted, figures in to_json's shape where comparable)."""
    engine = make_engine(url)
    channels: dict[str, Counter[str]] = defaultdict(Counter)
    articles: dict[int, Counter[str]] = defaultdict(Counter)
    industries: dict[str, Counter[str]] = defaultdict(Counter)
    feedback: Counter[str] = Counter()
    readers_sent: dict[int, bool] = {}
    t0 = time.perf_counter()
    with session_factory(engine)() as s:
        query = (select(Delivery.id, Delivery.channel, Delivery.state, Delivery.bounced_at,
                        Delivery.reader_id)
                 .where(Delivery.issue_id == issue_id).order_by(Delivery.id))
        rows = s.execute(query if limit is None else query.limit(limit)).all()
        for d_id, channel, state, bounced_at, reader_id in rows:
            c = channels[channel]
            c["planned"] += 1
            if state == "sent":
                c["sent"] += 1
                c["bounced"] += bounced_at is not None
            elif state == "failed":
                c["failed"] += 1
            elif state in ("queued", "sending", "retry"):
                c["pending"] += 1
            else:
                c["cancelled"] += 1
            events = s.execute(select(Event.kind, Event.machine, Event.article_id)
                               .where(Event.delivery_id == d_id)).all()
            human = [e for e in events if not e.machine]
            if events:
                c["opened_human" if human else "opened_machine_only"] += 1
            clicks = [e for e in human if e.kind == "click"]
            web = [e for e in human if e.kind in ("web_view", "article_view")]
            c["clicks"] += len(clicks)
            c["clicked"] += bool(clicks)
            c["web_reads"] += len(web)
            c["web_readers"] += bool(web)
            for kind, key in (("click", "clicks"), ("article_view", "reads")):
                seen = [e.article_id for e in human if e.kind == kind and e.article_id]
                for a in seen:
                    articles[a][key] += 1
                for a in set(seen):
                    articles[a]["clicked" if kind == "click" else "readers"] += 1
            for kind, article in s.execute(select(Feedback.kind, Feedback.article_id)
                                           .where(Feedback.delivery_id == d_id)).all():
                feedback[kind] += 1
                if article is not None and kind in ("useful", "not_useful", "comment"):
                    articles[article]["comments" if kind == "comment" else kind] += 1
            if state == "sent":
                readers_sent[reader_id] = readers_sent.get(reader_id, False) or bool(human)
        for reader_id, opened in readers_sent.items():
            follows_all = s.scalar(select(Reader.follows_all).where(Reader.id == reader_id))
            codes = ["all"] if follows_all else s.scalars(
                select(ReaderIndustry.industry).where(ReaderIndustry.reader_id == reader_id)).all()
            for code in codes:
                industries[code]["readers"] += 1
                industries[code]["opened"] += opened
    seconds = time.perf_counter() - t0
    engine.dispose()
    return seconds, len(rows), {
        "readers": len(readers_sent),
        "channels": {ch: dict(c) for ch, c in channels.items()},
        "articles": {a: dict(c) for a, c in articles.items()},
        "industries": {code: dict(c) for code, c in industries.items()},
        "feedback": dict(feedback),
    }


def differences(fast_json: dict[str, Any], slow: dict[str, Any]) -> list[str]:
    """What the naive count says differently from the report (empty: they agree)."""
    out = []
    if fast_json["readers"] != slow["readers"]:
        out.append(f"readers {fast_json['readers']} != {slow['readers']}")
    for ch, figures in fast_json["channels"].items():
        for key, value in figures.items():
            if key != "open_rate" and value != slow["channels"].get(ch, {}).get(key, 0):
                out.append(f"{ch}.{key} {value} != {slow['channels'].get(ch, {}).get(key, 0)}")
    for a in fast_json["articles"]:
        for key in ("clicks", "clicked", "reads", "readers", "useful", "not_useful", "comments"):
            if a[key] != slow["articles"].get(a["id"], {}).get(key, 0):
                out.append(f"article {a['id']}.{key} {a[key]} != {slow['articles'].get(a['id'], {}).get(key, 0)}")
    for i in fast_json["industries"]:
        for key in ("readers", "opened"):
            if i[key] != slow["industries"].get(i["code"], {}).get(key, 0):
                out.append(f"industry {i['code']}.{key} {i[key]} != {slow['industries'].get(i['code'], {}).get(key, 0)}")
    for kind, n in fast_json["feedback"].items():
        if kind != "from_readers" and n != slow["feedback"].get(kind, 0):
            out.append(f"feedback {kind} {n} != {slow['feedback'].get(kind, 0)}")
    return out


def run(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    url, dbname = new_database(kind, workdir)
    try:
        t0 = time.perf_counter()
        issue_id, n = fill(url, args.deliveries, args.events, args.seed)
        say(f"[{kind}] filled {n:,} deliveries, {args.events:,} events in {time.perf_counter() - t0:.1f}s")
        quick = fast(url, issue_id, args.repeat)
        cli = cli_seconds(url, issue_id, workdir)
        say(f"[{kind}] report: {quick['seconds']:.3f}s (runs {', '.join(f'{t:.3f}' for t in quick['all_seconds'])}), "
            f"peak RSS {quick['peak_rss_mb']:.0f} MiB; `dispatch report --json` whole: {cli:.2f}s")
        slow_s, slow_n, slow = naive(url, issue_id, args.naive)
        say(f"[{kind}] naive: {slow_n:,} deliveries in {slow_s:.1f}s")
        if slow_n == n:
            diff = differences(quick["figures"], slow)
            if diff:
                sys.exit(f"[{kind}] the report and the naive count disagree:\n" + "\n".join(diff[:30]))
            say(f"[{kind}] the naive count agrees with the report, figure for figure")
        rate = n / quick["seconds"]
        baseline_rate = slow_n / slow_s
        return {"rate": rate, "baseline_rate": baseline_rate, "peak_rss_mb": quick["peak_rss_mb"],
                "report_seconds": quick["seconds"], "cli_seconds": cli, "deliveries": n,
                "naive_seconds": slow_s, "compared": slow_n == n,
                "open_rate": quick["figures"]["totals"]["open_rate"]}
    finally:
        drop_database(dbname)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deliveries", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--database", choices=("postgresql", "sqlite", "both"), default="both")
    ap.add_argument("--naive", type=int, default=None, help="deliveries for the naive loop (default all)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--measure", nargs=2, metavar=("URL", "ISSUE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        measure(args.measure[0], int(args.measure[1]), args.repeat)
        return
    kinds = ["postgresql", "sqlite"] if args.database == "both" else [args.database]
    workdir = Path(tempfile.mkdtemp(prefix="dispatch-bench-report-"))
    try:
        results = {kind: run(kind, args, workdir) for kind in kinds}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    main_kind = kinds[0]
    res = results[main_kind]
    summary: dict[str, Any] = {
        "rate": round(res["rate"], 1),
        "baseline_rate": round(res["baseline_rate"], 1),
        "ratio": round(res["rate"] / res["baseline_rate"], 1),
        "peak_rss_mb": round(res["peak_rss_mb"], 1),
        "database": main_kind,
        "deliveries": res["deliveries"],
        "events": args.events,
        "report_seconds": round(res["report_seconds"], 3),
        "cli_seconds": round(res["cli_seconds"], 2),
        "naive_seconds": round(res["naive_seconds"], 1),
        "compared": res["compared"],
    }
    for kind in kinds[1:]:
        r = results[kind]
        summary[f"rate_{kind}"] = round(r["rate"], 1)
        summary[f"baseline_rate_{kind}"] = round(r["baseline_rate"], 1)
        summary[f"ratio_{kind}"] = round(r["rate"] / r["baseline_rate"], 1)
        summary[f"peak_rss_mb_{kind}"] = round(r["peak_rss_mb"], 1)
        summary[f"report_seconds_{kind}"] = round(r["report_seconds"], 3)
        summary[f"cli_seconds_{kind}"] = round(r["cli_seconds"], 2)
        summary[f"compared_{kind}"] = r["compared"]
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
