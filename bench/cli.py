"""How long the `dispatch` command takes, beside `python -c pass` (the floor), in one run.

Each command runs as a real process, as staff run it, in a fresh instance made by
`dispatch init` in a temporary folder (SQLite):

- `python -c pass`, `dispatch --help`, `dispatch recipients --help`: REPEAT runs each;
- `dispatch recipients list` over 1,000 readers: REPEAT runs;
- `dispatch recipients import` of a 100,000-row CSV into an empty database, then the
  re-import of the same file (nothing changes): once each.

Times are wall-clock seconds: the best run (what the command costs; a busy machine only
adds to it) and the median. CPU is user + system time of the process. Peak RSS is the
child's own high-water mark (wait4's ru_maxrss). Prints a table, then ONE JSON line:
rate = `dispatch --help` runs a second (best), baseline_rate = `python -c pass` runs a
second (best), ratio = rate / baseline_rate, peak_rss_mb = the 100,000-row import's peak;
the other keys are each measure in seconds (best; *_median: median) or MB.

    .venv/bin/python bench/cli.py [--repeat 15] [--rows 100000] [--list-readers 1000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
DISPATCH = BIN / "dispatch"

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程"
GIVEN = "建国红梅志强晓东海燕伟军丽娟秀英明华玉兰桂芝文静子涵宇轩浩然思远雪梅立新"
ORGS = ["许昌市发展和改革委员会", "许昌市工业和信息化局", "许昌瑞丰发制品有限公司",
        "许昌市商务局", "长葛市人民政府", "禹州市人民政府", "许昌智能电力装备有限公司"]
POSITIONS = ["", "", "局长", "副局长", "主任", "副市长", "总经理", "董事长", "书记"]
GROUPS = ["市领导", "县区领导", "市直部门", "重点企业"]
INDUSTRIES = ["新一代信息技术", "新材料", "生物医药", "智能装备", "新能源汽车", "节能环保",
              "装备制造", "食品", "发制品", "建材", "化工", "轻纺"]
CHANNELS = ["邮件", "邮件", "邮件", "企业微信", "邮件、企业微信"]
HEADER = ["姓名", "单位", "职务", "分组", "邮箱", "企业微信账号", "关注产业", "接收方式", "状态"]


@dataclass
class Run:
    seconds: float
    cpu: float
    peak_rss_mb: float


def run(argv: list[str], *, check: bool = True) -> Run:
    """One process, its output thrown away; its own time, CPU and peak memory."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        start = time.perf_counter()
        pid = os.posix_spawn(
            argv[0], argv, os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                          (os.POSIX_SPAWN_DUP2, devnull, 2)],
        )
        _, status, usage = os.wait4(pid, 0)
        seconds = time.perf_counter() - start
    finally:
        os.close(devnull)
    code = os.waitstatus_to_exitcode(status)
    if check and code != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {code}")
    return Run(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def repeat(argv: list[str], times: int) -> list[Run]:
    run(argv)  # warm the page cache and the bytecode
    return [run(argv) for _ in range(times)]


def readers_csv(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(rows):
            name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
            k = rng.choice((1, 1, 2, 3))
            industries = "全部" if rng.random() < 0.08 else "、".join(rng.sample(INDUSTRIES, k))
            out.writerow([
                name, rng.choice(ORGS), rng.choice(POSITIONS), rng.choice(GROUPS),
                f"reader{i}@example.gov.cn", f"reader{i}", industries, rng.choice(CHANNELS), "正常",
            ])


def instance(root: Path, name: str) -> Path:
    folder = root / name
    run([str(DISPATCH), "init", str(folder)])
    return folder / "config.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--list-readers", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rows: list[tuple[str, str, list[Run]]] = []
    with tempfile.TemporaryDirectory(prefix="dispatch-bench-cli-") as tmp:
        root = Path(tmp)
        small = instance(root, "small")
        small_csv = root / "small.csv"
        readers_csv(small_csv, args.list_readers, args.seed)
        run([str(DISPATCH), "--config", str(small), "recipients", "import", str(small_csv)])

        n = args.repeat
        rows.append(("pass", "python -c pass", repeat([sys.executable, "-c", "pass"], n)))
        rows.append(("help", "dispatch --help", repeat([str(DISPATCH), "--help"], n)))
        rows.append(("group_help", "dispatch recipients --help",
                     repeat([str(DISPATCH), "recipients", "--help"], n)))
        rows.append(("command_help", "dispatch recipients list --help",
                     repeat([str(DISPATCH), "recipients", "list", "--help"], n)))
        rows.append((f"list_{args.list_readers}",
                     f"dispatch recipients list ({args.list_readers:,} readers)",
                     repeat([str(DISPATCH), "--config", str(small), "recipients", "list"], n)))

        big = instance(root, "big")
        big_csv = root / "big.csv"
        readers_csv(big_csv, args.rows, args.seed)
        importing = [str(DISPATCH), "--config", str(big), "recipients", "import", str(big_csv)]
        rows.append((f"import_{args.rows // 1000}k",
                     f"dispatch recipients import ({args.rows:,} rows, empty database)",
                     [run(importing)]))
        rows.append((f"reimport_{args.rows // 1000}k", "  the same file again (no change)",
                     [run(importing)]))

    width = max(len(label) for _, label, _ in rows)
    print(f"{'':<{width}} {'best s':>8} {'median s':>9} {'CPU s':>7} {'peak MB':>8}",
          file=sys.stderr)
    result: dict[str, float] = {}
    for key, label, runs in rows:
        best = min(runs, key=lambda r: r.seconds)
        median = statistics.median(r.seconds for r in runs)
        peak = max(r.peak_rss_mb for r in runs)
        print(f"{label:<{width}} {best.seconds:8.3f} {median:9.3f} {best.cpu:7.3f} {peak:8.1f}",
              file=sys.stderr)
        result[f"{key}_s"] = round(best.seconds, 4)
        if len(runs) > 1:
            result[f"{key}_median_s"] = round(median, 4)
        if key.startswith(("import", "reimport")):
            result[f"{key}_peak_rss_mb"] = round(peak, 1)
    rate = 1 / result["help_s"]
    baseline_rate = 1 / result["pass_s"]
    print(json.dumps({
        "rate": round(rate, 2),
        "baseline_rate": round(baseline_rate, 2),
        "ratio": round(rate / baseline_rate, 4),
        "peak_rss_mb": result[f"import_{args.rows // 1000}k_peak_rss_mb"],
        **result,
    }))


if __name__ == "__main__":
    main()
