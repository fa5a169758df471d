"""`dispatch staff add | list | passwd | disable | enable`: the staff web's accounts.

Passwords are asked twice with a hidden prompt and never printed; changes are kept in
staff_changes (by the CLI: no staff member).
"""

from __future__ import annotations

from typing import Annotated

import typer

from dispatch.cli import JsonFlag, print_json, runtime_of
from dispatch.errors import Refused

app = typer.Typer(no_args_is_help=True, help="工作人员账号：添加、查看、改密码、停用和启用。")

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="登录用的账号名")]


def _line(prompt: str) -> str:
    """One hidden line from the terminal; from a pipe (a script), read as it is: getpass
    would warn there, in English, that the input may be echoed."""
    import sys

    if sys.stdin.isatty():
        answer: str = typer.prompt(prompt, hide_input=True)
        return answer
    line = sys.stdin.readline()
    if not line:
        raise Refused(f"{prompt}：没有读到输入")
    return line.rstrip("\r\n")


def _ask_password() -> str:
    from dispatch.staff.passwords import check_pair

    # Two hidden prompts compared by check_pair (as the web's forms), not click's
    # confirmation_prompt: its mismatch message is English and it asks again forever.
    password, again = _line("密码"), _line("再输一次密码")
    check_pair(password, again)
    return password


@app.command("add")
def add(
    ctx: typer.Context,
    name: NameArg,
    role: Annotated[str, typer.Option(
        "--role", metavar="ROLE", show_default=False,
        help="角色：EDITOR 编辑（默认）；ADMIN 管理员，还能管理账号（大小写均可）",
    )] = "editor",
    display_name: Annotated[str | None, typer.Option(
        "--display-name", metavar="名字", help="网页上显示的名字（默认同账号名）",
    )] = None,
) -> None:
    """添加一个工作人员账号（密码输入两次，不显示）。"""
    from dispatch.db.session import transaction
    from dispatch.staff import accounts

    role = role.lower()
    if role not in ("editor", "admin"):
        raise Refused("--role：只能是 editor（编辑）或 admin（管理员）")
    runtime = runtime_of(ctx)
    password = _ask_password()
    with transaction(runtime.sessions) as session:
        accounts.add(session, name, password, role, display_name)
    typer.echo(f"已添加账号 {name.strip()}（{accounts.ROLE_WORDS[role]}）。")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """列出所有工作人员账号。"""
    from dispatch.clock import show
    from dispatch.staff import accounts

    with runtime_of(ctx).sessions() as session:
        rows = accounts.rows(session)
    if as_json:
        print_json([
            {"name": r.name, "display_name": r.display_name, "role": r.role, "active": r.active,
             "created_at": show(r.created_at), "last_login_at": show(r.last_login_at) or None}
            for r in rows
        ])
        return
    if not rows:
        typer.echo("还没有账号。用 dispatch staff add NAME 添加。")
        return
    from dispatch.cli.screen import console, table

    t = table("账号", "显示名", "角色", "状态", "上次登录")
    for r in rows:
        t.add_row(r.name, r.display_name, accounts.ROLE_WORDS[r.role],
                  "启用" if r.active else "停用", show(r.last_login_at) or "从未登录")
    console().print(t)


@app.command("passwd")
def passwd(ctx: typer.Context, name: NameArg) -> None:
    """给账号设新密码（该账号已登录的网页会话随之失效）。"""
    from dispatch.db.session import transaction
    from dispatch.staff import accounts

    runtime = runtime_of(ctx)
    with runtime.sessions() as session:
        accounts.find(session, name)  # refuse an unknown name before asking
    password = _ask_password()
    with transaction(runtime.sessions) as session:
        accounts.set_password(session, name, password)
    typer.echo(f"已更改 {name} 的密码。")


def _set_active(ctx: typer.Context, name: str, active: bool) -> None:
    from dispatch.db.session import transaction
    from dispatch.staff import accounts

    with transaction(runtime_of(ctx).sessions) as session:
        changed = accounts.set_active(session, name, active)
    word = "启用" if active else "停用"
    typer.echo(f"已{word}账号 {name}。" if changed else f"账号 {name} 本来就是{word}的。")


@app.command("disable")
def disable(ctx: typer.Context, name: NameArg) -> None:
    """停用账号：不能再登录，已登录的会话立即失效。"""
    _set_active(ctx, name, False)


@app.command("enable")
def enable(ctx: typer.Context, name: NameArg) -> None:
    """重新启用一个停用的账号。"""
    _set_active(ctx, name, True)
