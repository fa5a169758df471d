"""Render the sample issue for many readers: spliced per variant vs naive per reader.

Fast: IssueRenderer (Jinja2 + premailer + MIME template once per variant, then the
per-reader splice). Naive: Jinja2 + premailer + EmailMessage for every reader. Both
produce finished MIME bytes ready for SMTP DATA. Prints one JSON line at the end.

    .venv/bin/python bench/render.py [--readers 10000] [--naive 300] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))  # mime_reference: the EmailMessage baseline

from mime_reference import build_slow  # noqa: E402

from dispatch import editorial  # noqa: E402
from dispatch.config import load  # noqa: E402
from dispatch.db.session import make_engine, migrate, session_factory, transaction  # noqa: E402
from dispatch.industries import CODES  # noqa: E402
from dispatch.ingest import parse_file  # noqa: E402
from dispatch.render import email as email_render  # noqa: E402
from dispatch.render.pipeline import IssueRenderer, ReaderView  # noqa: E402
from dispatch.render.templates import environment  # noqa: E402
from dispatch.tagging.rules import load_rules  # noqa: E402
from dispatch.track.tokens import new_token  # noqa: E402

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程"
GIVEN = "建国红梅志强晓东海燕伟军丽娟秀英明华玉兰桂芝文静子涵宇轩浩然思远雪梅立新"
POSITIONS = ["", "", "局长", "副局长", "主任", "副市长", "总经理", "董事长", "副总经理", "书记"]
# How often each industry is followed: the city's strong sectors more than the rest.
POPULARITY = {
    "machinery": 9, "equipment": 7, "it": 7, "materials": 6, "hair": 6, "food": 5,
    "nev": 5, "green": 4, "biomed": 4, "building": 3, "chemical": 3, "textile": 2,
}


def readers(n: int, rng: random.Random) -> list[ReaderView]:
    codes = list(CODES)
    weights = [POPULARITY[c] for c in codes]
    out = []
    for i in range(n):
        roll = rng.random()
        follows_all = roll < 0.08
        k = 0 if follows_all else (1 if roll < 0.6 else 2 if roll < 0.88 else 3)
        chosen: set[str] = set()
        while len(chosen) < k:
            chosen.add(rng.choices(codes, weights)[0])
        name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
        out.append(
            ReaderView(
                id=i + 1, name=name, position=rng.choice(POSITIONS),
                email=f"reader{i}@example.gov.cn", follows_all=follows_all,
                industries=frozenset(chosen),
            )
        )
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readers", type=int, default=10_000)
    ap.add_argument("--naive", type=int, default=300, help="readers for the naive baseline")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    config = load(REPO / "config.toml", env={})
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        migrate(engine)
        with transaction(session_factory(engine)) as s:
            issue = editorial.store_issue(
                s, parse_file(REPO / "samples/issue-sample.txt"), "sample",
                load_rules(REPO / "rules/industries.toml"),
            )
            issue = editorial.get_issue(s, issue.id)
            env = environment(config)
            renderer = IssueRenderer.for_issue(issue, env, config)
    rng = random.Random(args.seed)
    people = readers(args.readers, rng)
    tokens = [new_token() for _ in people]

    # Fast path: variants built lazily as readers come, as the workers will.
    t0 = time.perf_counter()
    total_bytes = 0
    for r, tok in zip(people, tokens, strict=True):
        total_bytes += len(renderer.email_message(r, tok))
    fast_s = time.perf_counter() - t0
    rate = len(people) / fast_s

    # Naive path: template + premailer + EmailMessage, per reader.
    sample = people[: args.naive]
    t0 = time.perf_counter()
    for r, tok in zip(sample, tokens, strict=False):
        # Template + premailer for this reader (with the slot markers, which build_slow
        # fills: the same work as rendering with the reader's values in place).
        body_html, body_text = email_render.render_bodies(
            env, renderer.digest_for(r), renderer.variant_links(), renderer.subject
        )
        # The slot markers stay: build_slow fills them the way EmailMessage users would.
        build_slow(
            subject=renderer.subject, from_addr=renderer.from_addr, html=body_html,
            text=body_text, reply_domain=renderer.reply_domain, base_url=renderer.base_url,
            to_name=r.name, to_addr=r.email, token=tok, greeting=r.greeting,
        )
    naive_s = time.perf_counter() - t0
    baseline_rate = len(sample) / naive_s

    print(
        f"fast: {len(people)} messages in {fast_s:.2f}s ({rate:,.0f}/s, "
        f"{renderer.variants_built} variants, {total_bytes / len(people) / 1024:.1f} KiB avg); "
        f"naive: {len(sample)} in {naive_s:.2f}s ({baseline_rate:,.0f}/s)",
        file=sys.stderr,
    )
    print(json.dumps({
        "rate": round(rate, 1),
        "baseline_rate": round(baseline_rate, 1),
        "ratio": round(rate / baseline_rate, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "readers": len(people),
        "variants": renderer.variants_built,
        "avg_message_kib": round(total_bytes / len(people) / 1024, 1),
    }))


if __name__ == "__main__":
    main()
