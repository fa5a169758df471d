"""dispatch.report.charts (SVG charts, pure) and report.timeline's pure parts: the
drawings are well-formed XML, their bars and points sit where the values put them, user
text is escaped, and nothing to draw says 暂无数据."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from xml.etree.ElementTree import Element

import pytest
from cli_language import english_words
from conftest import REPO
from defusedxml import ElementTree as SafeET

from dispatch.report import charts, timeline
from dispatch.report.charts import Chart, Series
from dispatch.report.issue_sheet import percent

SVG = "{http://www.w3.org/2000/svg}"
THEME = {k: v for k, v in re.findall(
    r'"(\w+)":\s*"(#[0-9a-fA-F]{6})"',
    (REPO / "src/dispatch/defaults/templates/_theme.j2").read_text(encoding="utf-8"))}
DRAW = {"bars": charts.bars, "hbars": charts.hbars, "line": charts.line}


def parsed(svg: str) -> Element:
    root: Element = SafeET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    title_id, desc_id = root.get("aria-labelledby", "").split()
    ids = {e.get("id") for e in root.iter()}
    assert {title_id, desc_id} <= ids
    return root


def of_class(root: Element, cls: str) -> list[Element]:
    return [e for e in root.iter() if e.get("class") == cls]


def texts(root: Element) -> str:
    return "\n".join(t for e in root.iter() for t in (e.text, e.tail) if t and t.strip())


def chart(values: list[float | None], *more: list[float | None], labels: list[str] | None = None,
          **kw: object) -> Chart:
    labels = labels or [f"第{i + 1}项" for i in range(len(values))]
    series = [Series("打开", values, "link"), *(Series(f"系列{i}", v) for i, v in enumerate(more))]
    return Chart("测试图", labels, series, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", sorted(DRAW))
def test_well_formed_accessible_and_chinese(kind: str) -> None:
    c = chart([3, 0, 12.5], [1, 2, None], unit="份", key="Some Key!")
    root = parsed(DRAW[kind](c, THEME))
    assert root.find(f"{SVG}title").text == "测试图"  # type: ignore[union-attr]
    desc = root.find(f"{SVG}desc").text or ""  # type: ignore[union-attr]
    assert "第1项：打开 3，系列0 1" in desc and "第3项：打开 12.5，系列0 —" in desc
    assert "（单位：份）" in desc
    assert root.get("aria-labelledby") == "some-key-title some-key-desc"
    assert english_words(texts(root)) == []
    # Colours are the theme's: text in text or muted, the series in theirs.
    fills = {e.get("fill") for e in root.iter() if e.tag == f"{SVG}text"}
    assert fills <= {THEME["text"], THEME["muted"]}
    marks = of_class(root, "bar") or of_class(root, "point")
    assert {e.get("fill") for e in marks} == {THEME["link"], THEME["accent"]}  # 2nd: by position


def test_vertical_bars_are_proportional() -> None:
    root = parsed(charts.bars(chart([1, 2, 4]), THEME))
    bars = of_class(root, "bar")
    heights = [float(b.get("height", "")) for b in bars]
    assert len(bars) == 3
    assert heights[1] == pytest.approx(2 * heights[0], abs=0.2)
    assert heights[2] == pytest.approx(4 * heights[0], abs=0.2)
    # The tallest reaches the top tick (4): all bars share one baseline.
    bottoms = {round(float(b.get("y", "")) + float(b.get("height", "")), 1) for b in bars}
    assert len(bottoms) == 1
    assert [t.text for t in of_class(root, "tick")] == ["0", "1", "2", "3", "4"]


def test_horizontal_bars_are_proportional_and_grouped() -> None:
    c = chart([10, 5, 0], [2, 8, 1])
    root = parsed(charts.hbars(c, THEME))
    bars = of_class(root, "bar")
    assert len(bars) == 6  # three rows of two series
    widths = [float(b.get("width", "")) for b in bars]
    assert widths[0] == pytest.approx(2 * widths[2], abs=0.2)  # 10 and 5 (series one)
    assert widths[4] == 0  # 0: a bar of no width, its value still written
    assert widths[3] == pytest.approx(4 * widths[1], abs=0.2)  # 8 and 2 (series two)
    assert [t.text for t in of_class(root, "value")][:2] == ["10", "2"]
    assert len(of_class(root, "legend")) == 1


def test_labels_are_escaped_and_cut() -> None:
    hostile = '<script>alert("x")</script> & “引号”\x00\x1b'
    long = "上海国际科技创新中心：从“建框架”向“强功能”跃升的十个关键问题"
    for kind, draw in DRAW.items():
        svg = draw(chart([1, 2], labels=[hostile, long]), THEME)
        assert "<script>" not in svg, kind
        root = parsed(svg)
        titles = [e.text for e in root.iter(f"{SVG}title")]
        assert '<script>alert("x")</script> & “引号”' in titles, kind
        assert long in titles, kind  # whole in its tooltip
        shown = [e.text for e in of_class(root, "label")]
        assert any(t and t.endswith("…") and long.startswith(t[:-1]) for t in shown), kind


def test_a_series_name_and_a_title_are_escaped() -> None:
    c = Chart('图<b onload="x">', ["一"], [Series("A&B <i>", [1])], key="k")
    svg = charts.bars(c, THEME)
    assert "<b " not in svg and "<i>" not in svg
    assert parsed(svg).find(f"{SVG}title").text == '图<b onload="x">'  # type: ignore[union-attr]


def test_a_bad_colour_is_never_written() -> None:
    svg = charts.bars(chart([1]), {**THEME, "link": 'red" onload="x'})
    assert "onload" not in svg
    parsed(svg)


@pytest.mark.parametrize("kind", sorted(DRAW))
def test_nothing_to_draw_says_so(kind: str) -> None:
    for c in (Chart("空图", [], [Series("打开", [])]), Chart("空图", ["一"], [])):
        svg = DRAW[kind](c, THEME)
        root = parsed(svg)
        assert "暂无数据" in texts(root) and "chart empty" in svg
        assert of_class(root, "bar") == [] and of_class(root, "point") == []


@pytest.mark.parametrize("kind", sorted(DRAW))
def test_all_zero(kind: str) -> None:
    root = parsed(DRAW[kind](chart([0, 0, 0]), THEME))
    assert [t.text for t in of_class(root, "tick")] == ["0", "1"]
    for bar in of_class(root, "bar"):
        assert float(bar.get("height" if kind == "bars" else "width", "")) == 0


def test_percent_charts_write_what_the_cli_writes() -> None:
    c = chart([1 / 3, 0.05, None], percent=True)
    root = parsed(charts.line(c, THEME))
    assert [t.text for t in of_class(root, "tick")] == ["0%", "10%", "20%", "30%", "40%"]
    desc = root.find(f"{SVG}desc").text or ""  # type: ignore[union-attr]
    assert f"第1项：打开 {percent(1 / 3)}" in desc and "第3项：打开 —" in desc
    assert "单位" not in desc
    points = of_class(root, "point")
    assert len(points) == 2  # none for the value that is none
    assert points[0].find(f"{SVG}title").text == "第1项 打开：33.3%"  # type: ignore[union-attr]


def test_line_points_and_gaps() -> None:
    root = parsed(charts.line(chart([2, 4, None, 1, 3]), THEME))
    points = of_class(root, "point")
    assert len(points) == 4
    ys = [float(p.get("cy", "")) for p in points]
    xs = [float(p.get("cx", "")) for p in points]
    assert xs == sorted(xs)
    base = ys[0] + (ys[0] - ys[1])  # 2 → 4 is as far up as 0 → 2
    assert base - ys[2] == pytest.approx((base - ys[0]) / 2, abs=0.2)  # 1 is half of 2
    assert len(of_class(root, "line")) == 2  # the gap splits the line
    one = parsed(charts.line(chart([5]), THEME))
    assert len(of_class(one, "point")) == 1 and of_class(one, "line") == []


def test_crowded_labels_are_thinned() -> None:
    labels = [f"1月{d}日 {h:02d}时" for d in range(13, 16) for h in (10, 16, 22, 4)]
    root = parsed(charts.line(chart([1] * 12, labels=labels), THEME))
    shown = of_class(root, "label")
    assert 2 <= len(shown) < 12 and shown[0].text == "1月13日 10时"


def test_ticks_are_round() -> None:
    assert charts.ticks(7) == [0, 2, 4, 6, 8]
    assert charts.ticks(3) == [0, 1, 2, 3]
    assert charts.ticks(100) == [0, 20, 40, 60, 80, 100]
    assert charts.ticks(0.4) == [0, 1]  # counts: whole steps
    assert charts.ticks(0) == [0, 1]
    assert charts.ticks(0.211, as_percent=True) == [0, 0.05, 0.1, 0.15, 0.2, 0.25]
    assert charts.ticks(0, as_percent=True)[-1] == 1
    assert charts.ticks(12345) == [0, 5000, 10000, 15000]
    assert charts.tick_text(0.05, True) == "5%" and charts.tick_text(0.001, True) == "0.1%"
    assert charts.value_text(1 / 3, True) == percent(1 / 3) == "33.3%"
    assert charts.value_text(None, False) == "—" and charts.value_text(2.0, False) == "2"


# -- the timeline's periods ------------------------------------------------------------------


def test_periods_start_on_the_hour_in_beijing() -> None:
    sent = datetime(2027, 1, 13, 2, 40)  # 10:40 in Beijing
    assert timeline.first_start(sent, timeline.HOURS) == datetime(2027, 1, 13, 2, 0)
    assert timeline.first_start(sent, timeline.DAYS) == datetime(2027, 1, 12, 16, 0)
    assert timeline.label(datetime(2027, 1, 13, 2, 0), timeline.HOURS) == "1月13日 10时"
    assert timeline.label(datetime(2027, 1, 12, 16, 0), timeline.DAYS) == "1月13日"


def test_counts_per_period() -> None:
    start = datetime(2027, 1, 13, 2, 0)
    hours = timedelta(hours=1)
    times = [start - hours, start, start + 5 * hours, start + 6 * hours, start + 72 * hours,
             start + 100 * hours]
    counts, later = timeline.counts(start, times, timedelta(hours=6), 12)
    assert counts[:2] == [3, 1] and sum(counts) == 4 and later == 2
    assert timeline.counts(start, [], timedelta(days=1), 7) == ([0] * 7, 0)
