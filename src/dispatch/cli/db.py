"""`dispatch db`: schema upgrades (run by every command anyway) and where the data is."""

from __future__ import annotations

import typer

from dispatch.cli import runtime_of

app = typer.Typer(no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """把数据库结构升级到最新版本（每条命令打开数据库时也会自动升级）。"""
    from dispatch.db.session import current_revision, head_revision

    engine = runtime_of(ctx).engine  # opening migrates
    current, head = current_revision(engine), head_revision()
    if current == head:
        typer.echo(f"数据库结构已是最新版本 {current}")
    else:  # a newer dispatch wrote this database: this one cannot go back
        typer.echo(f"数据库结构版本 {current}，本程序认识的最新版本是 {head}")


@app.command("info")
def info(ctx: typer.Context) -> None:
    """显示正在使用的数据库（不显示密码）和它的结构版本。"""
    from dispatch.db.errors import masked
    from dispatch.db.session import current_revision

    runtime = runtime_of(ctx)
    typer.echo(f"数据库：{masked(runtime.config.database_url)}")
    typer.echo(f"结构版本：{current_revision(runtime.engine)}")
