"""`dispatch doctor`: one line per configured part (✓ / ! / ✗), the fix under a problem.

It loads the configuration itself rather than through `runtime_of`: a missing file the
config names, or a database behind the newest schema, is a finding here, not a refusal
(and the database is not migrated behind the user's back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from dispatch.cli import JsonFlag, print_json

if TYPE_CHECKING:
    from dispatch.doctor import Finding

MARKS = {"ok": ("✓", "green"), "warning": ("!", "yellow"), "problem": ("✗", "red")}


def doctor(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """检查配置的每一部分能否工作：配置文件、数据库、发信（SMTP 连接和登录）、收信（IMAP
    登录）、企业微信（访问令牌和回调）、网页地址。

    不发邮件，不改数据库结构；只在企业微信启用时取一个新的访问令牌存入数据库。有问题时
    说明改哪个配置项或环境变量。全部正常（提醒不算问题）时退出码为 0，否则为 1。
    """
    from dispatch.doctor import examine

    findings = examine(ctx.find_root().obj.config)
    if as_json:
        print_json([f.as_dict() for f in findings])
    else:
        _print(findings)
    if any(f.status == "problem" for f in findings):
        raise typer.Exit(1)


def _print(findings: list[Finding]) -> None:
    from rich.markup import escape

    from dispatch.cli.screen import console

    out = console()
    for f in findings:
        mark, colour = MARKS[f.status]
        out.print(f"[{colour}]{mark}[/{colour}] {f.part}：{escape(f.message)}", soft_wrap=True)
        if f.fix and f.status != "ok":
            out.print(f"    改法：{escape(f.fix)}", soft_wrap=True)
    problems = sum(f.status == "problem" for f in findings)
    warnings = sum(f.status == "warning" for f in findings)
    if problems:
        out.print(f"[red]{problems} 项有问题[/red]" + (f"，{warnings} 项提醒" if warnings else ""))
    elif warnings:
        out.print(f"[green]没有问题[/green]，{warnings} 项提醒")
    else:
        out.print("[green]全部正常[/green]")
