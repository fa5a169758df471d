"""Charts as inline SVG, drawn on the server: no script, no CDN, nothing to fetch, so a
report works offline and prints as it shows.

Pure functions: plain data in (a `Chart`: labels, one or more `Series` of values, a
title), an SVG string out.

- `bars`   vertical bars, grouped by label (a few short labels: days, channels);
- `hbars`  horizontal bars, one row per label (long Chinese labels: article titles,
  industries);
- `line`   lines over labels in order (a time series, a trend across issues).

Every text is escaped (labels are user data: article titles) and stripped of characters
XML cannot hold. Each chart is an `<svg role="img">` named by its `<title>` and described
by a `<desc>` that reads its values out; each bar and point carries a `<title>` too
(a tooltip in every browser). The page puts the same figures in a table under it.

Colours come from the theme (defaults/templates/_theme.j2), passed in as its mapping:
text in `text` and `muted` (which the contrast test holds to 4.5:1 on every background),
grid lines in `border`, the axis in `outline`; a series names its colour by the theme's
key (`tone`), else takes the next of SERIES_TONES. Percentages are written as
`dispatch report` writes them (issue_sheet.percent); axis ticks are round numbers (1, 2,
5 × 10ⁿ). No labels or no series: a box saying 暂无数据, never a broken drawing.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape

from dispatch.report.issue_sheet import percent

SERIES_TONES = ("link", "accent", "ok", "muted")
EMPTY = "暂无数据"
WIDTH = 720
FONT = 15  # px: the labels' size (ticks and values one smaller: 14, the pages' least)
_HEX = re.compile(r"#[0-9a-fA-F]{3,8}")
# What XML 1.0 cannot hold (C0 controls but tab and line breaks, surrogates, FFFE/FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_KEY = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # one per label; None: no figure (nothing to divide by)
    tone: str = ""  # a theme colour's key: "link", "accent", "ok", "muted"


@dataclass(frozen=True)
class Chart:
    title: str
    labels: Sequence[str]
    series: Sequence[Series] = field(default_factory=tuple)
    percent: bool = False  # values are fractions: 0.25 is written 25.0%
    unit: str = ""  # what a value counts (份, 人, 次), read out in the description
    key: str = "chart"  # makes the ids of its <title> and <desc> unique on the page

    @property
    def empty(self) -> bool:
        return not self.labels or not self.series


# --- numbers -------------------------------------------------------------------------------


def ticks(largest: float, as_percent: bool = False, count: int = 5) -> list[float]:
    """Round ticks from 0 to at least `largest`, about `count` steps of 1, 2 or 5 × 10ⁿ;
    whole numbers for counts. Nothing above 0: one step (0 to 1, or 0 to 100%)."""
    if not largest > 0 or not math.isfinite(largest):
        return [0.0, 0.25, 0.5, 0.75, 1.0] if as_percent else [0.0, 1.0]
    raw = largest / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    if not as_percent:
        step = max(1.0, step)
    steps = math.ceil(largest / step - 1e-9)
    return [round(i * step, 10) for i in range(steps + 1)]


def tick_text(value: float, as_percent: bool) -> str:
    """A tick's label: 25%, 0.5%, 1200."""
    if as_percent:
        return f"{round(value * 100, 6):g}%"
    return number(value)


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def value_text(value: float | None, as_percent: bool) -> str:
    """A value as the report writes it: 33.3% (or — for none), 12."""
    if as_percent:
        return percent(value)
    return "—" if value is None else number(value)


# --- text ----------------------------------------------------------------------------------


def clean(text: str) -> str:
    """Text XML can hold, escaped for an element or an attribute."""
    return escape(_NOT_XML.sub("", text), quote=True)


def text_width(text: str, size: float = FONT) -> float:
    """About how wide `text` is drawn: a full em for Chinese (wide) characters, 0.6 for
    the rest."""
    return sum(size if unicodedata.east_asian_width(c) in "WF" else size * 0.6 for c in text)


def fit(text: str, width: float, size: float = FONT) -> str:
    """`text` cut to `width` with an ellipsis (the whole of it is in the <title>)."""
    if text_width(text, size) <= width:
        return text
    out = ""
    for c in text:
        if text_width(out + c + "…", size) > width:
            break
        out += c
    return out + "…"


