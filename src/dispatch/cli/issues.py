"""`dispatch issues`: ingest, list, show, tag, retag, finalize, reschedule, delete.

Each change is logged by dispatch.editorial as made by the CLI on the server (no staff
member); `show` ends with the issue's last changes, whoever made them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dispatch.cli import JsonFlag, print_json, runtime_of
from dispatch.cli.screen import console, hint, table
from dispatch.errors import Refused
from dispatch.statewords import ISSUE_WORDS

if TYPE_CHECKING:
    from dispatch.db.models import Issue
    from dispatch.issue_summary import Change

app = typer.Typer(no_args_is_help=True, help="期刊：入库、核对、打标签、定稿、改期。")

IssueId = Annotated[int, typer.Argument(metavar="ID", help="期刊编号（见 dispatch issues list）")]
LOCAL_TIME = "YYYY-MM-DD HH:MM"
# How many of an issue's last changes `show` lists (as `recipients show` does a reader's).
SHOWN_CHANGES = 5


def _show_tree(issue: Issue) -> None:
    from rich.markup import escape
    from rich.tree import Tree

    from dispatch import clock, editorial
    from dispatch.industries import name_of

    head = f"期刊 {issue.id}：[bold]{escape(issue.title)}[/bold]"
    if issue.number:
        head += f" {escape(issue.number)}"
    head += f"  {ISSUE_WORDS[issue.status]}"
    if issue.publish_at:
        head += f"  发布时间 {clock.show(issue.publish_at)}（北京时间）"
    tree = Tree(head)
    for s in issue.sections:
        branch = tree.add(f"● {escape(s.title)}")
        for a in s.articles:
            view = editorial.tag_view(a)
            tags = "、".join(name_of(c) for c in view.codes)
            how = "[yellow]编辑指定[/yellow]" if view.overridden else "[dim]自动[/dim]"
            if view.overridden and view.auto != view.codes:
                how += f" [dim]（自动：{'、'.join(name_of(c) for c in view.auto)}）[/dim]"
            # The editor's note is titled as its section (编者的话): no second label.
            title = f"[italic]{escape(a.title)}[/italic]" if a.kind == "note" else escape(a.title)
            leaf = branch.add(f"[cyan]{a.id}[/cyan] {title}  〔{tags}〕 {how}")
            for b in a.blocks:
                if b["kind"] == "subheading":
                    leaf.add(f"[dim]§ {escape(b['text'])}[/dim]")
    out = console()
    out.print(tree)
    out.print(f"文件：{issue.source_file}", soft_wrap=True, markup=False)


def _publish_time(text: str) -> datetime:
    from dispatch import clock

    try:
        return clock.parse_local(text)
    except ValueError as exc:
        raise typer.BadParameter(
            f"“{text}”不是“{LOCAL_TIME}”格式的北京时间", param_hint="--publish-at"
        ) from exc


@app.command("ingest")
def ingest(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(metavar="PATH", help="期刊文件：.txt（情报所的格式）、.md 或 .docx"),
    ],
    again: Annotated[
        bool, typer.Option("--again", help="内容与已入库的某期相同，也再建一期")
    ] = False,
    reuse: Annotated[
        bool,
        typer.Option("--reuse", help="内容已入库时不再新建，显示已有的那一期（最新的一期）"),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """把期刊文件入库为草稿：栏目、文章和自动打上的产业标签。

    内容已入库过的文件不再入库（说明在哪一期、什么状态），除非加 --again。"""
    from dispatch import editorial
    from dispatch.db.session import transaction
    from dispatch.ingest import parse_file

    if again and reuse:
        raise typer.BadParameter("--again 与 --reuse 只能选一个", param_hint="--reuse")
    runtime = runtime_of(ctx)
    if not path.exists():
        raise Refused(f"{path}：文件不存在")
    parsed = parse_file(path)
    reused: int | None = None
    try:
        with transaction(runtime.sessions) as session:
            issue_id = editorial.store_issue(
                session, parsed, str(path), runtime.rules, again=again
            ).id
    except editorial.SameContent as same:
        if not reuse:
            raise
        issue_id = reused = same.issues[-1][0]
    with transaction(runtime.sessions) as session:
        issue = editorial.get_issue(session, issue_id)
        data = {**editorial.issue_json(issue), "reused": reused is not None}
    if as_json:
        print_json(data)
        return
    out = console()
    if reused is not None:
        out.print(f"内容已在期刊 {reused}（{ISSUE_WORDS[issue.status]}）中：沿用它，没有再入库")
    _show_tree(issue)
    if reused is None:
        hint(
            out,
            f"已存为草稿：期刊 {issue.id}，{len(issue.sections)} 个栏目，"
            f"{len(issue.articles)} 篇文章。核对标签后定稿：",
            f'dispatch issues finalize {issue.id} --publish-at "{LOCAL_TIME}"',
        )


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """列出期刊，最新的在前。"""
    from dispatch import clock, editorial
    from dispatch.db.session import transaction
    from dispatch.masthead import BULLETIN

    runtime = runtime_of(ctx)
    with transaction(runtime.sessions) as session:
        rows: list[dict[str, Any]] = [
            {
                "id": i.id,
                "title": i.title,
                "number": i.number,
                "status": i.status,
                "publish_at": clock.show(i.publish_at) or None,
                "articles": len(i.articles),
                "source_file": i.source_file,
            }
            for i in editorial.list_issues(session)
        ]
    if as_json:
        print_json(rows)
        return
    out = console()
    if not rows:
        hint(out, "还没有期刊。入库一期：", "dispatch issues ingest PATH")
        return
    # To keep within 80 columns: the title only when it is not the bulletin's own (the
    # same in every row), and the file's name, never wrapped: cut short with … if need be
    # (the whole path is in `issues show`).
    t = table("ID", "期号", "状态", "发布时间", "篇数", "文件",
              narrow=("ID", "状态", "发布时间", "篇数", "文件"))
    for r in rows:
        name = " ".join(p for p in (
            r["title"] if r["title"] != BULLETIN else "", r["number"] or "") if p)
        t.add_row(str(r["id"]), name, ISSUE_WORDS[r["status"]], r["publish_at"] or "",
                  str(r["articles"]), Path(r["source_file"]).name)
    out.print(t)


def _show_changes(changes: list[Change]) -> None:
    """The last changes, newest first: when, who (a staff member in the staff web, or
    服务器命令行), what."""
    from dispatch import clock

    if not changes:
        return
    out = console()
    out.print("最近的修改")
    for c in changes:
        out.print(f"  {clock.show(c.at)}  {c.who}  {c.words}", soft_wrap=True, markup=False)


def _change_json(c: Change) -> dict[str, Any]:
    from dispatch import clock

    return {"at": clock.show(c.at), "staff_id": c.staff_id,
            "staff_name": c.who if c.staff_id is not None else None, "field": c.field,
            "article_id": c.article_id, "old": c.old, "new": c.new}


@app.command("show")
def show(ctx: typer.Context, issue_id: IssueId, as_json: JsonFlag = False) -> None:
    """显示一期的栏目、文章和标签（自动的，或编辑指定的），以及最近的修改记录。"""
    from dispatch import editorial, issue_summary
    from dispatch.db.session import transaction

    runtime = runtime_of(ctx)
    with transaction(runtime.sessions) as session:
        issue = editorial.get_issue(session, issue_id)
        data = editorial.issue_json(issue)
        changes = issue_summary.changes(session, issue_id, SHOWN_CHANGES)
    if as_json:
        print_json({**data, "changes": [_change_json(c) for c in changes]})
    else:
        _show_tree(issue)
        _show_changes(changes)


@app.command("tag")
def tag(
    ctx: typer.Context,
    article_id: Annotated[
        int, typer.Argument(metavar="ARTICLE", help="文章编号（见 dispatch issues show ID）")
    ],
    set_: Annotated[
        str | None,
        typer.Option("--set", help="产业名称或代码，如 生物医药,新能源汽车（或 综合）"),
    ] = None,
    auto: Annotated[bool, typer.Option("--auto", help="取消编辑指定，恢复自动标签")] = False,
) -> None:
    """编辑指定一篇文章的产业标签（重新打标签时保留）。"""
    from rich.markup import escape

    from dispatch import editorial
    from dispatch.db.session import transaction

    if (set_ is None) == (not auto):
        raise typer.BadParameter("--set 产业 与 --auto 必须给一个，且只能给一个")
    runtime = runtime_of(ctx)
    codes = editorial.parse_tag_codes(set_) if set_ is not None else None
    with transaction(runtime.sessions) as session:
        article = editorial.set_tags(session, article_id, codes)
        title, words = article.title, editorial.tag_words(article)
    console().print(f"文章 {article_id} {escape(title)}：{words}")


@app.command("retag")
def retag(ctx: typer.Context, issue_id: IssueId) -> None:
    """按关键词规则重新给草稿打标签（改了 rules/industries.toml 之后）；编辑指定的标签保留。"""
    from dispatch import editorial
    from dispatch.db.session import transaction

    runtime = runtime_of(ctx)
    with transaction(runtime.sessions) as session:
        issue = editorial.get_issue(session, issue_id)
        changed = editorial.retag(session, issue, runtime.rules)
    with transaction(runtime.sessions) as session:
        _show_tree(editorial.get_issue(session, issue_id))
    console().print(f"重新打标签：{editorial.retag_words(changed)}")


@app.command("finalize")
def finalize(
    ctx: typer.Context,
    issue_id: IssueId,
    publish_at: Annotated[
        str | None,
        typer.Option("--publish-at", help=f"发布时间（北京时间），“{LOCAL_TIME}”；不给则立即发布"),
    ] = None,
) -> None:
    """定稿：冻结内容，设定发布时间；到时自动发送。"""
    from dispatch import clock, editorial
    from dispatch.db.session import transaction

    when = _publish_time(publish_at) if publish_at is not None else None
    runtime = runtime_of(ctx)
    with transaction(runtime.sessions) as session:
        issue = editorial.finalize(session, issue_id, when)
        at = clock.show(issue.publish_at)
    console().print(f"期刊 {issue_id} 已定稿，发布时间 {at}（北京时间）")


@app.command("reschedule")
def reschedule(
    ctx: typer.Context,
    issue_id: IssueId,
    publish_at: Annotated[
        str, typer.Option("--publish-at", help=f"新的发布时间（北京时间），“{LOCAL_TIME}”")
    ],
) -> None:
    """改一期已定稿、尚未开始发送的期刊的发布时间。"""
    from dispatch import clock, editorial
    from dispatch.db.session import transaction

    when = _publish_time(publish_at)
    runtime = runtime_of(ctx)
    with transaction(runtime.sessions) as session:
        issue = editorial.reschedule(session, issue_id, when)
        at = clock.show(issue.publish_at)
    console().print(f"期刊 {issue_id} 的发布时间改为 {at}（北京时间）")


@app.command("delete")
def delete(ctx: typer.Context, issue_id: IssueId) -> None:
    """删除一期草稿（已定稿的期刊保留）。"""
    from dispatch import editorial
    from dispatch.db.session import transaction

    runtime = runtime_of(ctx)
    with transaction(runtime.sessions) as session:
        editorial.delete_draft(session, issue_id)
    console().print(f"草稿期刊 {issue_id} 已删除")

