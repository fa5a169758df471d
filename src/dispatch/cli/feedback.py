"""`dispatch feedback list | export | handled`: what readers said, for staff.

The rows and their columns are dispatch.report.feedback_list's; this prints them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dispatch.cli import JsonFlag, print_json, runtime_of
from dispatch.cli.screen import console, table

if TYPE_CHECKING:
    from rich.table import Table

    from dispatch.report.feedback_list import Filters, Item

app = typer.Typer(no_args_is_help=True, help="读者反馈：查看、导出、标记已处理。")

IssueOpt = Annotated[int | None, typer.Option(
    "--issue", metavar="ID", help="只要这一期的反馈（期刊编号见 dispatch issues list）",
)]
SinceOpt = Annotated[str | None, typer.Option(
    "--since", metavar="DATE", help="只要这一天（北京时间，YYYY-MM-DD）及以后收到的",
)]
KindOpt = Annotated[str | None, typer.Option(
    "--kind", metavar="K",
    help="只要这些类别：有用、没用、留言、回复、自动回复、退信，或 投票（有用和没用）；多个用“、”分隔",
)]
UnhandledOpt = Annotated[bool, typer.Option("--unhandled", help="只要还没处理的")]
LimitOpt = Annotated[int | None, typer.Option(
    "--limit", metavar="N", help="最多列出 N 条（最新的）",
)]

PREVIEW = 120  # characters of a text the terminal list shows; JSON and exports have all


def _filters(issue: int | None, since: str | None, kind: str | None, unhandled: bool,
             limit: int | None = None) -> Filters:
    from dispatch.report.feedback_list import Filters, parse_day
    from dispatch.report.words import parse_kinds

    try:
        since_at = None if since is None else parse_day(since)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    try:
        kinds = () if kind is None else parse_kinds(kind)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--kind") from None
    if limit is not None and limit < 1:
        raise typer.BadParameter("应为正整数", param_hint="--limit")
    return Filters(issue, since_at, kinds, unhandled, limit)


def _items(ctx: typer.Context, filters: Filters) -> list[Item]:
    from dispatch import editorial
    from dispatch.report.feedback_list import list_feedback

    with runtime_of(ctx).sessions() as session:
        if filters.issue_id is not None:
            editorial.get_issue(session, filters.issue_id)  # an unknown issue is refused
        return list_feedback(session, filters)


@app.command("list")
def list_(
    ctx: typer.Context,
    issue: IssueOpt = None,
    since: SinceOpt = None,
    kind: KindOpt = None,
    unhandled: UnhandledOpt = False,
    limit: LimitOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """列出读者的反馈，新的在前：有用/没用的投票、留言、回复，以及自动回复和退信。

    终端里内容只显示开头；要看全文，用 --json 或 dispatch feedback export 导出。
    """
    from dispatch.report.feedback_list import item_json

    items = _items(ctx, _filters(issue, since, kind, unhandled, limit))
    if as_json:
        print_json([item_json(i) for i in items])
        return
    if not items:
        typer.echo("没有符合条件的反馈")
        return
    console().print(_table(items))


def _table(items: list[Item]) -> Table:
    from rich.markup import escape

    from dispatch import clock
    from dispatch.report.words import channel_word, kind_word

    t = table("编号", "收到", "类别", "读者", "内容", title=f"反馈 {len(items)} 条（新的在前）",
              narrow=("编号", "收到", "类别"))
    for i in items:
        day, _, time = clock.show(i.received_at).partition(" ")
        kind = f"{kind_word(i.kind)}\n{channel_word(i.channel)}"
        if i.handled_at:
            kind += "\n[green]已处理[/green]"
        reader = escape(i.reader_name or i.sender or "—")
        if i.reader_id is not None:
            reader += f"\n[dim]读者 {i.reader_id}[/dim]"
        t.add_row(str(i.id), f"{day}\n{time}", kind, reader, escape(_content(i)))
    t.columns[0].justify = "right"
    return t


def _content(i: Item) -> str:
    parts = []
    if i.article_title:
        parts.append(f"《{i.article_title}》")
    if i.issue_id is not None and not i.article_title:
        parts.append(f"期刊 {i.issue_id}{i.article_words}")
    text = " ".join(i.text.split())
    if len(text) > PREVIEW:
        text = text[:PREVIEW] + "…"
    if text:
        parts.append(text)
    return "\n".join(parts) or "—"


@app.command("export")
def export(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(
        metavar="PATH", help="要写入的文件：CSV（Excel 可直接打开）或 XLSX，按文件的扩展名",
    )],
    issue: IssueOpt = None,
    since: SinceOpt = None,
    kind: KindOpt = None,
    unhandled: UnhandledOpt = False,
) -> None:
    """把反馈导出为表格（CSV 或 XLSX），新的在前，内容是全文。"""
    from dispatch.report import feedback_list, sheets

    sheets.check_target(path)
    items = _items(ctx, _filters(issue, since, kind, unhandled))
    sheets.save(path, "反馈", feedback_list.block(items), feedback_list.WIDTHS)
    typer.echo(f"已把 {len(items)} 条反馈写入 {path}")


@app.command("handled")
def handled(
    ctx: typer.Context,
    feedback_id: Annotated[int, typer.Argument(metavar="ID", help="反馈编号（见 dispatch feedback list）")],
) -> None:
    """把一条反馈标记为已处理（记下时间和处理人）。"""
    from dispatch import clock
    from dispatch.db.session import transaction
    from dispatch.report.feedback_list import handler, mark_handled

    with transaction(runtime_of(ctx).sessions) as session:
        [marked] = mark_handled(session, [feedback_id], handler(), clock.utcnow())
    when = clock.show(marked.handled_at)
    if marked.already:
        typer.echo(f"反馈 {feedback_id} 早已处理：{when}，处理人“{marked.handled_by}”")
    else:
        typer.echo(f"反馈 {feedback_id} 已标记为处理：{when}，处理人“{marked.handled_by}”")