def _tone(theme: Mapping[str, str], key: str, fallback: str = "#000000") -> str:
    value = theme.get(key, fallback)
    return value if _HEX.fullmatch(value) else fallback


def _series_colour(theme: Mapping[str, str], series: Series, index: int) -> str:
    return _tone(theme, series.tone or SERIES_TONES[index % len(SERIES_TONES)])


def _key(chart: Chart) -> str:
    return _KEY.sub("-", chart.key.lower()).strip("-") or "chart"


def _f(value: float) -> str:
    """A coordinate: one decimal at most."""
    return f"{round(value, 1):g}"


def describe(chart: Chart, kind: str) -> str:
    """The chart read out: its kind and each label's values (the first 40 labels)."""
    unit = f"（单位：{chart.unit}）" if chart.unit and not chart.percent else ""
    parts = []
    for i, label in enumerate(chart.labels[:40]):
        values = "，".join(f"{s.name} {value_text(_at(s, i), chart.percent)}"
                          for s in chart.series)
        parts.append(f"{label}：{values}")
    more = f"；等共 {len(chart.labels)} 项" if len(chart.labels) > 40 else ""
    return f"{kind}{unit}。" + "；".join(parts) + more


def _at(series: Series, i: int) -> float | None:
    return series.values[i] if i < len(series.values) else None


def _largest(chart: Chart) -> float:
    return max((v for s in chart.series for v in s.values if v is not None), default=0.0)


# --- pieces --------------------------------------------------------------------------------


def _open(chart: Chart, width: float, height: float, kind: str) -> list[str]:
    key = _key(chart)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {_f(width)} {_f(height)}" width="100%" '
        f'style="max-width: {_f(width)}px; height: auto" '
        f'aria-labelledby="{key}-title {key}-desc">',
        f'<title id="{key}-title">{clean(chart.title)}</title>',
        f'<desc id="{key}-desc">{clean(describe(chart, kind))}</desc>',
    ]


def placeholder(chart: Chart, theme: Mapping[str, str]) -> str:
    """The box of a chart with nothing to draw: 暂无数据."""
    key = _key(chart)
    width, height = WIDTH, 80
    return "".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart empty" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" '
        f'style="max-width: {width}px; height: auto" '
        f'aria-labelledby="{key}-title {key}-desc">',
        f'<title id="{key}-title">{clean(chart.title)}</title>',
        f'<desc id="{key}-desc">{EMPTY}</desc>',
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="none" '
        f'stroke="{_tone(theme, "border")}" stroke-dasharray="4 3"/>',
        f'<text x="{width / 2:g}" y="{height / 2 + FONT / 2 - 1:g}" text-anchor="middle" '
        f'font-size="{FONT + 1}" fill="{_tone(theme, "muted")}">{EMPTY}</text>',
        "</svg>",
    ])


def _legend(chart: Chart, theme: Mapping[str, str], x: float, y: float) -> list[str]:
    """A swatch and a name for each series, in a row (only when there are two or more)."""
    if len(chart.series) < 2:
        return []
    out = ['<g class="legend">']
    for i, s in enumerate(chart.series):
        out.append(f'<rect x="{_f(x)}" y="{_f(y - 10)}" width="10" height="10" '
                   f'fill="{_series_colour(theme, s, i)}"/>')
        out.append(f'<text x="{_f(x + 14)}" y="{_f(y)}" font-size="{FONT}" '
                   f'fill="{_tone(theme, "text")}">{clean(s.name)}</text>')
        x += 14 + text_width(s.name) + 18
    out.append("</g>")
    return out


LEGEND_HEIGHT = 26
LINE_LABEL = 120.0  # px: the widest label under a line chart


# --- the charts ----------------------------------------------------------------------------


