"""`dispatch report ISSUE`: what an editor reads the day after publication.

The most telling first: a headline (sent, opened, clicks, feedback), the articles ranked
by readers clicking and 有用, the industries, then the channels with delivery health and
the feedback by kind. The figures and their counting rules are dispatch.report.figures'.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dispatch.cli import JsonFlag, print_json, runtime_of
from dispatch.cli.screen import console, hint, table

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from dispatch.report.figures import IssueFigures

IssueId = Annotated[int, typer.Argument(metavar="ISSUE", help="期刊编号（见 dispatch issues list）")]
CsvFile = Annotated[Path | None, typer.Option(
    "--csv", metavar="FILE", help="另把报告写成一个 CSV 文件（Excel 可直接打开）",
)]


def report(
    ctx: typer.Context, issue_id: IssueId, as_json: JsonFlag = False, csv_file: CsvFile = None,
) -> None:
    """一期的阅读报告：发出多少、多少人打开、点了哪些文章、各产业的读者读了没有、收到多少反馈。

    打开率 = 有人打开的份数 ÷ 发出的份数；一位读者用邮件和企业微信各收一份，算两份。
    只被机器（图片代理、安全扫描）打开的不算打开；点过链接或读过网页的，即使没加载图片也算打开。
    """
    from dispatch.report.figures import issue_figures, to_json

    if csv_file is not None:
        from dispatch.report.sheets import check_target

        check_target(csv_file, (".csv",))
    runtime = runtime_of(ctx)
    with runtime.sessions() as session:
        figures = issue_figures(session, issue_id)
    if csv_file is not None:
        from dispatch.report.issue_sheet import blocks
        from dispatch.report.sheets import save_csv

        save_csv(csv_file, blocks(figures))
    if as_json:
        print_json(to_json(figures))
        return
    out = console()
    _print(out, figures)
    wecom_sent = figures.channels.get("wecom")
    if not runtime.config.wecom.personal_links and wecom_sent is not None and wecom_sent.sent:
        # Not a fault of the figures: the operator chose messages without the reader's token.
        out.print("企业微信消息不带读者各自的链接（[wecom] personal_links = false），"
                  "其打开和点击无从统计：企业微信一列的打开、点击为 0 不代表没人读。",
                  style="yellow", markup=False, soft_wrap=True)
    if csv_file is not None:
        out.print(f"已写入 {csv_file}", soft_wrap=True, markup=False)


def _print(out: Console, f: IssueFigures) -> None:
    from rich.markup import escape

    from dispatch import clock
    from dispatch.report.issue_sheet import percent
    from dispatch.statewords import ISSUE_WORDS

    number = f" {escape(f.number)}" if f.number else ""
    out.print(f"期刊 {f.issue_id}《{escape(f.title)}》{number}：{ISSUE_WORDS[f.status]}")
    if f.publish_at:
        out.print(f"发布时间：{clock.show(f.publish_at)}（北京时间，下同）")
    if f.first_sent_at and f.last_sent_at:
        first, last = clock.show(f.first_sent_at), clock.show(f.last_sent_at)
        if first[:10] == last[:10]:
            last = last[11:]  # the same day: the time is enough
        out.print(f"发出时间：{first} 至 {last}")
    out.print(f"统计截至：{clock.show(f.as_of)}")
    total = f.total
    if not f.sent_yet:
        out.print(f"[yellow]本期尚未发送（{ISSUE_WORDS[f.status]}）。[/yellow]")
    elif total.pending:
        out.print(f"[yellow]仍在发送：还有 {total.pending} 份待发，数字还会变。[/yellow]")
    if not total.planned:
        out.print("还没有投递，没有可统计的数字。")
        if any(f.feedback.values()):
            _print_feedback(out, f)
        return
    out.print()
    out.print(
        f"[bold]发出 {total.sent} 份（{f.readers} 人），{percent(total.open_rate)} 打开，"
        f"{total.clicks} 次点击，{f.from_readers} 条反馈[/bold]"
    )
    machine = (f"；另有 {total.opened_machine_only} 份只被机器打开，不计入"
               if total.opened_machine_only else "")
    out.print(f"打开率 = 有人打开的份数 ÷ 发出的份数{machine}。")
    out.print()
    out.print(_articles(f))
    out.print("点击、阅读：点过链接、读过文章网页的份数，同一份多次只算一次。")
    if any(f.issue_votes.values()):
        out.print(f"对整期（企业微信卡片按钮）：有用 {f.issue_votes['useful']}、"
                  f"没用 {f.issue_votes['not_useful']}")
    out.print()
    _print_industries(out, f)
    out.print()
    out.print(_deliveries(f))
    if total.failed:
        hint(out, "失败的投递及原因：", f"dispatch status {f.issue_id}")
    _print_feedback(out, f)


def _right(t: Table, *columns: int) -> Table:
    for i in columns:
        t.columns[i].justify = "right"
    return t


def _articles(f: IssueFigures) -> Table:

    t = table("排名", "文章", "点击", "阅读", "有用", "没用", "留言",
              title="文章（按点击、有用排序）",
              narrow=("排名", "点击", "阅读", "有用", "没用", "留言"))
    for rank, a in enumerate(f.articles, 1):
        t.add_row(
            str(rank), _title(a.title, a.section), str(a.clicked),
            str(a.readers), str(a.useful), str(a.not_useful), str(a.comments),
        )
    return _right(t, 0, 2, 3, 4, 5, 6)


def _title(title: str, section: str) -> str:
    """The title, and under it the section (unless the title is the section's: 编者的话)."""
    from rich.markup import escape

    if section == title:
        return escape(title)
    return f"{escape(title)}\n[dim]{escape(section)}[/dim]"


def _print_industries(out: Console, f: IssueFigures) -> None:
    from dispatch.report.issue_sheet import percent

    t = table("产业", "读者", "打开", "打开率", title="各产业的读者（人）",
              narrow=("读者", "打开", "打开率"))
    for i in f.industries:
        if i.readers:
            t.add_row(i.name, str(i.readers), str(i.opened), percent(i.open_rate))
    out.print(_right(t, 1, 2, 3))
    none = [i.name for i in f.industries if not i.readers]
    if none:
        out.print(f"没有读者的产业：{'、'.join(none)}")
    out.print("关注“全部”的读者单列一行，不计入各产业；一位读者有一份打开就算打开。")


def _deliveries(f: IssueFigures) -> Table:
    from dispatch.report.issue_sheet import DELIVERY_ROWS, delivery_cell
    from dispatch.report.words import channel_word

    shown = [(channel_word(c), d) for c, d in f.channels.items() if d.planned]
    if len(shown) > 1:
        shown.append(("合计", f.total))
    t = table("", *(name for name, _ in shown), title="各渠道（份）",
              narrow=tuple(name for name, _ in shown))
    for label, attribute in DELIVERY_ROWS:
        cells = [delivery_cell(d, attribute) for _, d in shown]
        if attribute == "cancelled" and not any(cells):
            continue
        t.add_row(label, *(str(c) for c in cells))
    return _right(t, *range(1, len(shown) + 1))


def _print_feedback(out: Console, f: IssueFigures) -> None:
    from dispatch.report.words import KIND_WORDS

    counts = "、".join(f"{word} {f.feedback[kind]}" for kind, word in KIND_WORDS.items())
    out.print(f"反馈：{counts}")
    if any(f.feedback.values()):
        hint(out, "逐条查看：", f"dispatch feedback list --issue {f.issue_id}")
