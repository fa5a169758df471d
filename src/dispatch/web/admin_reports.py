"""The reports of the staff web (editors and admins):

    GET /admin/reports[?page=N]          the issues that went out, newest first, with their
                                         headline figures, and the trend of their open and
                                         click rates in order of publication (24 a page)
    GET /admin/reports/{id}[?by=days]    an issue's report: `dispatch report`'s figures, with
                                         charts (opens and clicks over the first days, per
                                         article, per industry)
    GET /admin/reports/{id}.csv          the report as `dispatch report --csv` writes it

The figures are dispatch.report.figures' and the tables dispatch.report.issue_sheet's
blocks (the CSV's), so the page, the CLI and the file agree; the charts are drawn here on
the server as SVG (dispatch.report.charts), in the theme's colours the templates pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import ceil
from typing import Any

from markupsafe import Markup
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dispatch.db.models import Issue
from dispatch.errors import Refused
from dispatch.report import charts, figures, timeline
from dispatch.report.charts import Chart, Series
from dispatch.report.issue_sheet import blocks, percent
from dispatch.report.sheets import Block, Cell, csv_bytes
from dispatch.report.words import KIND_WORDS
from dispatch.statewords import ISSUE_WORDS
from dispatch.web.desk import Desk, Signed, page_number

ISSUES_A_PAGE = 24
GONE_OUT = ("sending", "sent")


class Draw:
    """The chart functions for templates: `{{ draw.line(chart, theme) }}`, the SVG marked
    safe (charts escapes every text it draws)."""

    @staticmethod
    def bars(chart: Chart, theme: Mapping[str, str]) -> Markup:
        return Markup(charts.bars(chart, theme))

    @staticmethod
    def hbars(chart: Chart, theme: Mapping[str, str]) -> Markup:
        return Markup(charts.hbars(chart, theme))

    @staticmethod
    def line(chart: Chart, theme: Mapping[str, str]) -> Markup:
        return Markup(charts.line(chart, theme))

    @staticmethod
    def value(value: float | None, as_percent: bool) -> str:
        """A value of a chart in its data table, written as on the chart."""
        return charts.value_text(value, as_percent)


def short_name(issue_id: int, title: str, number: str | None) -> str:
    """An issue on a chart's axis: its number (第5期) if it has one, else its title."""
    return number or title or f"期刊 {issue_id}"


def trend(rows: list[dict[str, Any]]) -> Chart:
    """Open and click rates of the issues, oldest first (`rows` newest first)."""
    ordered = list(reversed(rows))
    return Chart(
        "各期的打开率和点击率（按发布先后）",
        [r["short"] for r in ordered],
        [Series("打开率", [r["open_rate"] for r in ordered], "link"),
         Series("点击率", [r["click_rate"] for r in ordered], "accent")],
        percent=True, key="trend",
    )


def issue_charts(f: figures.IssueFigures, tl: timeline.Timeline | None) -> dict[str, Chart]:
    """The report's charts, from its figures and its timeline."""
    arts = f.articles
    with_readers = [i for i in f.industries if i.readers]
    return {
        "timeline": Chart(
            f"发出后的打开和点击（{tl.span.name if tl else '暂无'}）",
            tl.labels if tl else [],
            [Series("首次打开", tl.opens if tl else [], "link"),
             Series("首次点击", tl.clicks if tl else [], "accent")],
            unit="份", key="timeline",
        ),
        "reach": Chart(
            "各文章的点击和阅读", [a.title for a in arts],
            [Series("点击人数", [a.clicked for a in arts], "accent"),
             Series("阅读人数", [a.readers for a in arts], "link")],
            unit="份", key="reach",
        ),
        "votes": Chart(
            "各文章的投票", [a.title for a in arts],
            [Series("有用", [a.useful for a in arts], "ok"),
             Series("没用", [a.not_useful for a in arts], "accent")],
            unit="票", key="votes",
        ),
        "industries": Chart(
            "各产业的读者和打开", [i.name for i in with_readers],
            [Series("读者", [i.readers for i in with_readers], "link"),
             Series("打开的读者", [i.opened for i in with_readers], "ok")],
            unit="人", key="industries",
        ),
    }


@dataclass(frozen=True)
class Table:
    """A block of the report (issue_sheet.blocks: the CSV's) as the page shows it: which
    columns hold numbers (right-aligned, header too)."""

    header: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    numeric: Sequence[bool]