def bars(chart: Chart, theme: Mapping[str, str]) -> str:
    """Vertical bars: a group per label, a bar per series; the value above each bar."""
    if chart.empty:
        return placeholder(chart, theme)
    marks = ticks(_largest(chart), chart.percent)
    top_value = marks[-1]
    left = max(text_width(tick_text(t, chart.percent)) for t in marks) + 14
    top = (LEGEND_HEIGHT if len(chart.series) > 1 else 0) + 18
    plot_w, plot_h = WIDTH - left - 10, 200
    height = top + plot_h + 30
    out = _open(chart, WIDTH, height, "柱状图")
    out += _legend(chart, theme, left, 14)
    out += _grid_y(marks, chart.percent, theme, left, top, plot_w, plot_h)
    group = plot_w / len(chart.labels)
    k = len(chart.series)
    bar_w = min(40.0, group * 0.7 / k)
    text, muted = _tone(theme, "text"), _tone(theme, "muted")
    for i, label in enumerate(chart.labels):
        x0 = left + i * group + (group - bar_w * k) / 2
        for j, s in enumerate(chart.series):
            value = _at(s, i)
            x = x0 + j * bar_w
            shown = value_text(value, chart.percent)
            if value is not None:
                h = max(0.0, value) / top_value * plot_h
                out.append(
                    f'<rect class="bar" x="{_f(x)}" y="{_f(top + plot_h - h)}" '
                    f'width="{_f(bar_w * 0.92)}" height="{_f(h)}" '
                    f'fill="{_series_colour(theme, s, j)}">'
                    f"<title>{clean(f'{label} {s.name}：{shown}')}</title></rect>"
                )
            else:
                h = 0.0
            if bar_w >= text_width(shown, FONT - 1) * 0.75:
                out.append(
                    f'<text class="value" x="{_f(x + bar_w * 0.46)}" y="{_f(top + plot_h - h - 4)}" '
                    f'text-anchor="middle" font-size="{FONT - 1}" fill="{text}">{clean(shown)}</text>'
                )
        out.append(
            f'<text class="label" x="{_f(left + (i + 0.5) * group)}" y="{_f(top + plot_h + 18)}" '
            f'text-anchor="middle" font-size="{FONT}" fill="{muted}">'
            f"{clean(fit(label, group - 4))}<title>{clean(label)}</title></text>"
        )
    out.append("</svg>")
    return "".join(out)


