"""`dispatch init DIR`: an instance folder made from the packaged defaults."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from dispatch import defaults

# What each top-level item of an instance is for, as staff read it (var/: VAR_PURPOSE).
PURPOSE = {
    defaults.CONFIG: "配置：数据库、邮件服务器、网址等；相对路径都从它所在的文件夹算起",
    defaults.TEMPLATES: "邮件、网页和企业微信消息的模板，可以修改",
    "rules": "产业标签的关键词规则（industries.toml），可以修改",
    defaults.RECIPIENTS: "读者名单：格式说明 README.md 和示例名单 sample.csv",
    "samples": "一期示例快报，可用来试运行",
}
VAR_PURPOSE = "数据库和运行中产生的文件"


def init(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="要建的实例文件夹")],
    force: Annotated[
        bool, typer.Option("--force", help="已有的文件也用自带的默认文件覆盖")
    ] = False,
) -> None:
    """建一个实例文件夹：config.toml、templates/、rules/、recipients/、samples/、var/。

    不需要配置文件。文件夹里已有同名文件时什么也不写，除非加 --force。
    """
    from dispatch import instance

    made = instance.init(folder, force=force)
    top: dict[str, int] = {}
    for rel in made.files:
        top[rel.parts[0]] = top.get(rel.parts[0], 0) + 1
    top[instance.VAR] = 0
    purpose = {**PURPOSE, instance.VAR: VAR_PURPOSE}
    typer.echo(f"已在 {made.folder} 建好实例文件夹：")
    for name, count in top.items():
        shown = name if name == defaults.CONFIG else name + "/"
        files = f"（{count} 个文件）" if count > 1 else ""
        typer.echo(f"  {shown:<14}{purpose[name]}{files}")
    if made.overwritten:
        typer.echo(f"已用自带的默认文件覆盖 {len(made.overwritten)} 个已有文件。")
    config = shlex.quote(str(made.folder / defaults.CONFIG))
    readers = shlex.quote(str(made.folder / defaults.SAMPLE_READERS))
    typer.echo("")
    typer.echo("下一步：按需修改 config.toml（[smtp] 邮件服务器、[web] base_url），然后导入读者名单：")
    typer.echo(f"  dispatch --config {config} recipients import {readers}")
    typer.echo(f"之后启动服务：dispatch --config {config} run（部署为系统服务见 docs/deploy.md）")