def table(block: Block, rows: Sequence[Sequence[Cell]] | None = None) -> Table:
    """`block` (or some of its rows) as a Table: a column is numeric when every cell in
    it is a number, a percentage or — (nothing to divide by)."""
    rows = block.rows if rows is None else rows

    def numeric(cell: Cell) -> bool:
        return isinstance(cell, int | float) or (isinstance(cell, str)
                                                 and (cell.endswith("%") or cell == "—"))

    columns = range(len(block.header))
    flags = [bool(rows) and all(numeric(row[i]) for row in rows) for i in columns]
    return Table(block.header, rows, flags)


def headline_row(f: figures.IssueFigures, issue: Issue) -> dict[str, Any]:
    total = f.total
    return {
        "id": f.issue_id, "title": f.title, "number": f.number or "",
        "short": short_name(f.issue_id, f.title, f.number),
        "status": ISSUE_WORDS.get(f.status, f.status),
        "published": issue.publish_at or issue.fanned_out_at,
        "sent": total.sent, "readers": f.readers,
        "open_rate": total.open_rate, "click_rate": total.click_rate,
        "open_words": percent(total.open_rate), "click_words": percent(total.click_rate),
        "from_readers": f.from_readers, "feedback": sum(f.feedback.values()),
    }


def routes(desk: Desk) -> list[Route]:
    runtime = desk.runtime
    draw = Draw()

    def report_list(request: Request, who: Signed) -> Response:
        page = page_number(request)
        published = func.coalesce(Issue.publish_at, Issue.fanned_out_at, Issue.created_at)
        now = desk.now()
        with runtime.sessions() as session:
            where = Issue.status.in_(GONE_OUT)
            total = session.scalar(select(func.count(Issue.id)).where(where)) or 0
            pages = max(1, ceil(total / ISSUES_A_PAGE))
            page = min(page, pages)
            issues = list(session.scalars(
                select(Issue).where(where).order_by(published.desc(), Issue.id.desc())
                .offset((page - 1) * ISSUES_A_PAGE).limit(ISSUES_A_PAGE)
            ))
            rows = [headline_row(figures.headline(session, i, now), i) for i in issues]
        return desk.page("admin_reports.html.j2", who, rows=rows, trend=trend(rows),
                         draw=draw, page=page, pages=pages, total=total)

    def report(request: Request, who: Signed) -> Response:
        issue_id = int(request.path_params["issue_id"])
        span = timeline.SPANS.get(request.query_params.get("by", ""), timeline.HOURS)
        with runtime.sessions() as session:
            try:
                f = figures.issue_figures(session, issue_id, desk.now())
            except Refused:
                return desk.refused(404, f"期刊 {issue_id} 不存在。", who)
            sent_at = f.first_sent_at or f.publish_at
            tl = timeline.timeline(session, issue_id, sent_at, span) if sent_at else None
        _, articles, industries, channels = blocks(f)  # the first: the page's headline
        # As the CLI: the industries with readers; those without named in a line.
        followed = [row for row, i in zip(industries.rows, f.industries, strict=True)
                    if i.readers]
        wecom = f.channels.get("wecom")
        return desk.page(
            "admin_report.html.j2", who, f=f, total=f.total, tl=tl, span=span,
            spans=timeline.SPANS, charts=issue_charts(f, tl), draw=draw,
            articles=table(articles), industries=table(industries, followed),
            unread_industries=[i.name for i in f.industries if not i.readers],
            channels=table(channels),
            state=ISSUE_WORDS.get(f.status, f.status), percent=percent,
            kind_words=KIND_WORDS,
            wecom_unlinked=(not runtime.config.wecom.personal_links
                            and wecom is not None and wecom.sent > 0),
        )

    def report_csv(request: Request, who: Signed) -> Response:
        issue_id = int(request.path_params["issue_id"])
        with runtime.sessions() as session:
            try:
                f = figures.issue_figures(session, issue_id, desk.now())
            except Refused:
                return desk.refused(404, f"期刊 {issue_id} 不存在。", who)
        name = f"report-{issue_id}.csv"
        return desk.download(csv_bytes(blocks(f)), "csv", name, name)

    return [
        desk.view("/admin/reports", report_list),
        desk.view("/admin/reports/{issue_id:int}", report),
        desk.view("/admin/reports/{issue_id:int}.csv", report_csv),
    ]

