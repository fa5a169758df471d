"""`dispatch issues`: ingest, show, tag, finalize."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from dispatch import clock
from dispatch.cli import JsonFlag, print_json, runtime_of
from dispatch.cli.words import ISSUE_WORDS
from dispatch.errors import Refused
from dispatch.industries import name_of

if TYPE_CHECKING:
    from dispatch.db.models import Issue

app = typer.Typer(no_args_is_help=True)
out = Console(highlight=False)

def _show_tree(issue: Issue) -> None:
    from rich.markup import escape
    from rich.tree import Tree

    from dispatch import editorial

    head = f"[bold]{escape(issue.title)}[/bold]"
    if issue.number:
        head += f" {escape(issue.number)}"
    head += f"  #{issue.id}  {ISSUE_WORDS[issue.status]}"
    if issue.publish_at:
        head += f"  发布 {clock.show(issue.publish_at)}"
    tree = Tree(head)
    for s in issue.sections:
        branch = tree.add(f"● {escape(s.title)}")
        for a in s.articles:
            view = editorial.tag_view(a)
            tags = "、".join(name_of(c) for c in view.codes)
            how = "[yellow]编辑指定[/yellow]" if view.overridden else "[dim]自动[/dim]"
            if view.overridden and view.auto != view.codes:
                how += f" [dim](自动：{'、'.join(name_of(c) for c in view.auto)})[/dim]"
            label = "[italic]编者按[/italic] " if a.kind == "note" else ""
            leaf = branch.add(f"[cyan]{a.id}[/cyan] {label}{escape(a.title)}  〔{tags}〕 {how}")
            for b in a.blocks:
                if b["kind"] == "subheading":
                    leaf.add(f"[dim]§ {escape(b['text'])}[/dim]")
    out.print(tree)


@app.command("ingest")
def ingest(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="issue file: .txt (the institute's format), .md or .docx")],
    as_json: JsonFlag = False,
) -> None:
    """Turn an issue file into a draft issue of sections and tagged articles."""
    from dispatch import editorial
    from dispatch.db.session import transaction
    from dispatch.ingest import parse_file

    runtime = runtime_of(ctx)
    if not path.exists():
        raise Refused(f"{path}: no such file")
    parsed = parse_file(path)
    with transaction(runtime.sessions) as session:
        issue = editorial.store_issue(session, parsed, str(path), runtime.rules)
        issue = editorial.get_issue(session, issue.id)
        data = editorial.issue_json(issue)
    if as_json:
        print_json(data)
    else:
        _show_tree(issue)
        out.print(
            f"stored as draft issue {issue.id}: {len(issue.sections)} sections, "
            f"{len(issue.articles)} articles. Check the tags, then "
            f"`dispatch issues finalize {issue.id} --publish-at \"YYYY-MM-DD HH:MM\"`."
        )


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List issues, newest first."""
    from rich.table import Table

    from dispatch import editorial
    from dispatch.db.session import transaction

    runtime = runtime_of(ctx)
    with transaction(runtime.sessions) as session:
        issues = editorial.list_issues(session)
        rows = [
            {
                "id": i.id,
                "title": i.title,
                "number": i.number,
                "status": i.status,
                "publish_at": clock.show(i.publish_at) or None,
                "articles": len(i.articles),
                "source_file": i.source_file,
            }
            for i in issues
        ]
    if as_json:
        print_json(rows)
        return
    table = Table("ID", "期号", "标题", "状态", "发布时间", "文章", "来源文件")
    for r in rows:
        table.add_row(
            str(r["id"]), r["number"] or "", r["title"], ISSUE_WORDS[r["status"]],
            r["publish_at"] or "", str(r["articles"]), r["source_file"],
        )
    out.print(table if rows else "no issues yet: `dispatch issues ingest FILE`")


@app.command("show")
def show(ctx: typer.Context, issue_id: Annotated[int, typer.Argument(metavar="ID")], as_json: JsonFlag = False) -> None:
    """Show an issue's sections, articles and tags (automatic or the editor's)."""
    from dispatch import editorial
    from dispatch.db.session import transaction

    runtime = runtime_of(ctx)
    with transaction(runtime.sessions) as session:
        issue = editorial.get_issue(session, issue_id)
        data = editorial.issue_json(issue)
    if as_json:
        print_json(data)
    else:
        _show_tree(issue)


@app.command("tag")
def tag(
    ctx: typer.Context,
    article_id: Annotated[int, typer.Argument(metavar="ARTICLE")],
    set_: Annotated[
        str | None,
        typer.Option("--set", help="industries by name or code, e.g. 生物医药,新能源汽车 (or 综合)"),
    ] = None,
    auto: Annotated[bool, typer.Option("--auto", help="drop the override, back to automatic tags")] = False,
) -> None:
    """Override an article's industry tags (kept when the issue is re-tagged)."""
    from rich.markup import escape

    from dispatch import editorial
    from dispatch.db.session import transaction

    if (set_ is None) == (not auto):
        raise typer.BadParameter("give either --set INDUSTRIES or --auto")
    runtime = runtime_of(ctx)
    codes = editorial.parse_tag_codes(set_) if set_ is not None else None
    with transaction(runtime.sessions) as session:
        article = editorial.set_tags(session, article_id, codes)
        view = editorial.tag_view(article)
        title = article.title
    how = "editor's override" if view.overridden else "automatic"
    out.print(f"{article_id} {escape(title)}: {view.words} ({how})")


@app.command("retag")
def retag(ctx: typer.Context, issue_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Re-run the keyword rules on a draft (after editing rules/industries.toml).
    Editors' overrides are kept."""
    from dispatch import editorial
    from dispatch.db.session import transaction

    runtime = runtime_of(ctx)
    with transaction(runtime.sessions) as session:
        issue = editorial.get_issue(session, issue_id)
        editorial.retag(session, issue, runtime.rules)
    show(ctx, issue_id)


@app.command("finalize")
def finalize(
    ctx: typer.Context,
    issue_id: Annotated[int, typer.Argument(metavar="ID")],
    publish_at: Annotated[
        str | None,
        typer.Option("--publish-at", help='local time (Asia/Shanghai), "YYYY-MM-DD HH:MM"; default now'),
    ] = None,
) -> None:
    """Freeze an issue and set its publication time; the scheduler sends it then."""
    from dispatch import editorial
    from dispatch.db.session import transaction

    when = None
    if publish_at is not None:
        try:
            when = clock.parse_local(publish_at)
        except ValueError as exc:
            raise typer.BadParameter(
                f'{publish_at!r} is not "YYYY-MM-DD HH:MM"', param_hint="--publish-at"
            ) from exc
    runtime = runtime_of(ctx)
    with transaction(runtime.sessions) as session:
        issue = editorial.finalize(session, issue_id, when)
        at = clock.show(issue.publish_at)
    out.print(f"issue {issue_id} finalized; publication {at} (Asia/Shanghai)")


@app.command("delete")
def delete(ctx: typer.Context, issue_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Delete a draft issue (finalized issues are kept)."""
    from dispatch import editorial
    from dispatch.db.session import transaction

    runtime = runtime_of(ctx)
    with transaction(runtime.sessions) as session:
        editorial.delete_draft(session, issue_id)
    out.print(f"draft issue {issue_id} deleted")
