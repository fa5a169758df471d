"""How fast, and in how much memory, hostile files are refused — beside reading normal files.

Builds the hostile issue files and reader lists of tests/test_hostile_input.py (with the
same builders, tests/hostile_files.py), some at the size caps, and normal ones, then
reads each in a child
process of its own, as `dispatch issues ingest` / `recipients import` would: the child
times the read alone (imports done) and reports its peak RSS (VmHWM, since exec; wait4()
if it dies). Children run under a 2 GB address-space limit and a 120 s timeout, so a file
that is not refused can't take the machine down.

    .venv/bin/python bench/hostile.py

Prints one line per file, then one JSON line: rate = hostile files handled per second
(refused, or read for the one valid file; read time only), baseline_rate = the same
number of normal files of the same kinds (the sample issue as .txt, .md, .docx; the
sample list as .csv, .xlsx: a few KiB each, the size of the reported files) read per
second, ratio = rate / baseline_rate, peak_rss_mb = the largest peak RSS of a
hostile child (the interpreter with dispatch, openpyxl and python-docx imported is
baseline_peak_rss_mb of it), slowest_s = the longest.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

CHILD_LIMIT_BYTES = 2 * 1024**3
# Hostile but valid: these must be read, quickly.
READ_ON_PURPOSE = {"unclosed-markup.md", "long-lines-4mb.txt"}
CHILD_TIMEOUT_S = 120


def child(path: Path) -> None:
    """Read one file as the commands do; print {seconds, outcome, message}."""
    from dispatch.ingest import IngestError, parse_file
    from dispatch.readers.table import TableError, read_table

    start = time.perf_counter()
    try:
        if path.suffix in (".csv", ".xlsx"):
            read_table(path)
        else:
            parse_file(path)
        outcome, message = "read", ""
    except IngestError as e:
        outcome, message = "refused", str(e)
    except TableError as e:
        outcome, message = "refused", str(e.error)
    seconds = time.perf_counter() - start
    # The high-water mark of this process since exec (wait4's ru_maxrss would count the
    # parent's memory at fork too).
    status = Path("/proc/self/status").read_text()
    hwm_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    print(json.dumps({"seconds": seconds, "outcome": outcome, "message": message,
                      "rss_mb": hwm_kib / 1024}, ensure_ascii=False))


def run_child(path: Path) -> dict:
    """Run ``child`` on one file, under the limits; its outcome, time and peak RSS."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_LIMIT_BYTES, CHILD_LIMIT_BYTES))

    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, __file__, "--child", str(path)],
                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=limit)
        timer = threading.Timer(CHILD_TIMEOUT_S, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read().decode(errors="replace")
    wall = time.perf_counter() - started
    last = output.strip().splitlines()[-1] if output.strip() else ""
    if proc.returncode == 0 and last.startswith("{"):
        result = json.loads(last)
    else:
        result = {"seconds": None, "outcome": f"crashed ({proc.returncode})", "message": last}
    result["wall"] = wall
    if "rss_mb" not in result:  # the child died: wait4's figure, an upper bound
        result["rss_mb"] = usage.ru_maxrss / 1024
    return result


def build(folder: Path) -> tuple[list[Path], list[Path]]:
    import hostile_files as h
    from docx import Document
    from openpyxl import Workbook

    from dispatch.limits import MB

    def write(name: str, content: bytes | int) -> Path:
        return h.write(folder / name, content)

    issue_lines = h.issue_lines(12)
    reader_lines = h.reader_lines(12)
    hostile = [
        write("huge.txt", 20 * MB + 1),
        write("huge.docx", 21 * MB),
        write("empty-paragraphs-8mb.docx", h.docx_empty_paragraphs(8)),
        write("empty-paragraphs-32mb.docx", h.docx_empty_paragraphs(32)),
        write("many-paragraphs.docx", h.docx_many_paragraphs()),
        write("many-elements.docx", h.docx_many_elements()),
        write("billion-laughs.docx", h.docx_billion_laughs()),
        write("external-entity.docx", h.docx_external_entity()),
        write("many-entries.docx", h.many_entries(h.docx())),
        write("lying-sizes.docx", h.lying_sizes(h.docx())),
        write("mixed.txt", h.mixed_encoding(issue_lines, 10)),
        write("nul.txt", "●行业动态\n标题\n第一\x00段。\n".encode()),
        write("esc-front-matter.md",
              '---\ntitle: "许昌\\e[2J"\n---\n# 栏目\n## 标题\n正文。\n'.encode()),
        write("huge.csv", 20 * MB + 1),
        write("far-cell.xlsx", h.xlsx_far_cell()),
        write("lying-dimension.xlsx", h.xlsx_lying_dimension()),
        write("many-rows.xlsx", h.xlsx_many_rows(120_001)),
        write("formatted-cells.xlsx", h.xlsx_formatted_cells()),
        write("shared-strings.xlsx", h.xlsx_large_shared_strings()),
        write("zip-bomb.xlsx", h.xlsx_zip_bomb()),
        write("billion-laughs.xlsx", h.xlsx_billion_laughs()),
        write("external-entity.xlsx", h.xlsx_external_entity()),
        write("many-entries.xlsx", h.many_entries(h.xlsx_list([["姓名"]]))),
        write("mixed.csv", h.mixed_encoding(reader_lines, 10)),
        write("wide.csv", (h.READER_HEADER + "," * 100_000 + "\n").encode()),
        write("many-rows.csv", "\n".join(h.reader_lines(120_000)).encode()),
        # At the size caps, with an emoji (four bytes a character once decoded): five
        # million short lines; a GBK line at the very end; a text issue of short lines.
        write("short-lines-19mb.csv",
              h.READER_HEADER.encode() + "😀,b\n".encode() + b"a,b\n" * (19 * MB // 4)),
        write("mixed-at-end-19mb.csv",
              h.mixed_encoding([*h.reader_lines(19 * MB // 100), "😀", "张三"], 19 * MB // 100 + 3)),
        write("many-lines-4mb.txt", ("●栏目😀\n标题\n" + "正文。\n" * (4 * MB // 10)).encode()),
        write("long-lines-4mb.txt", ("●栏目😀\n标题\n" + ("正文" * 20_000 + "。\n") * 34).encode()),
        # A sheet just under the element cap whose last value is in XFD1048576: the
        # slowest refusal there can be.
        write("near-cap-far-cell.xlsx", h.xlsx_formatted_cells(rows=74_000, far_value=True)),
        # Markup that never closes, on long lines: read (not refused), in linear time.
        write("unclosed-markup.md", ("# 行业动态\n## 标题\n\n" + "\n\n".join(
            ["*a " * 20_000, "[a](x" * 20_000, "<http:a" * 20_000, "a" + "`" * 20_000,
             "~~a " * 20_000, "来源：新华社" + " " * 100_000 + "b", "<!--a" * 20_000]) + "\n"
        ).encode()),
    ]

    sample_issue = (REPO / "samples" / "issue-sample.txt").read_text(encoding="utf-8")
    sample_list = (REPO / "recipients" / "sample.csv").read_bytes()
    document = Document()  # typed like the text format: read with its rules
    for line in sample_issue.splitlines():
        document.add_paragraph(line)
    buf = io.BytesIO()
    document.save(buf)
    wb = Workbook()
    import csv
    for row in csv.reader(io.StringIO(sample_list.decode("utf-8-sig"))):
        wb.active.append(row)
    xbuf = io.BytesIO()
    wb.save(xbuf)
    normal = {
        ".txt": write("sample.txt", sample_issue.encode("gb18030")),
        ".md": write("sample.md", "\n".join(
            "# " + line.strip()[1:] if line.strip().startswith("●") else line
            for line in sample_issue.splitlines()).encode()),
        ".docx": write("sample.docx", buf.getvalue()),
        ".csv": write("sample.csv", sample_list),
        ".xlsx": write("sample.xlsx", xbuf.getvalue()),
    }
    return hostile, normal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    with tempfile.TemporaryDirectory(prefix="dispatch-hostile-") as tmp:
        hostile, normal = build(Path(tmp))
        results = {}
        for path in [*normal.values(), *hostile]:
            results[path] = r = run_child(path)
            seconds = f"{r['seconds']:.3f}s" if r["seconds"] is not None else "—"
            print(f"{path.name:28} {path.stat().st_size / 1024:>9,.0f} KiB  {r['outcome']:8} "
                  f"in {seconds:>7} (wall {r['wall']:.2f}s)  peak RSS {r['rss_mb']:4.0f} MiB  "
                  f"{r['message'][len(str(path)):][:60]}")
        bad = [p.name for p in hostile
               if results[p]["outcome"] != ("read" if p.name in READ_ON_PURPOSE else "refused")]
        if bad:
            print(f"UNEXPECTED OUTCOME: {', '.join(bad)}", file=sys.stderr)
        times = [results[p]["seconds"] or CHILD_TIMEOUT_S for p in hostile]
        # The baseline: the same mix of kinds, each read from a normal file of that kind.
        baseline = [results[normal[p.suffix]]["seconds"] for p in hostile]
        rate, baseline_rate = len(times) / sum(times), len(baseline) / sum(baseline)
        print(json.dumps({
            "rate": round(rate, 1),
            "baseline_rate": round(baseline_rate, 1),
            "ratio": round(rate / baseline_rate, 2),
            "peak_rss_mb": round(max(results[p]["rss_mb"] for p in hostile), 1),
            "baseline_peak_rss_mb": round(max(results[p]["rss_mb"] for p in normal.values()), 1),
            "slowest_s": round(max(times), 3),
            "files": len(hostile),
            "unexpected": bad,
        }))


if __name__ == "__main__":
    main()