def hbars(chart: Chart, theme: Mapping[str, str]) -> str:
    """Horizontal bars: a row per label (cut to 16 characters' width, whole in its
    tooltip), a bar per series, the value after each bar."""
    if chart.empty:
        return placeholder(chart, theme)
    marks = ticks(_largest(chart), chart.percent)
    top_value = marks[-1]
    label_w = min(max(text_width(label) for label in chart.labels), 16 * FONT)
    left = label_w + 12
    right = 56  # room for the value after the longest bar
    top = (LEGEND_HEIGHT if len(chart.series) > 1 else 0) + 6
    k = len(chart.series)
    bar_h = 14.0
    row_h = k * bar_h + 10
    plot_w = WIDTH - left - right
    plot_h = row_h * len(chart.labels)
    height = top + plot_h + 24
    text, muted, grid = _tone(theme, "text"), _tone(theme, "muted"), _tone(theme, "border")
    out = _open(chart, WIDTH, height, "条形图")
    out += _legend(chart, theme, left, 14)
    for t in marks:
        x = left + t / top_value * plot_w
        out.append(f'<line class="grid" x1="{_f(x)}" y1="{_f(top)}" x2="{_f(x)}" '
                   f'y2="{_f(top + plot_h)}" stroke="{grid}"/>')
        out.append(f'<text class="tick" x="{_f(x)}" y="{_f(top + plot_h + 16)}" '
                   f'text-anchor="middle" font-size="{FONT - 1}" fill="{muted}">'
                   f"{tick_text(t, chart.percent)}</text>")
    out.append(f'<line class="axis" x1="{_f(left)}" y1="{_f(top)}" x2="{_f(left)}" '
               f'y2="{_f(top + plot_h)}" stroke="{_tone(theme, "outline")}"/>')
    for i, label in enumerate(chart.labels):
        y0 = top + i * row_h + 5
        out.append(
            f'<text class="label" x="{_f(left - 8)}" y="{_f(y0 + k * bar_h / 2 + FONT / 2 - 1)}" '
            f'text-anchor="end" font-size="{FONT}" fill="{text}">'
            f"{clean(fit(label, label_w))}<title>{clean(label)}</title></text>"
        )
        for j, s in enumerate(chart.series):
            value = _at(s, i)
            y = y0 + j * bar_h
            shown = value_text(value, chart.percent)
            w = 0.0 if value is None else max(0.0, value) / top_value * plot_w
            if value is not None:
                out.append(
                    f'<rect class="bar" x="{_f(left)}" y="{_f(y + 1)}" width="{_f(w)}" '
                    f'height="{_f(bar_h - 2)}" fill="{_series_colour(theme, s, j)}">'
                    f"<title>{clean(f'{label} {s.name}：{shown}')}</title></rect>"
                )
            out.append(
                f'<text class="value" x="{_f(left + w + 4)}" y="{_f(y + bar_h - 3)}" '
                f'font-size="{FONT - 1}" fill="{text}">{clean(shown)}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def line(chart: Chart, theme: Mapping[str, str]) -> str:
    """Lines through each series' values over the labels, a dot at each value (a gap
    where there is none); as many labels under the axis as fit."""
    if chart.empty:
        return placeholder(chart, theme)
    marks = ticks(_largest(chart), chart.percent)
    top_value = marks[-1]
    left = max(text_width(tick_text(t, chart.percent)) for t in marks) + 14
    top = (LEGEND_HEIGHT if len(chart.series) > 1 else 0) + 12
    n = len(chart.labels)
    widest = max(text_width(label) for label in chart.labels)
    pad = min(widest, LINE_LABEL) / 2 + 6  # the first and last labels stay inside
    plot_w, plot_h = WIDTH - left - pad - 6, 200
    height = top + plot_h + 30
    out = _open(chart, WIDTH, height, "折线图")
    out += _legend(chart, theme, left, 14)
    out += _grid_y(marks, chart.percent, theme, left, top, plot_w + pad, plot_h)
    x0 = left + pad
    span = plot_w - pad
    step = span / (n - 1) if n > 1 else 0.0

    def x_of(i: int) -> float:
        return x0 + i * step if n > 1 else x0 + span / 2

    # Labels: at most LINE_LABEL wide (the first and last stay inside), every `every`-th,
    # so that none overlaps the next one shown.
    room = step if n > 1 else span
    every = max(1, math.ceil((min(widest, LINE_LABEL) + 8) / room)) if room else 1
    muted = _tone(theme, "muted")
    for i, label in enumerate(chart.labels):
        if i % every:
            continue
        out.append(
            f'<text class="label" x="{_f(x_of(i))}" y="{_f(top + plot_h + 18)}" '
            f'text-anchor="middle" font-size="{FONT}" fill="{muted}">'
            f"{clean(fit(label, min(LINE_LABEL, max(room * every - 8, 2 * FONT))))}<title>{clean(label)}</title></text>"
        )
    for j, s in enumerate(chart.series):
        colour = _series_colour(theme, s, j)
        runs: list[list[str]] = [[]]
        points: list[str] = []
        for i, label in enumerate(chart.labels):
            value = _at(s, i)
            if value is None:
                runs.append([])
                continue
            x, y = x_of(i), top + plot_h - max(0.0, value) / top_value * plot_h
            runs[-1].append(f"{_f(x)},{_f(y)}")
            shown = value_text(value, chart.percent)
            points.append(
                f'<circle class="point" cx="{_f(x)}" cy="{_f(y)}" r="3.5" fill="{colour}">'
                f"<title>{clean(f'{label} {s.name}：{shown}')}</title></circle>"
            )
        for run in runs:
            if len(run) > 1:
                out.append(f'<polyline class="line" points="{" ".join(run)}" fill="none" '
                           f'stroke="{colour}" stroke-width="2" stroke-linejoin="round"/>')
        out += points
    out.append("</svg>")
    return "".join(out)


def _grid_y(marks: list[float], as_percent: bool, theme: Mapping[str, str], left: float,
            top: float, plot_w: float, plot_h: float) -> list[str]:
    """Horizontal grid lines at the ticks, their labels on the left, the baseline."""
    out = []
    grid, muted = _tone(theme, "border"), _tone(theme, "muted")
    for t in marks:
        y = top + plot_h - t / marks[-1] * plot_h
        out.append(f'<line class="grid" x1="{_f(left)}" y1="{_f(y)}" x2="{_f(left + plot_w)}" '
                   f'y2="{_f(y)}" stroke="{grid}"/>')
        out.append(f'<text class="tick" x="{_f(left - 6)}" y="{_f(y + 4)}" text-anchor="end" '
                   f'font-size="{FONT - 1}" fill="{muted}">{tick_text(t, as_percent)}</text>')
    out.append(f'<line class="axis" x1="{_f(left)}" y1="{_f(top + plot_h)}" '
               f'x2="{_f(left + plot_w)}" y2="{_f(top + plot_h)}" '
               f'stroke="{_tone(theme, "outline")}"/>')
    return out
