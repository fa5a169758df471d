"""The `dispatch` command. Exit codes: 0 success, 1 refused (with a message), 2 usage.

Start-up is what `--help` costs, so this package imports only typer and light modules at
the top; the settings and the database (`Runtime`) are made when a command first asks for
them (`runtime_of`), and each command imports what it uses inside its function.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer._click.core import Command
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from dispatch.cli import coerce, zh
from dispatch.errors import Refused
from dispatch.masthead import BULLETIN

if TYPE_CHECKING:
    from dispatch.runtime import Runtime

ERROR = "错误："


class _Invocation:
    """What the root options said; the runtime once a command has asked for it."""

    def __init__(self, config: str | None) -> None:
        self.config = config
        self.runtime: Runtime | None = None


class _Context(typer.Context):
    """Every command's context: help in Chinese, and no pydantic for the help option."""

    formatter_class = zh.ChineseHelpFormatter

    def __init__(self, command: Command, *args: Any, **kwargs: Any) -> None:
        super().__init__(command, *args, **kwargs)
        help_option = command.get_help_option(self)  # made now, for this command
        if help_option is not None:
            coerce.without_pydantic(help_option)


class _Group(TyperGroup):
    """Turns refusals and database faults into one line on stderr and exit code 1, for
    every command (`-v` prints the traceback of a database fault before its line), and
    usage errors into Chinese with exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Typer has built the whole tree of commands by now.
        for command in _tree(self):
            command.context_class = _Context
            zh.speak_chinese(command)
            for param in command.params:
                coerce.without_pydantic(param)

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except UsageError as exc:
            _usage_error(exc)

    def invoke(self, ctx: Any) -> Any:  # typer's bundled click Context
        try:
            return super().invoke(ctx)
        except Refused as exc:
            say_error(str(exc))
            raise typer.Exit(1) from exc
        except UsageError as exc:
            _usage_error(exc)
        except Exception as exc:
            line = _database_fault(ctx.obj, exc)
            if line is None:
                raise
            if ctx.params.get("verbose"):
                import traceback

                sys.stderr.write("".join(traceback.format_exception(exc)))
            say_error(line)
            raise typer.Exit(1) from exc


def _tree(command: Command) -> Iterator[Command]:
    yield command
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            yield from _tree(sub)


def say_error(line: str) -> None:
    """One line on stderr after a red 错误："""
    typer.secho(ERROR, fg="red", err=True, nl=False)
    typer.echo(line, err=True)


def _usage_error(exc: UsageError) -> NoReturn:
    if isinstance(exc, NoArgsIsHelpError):
        raise exc  # the help itself, already in Chinese
    usage, message, hint = zh.explain(exc)
    if usage:
        typer.echo(usage, err=True)
    say_error(message)
    if hint:
        typer.echo(f"查看帮助：{hint}", err=True)
    raise typer.Exit(2) from exc


def _database_fault(obj: _Invocation | None, exc: Exception) -> str | None:
    if obj is None or obj.runtime is None:  # no database opened: not a database fault
        return None
    from dispatch.db.errors import describe

    cfg = obj.runtime.config
    return describe(exc, cfg.database_url, busy_timeout=cfg.database.busy_timeout_seconds)


app = typer.Typer(
    name="dispatch",  # usage lines say dispatch also when run in-process (tests)
    cls=_Group,
    help=f"把《{BULLETIN}》按读者关注的产业，通过邮件和企业微信发给读者。",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help (zh.ChineseHelpFormatter): Rich's help costs a third of a second to
    # import, and its panel titles and errors are English.
    rich_markup_mode=None,
    suggest_commands=False,  # zh suggests, in Chinese
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            "--config", "-c", metavar="PATH",
            help="配置文件（默认用环境变量 $DISPATCH_CONFIG，没有则用当前文件夹的 config.toml）",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="输出调试日志；数据库出错时打印完整的调用栈")
    ] = False,
) -> None:
    import logging

    # Commands talk to the user on stdout/stderr; logs are for the long-running
    # services (`run`, `worker`), which raise the level to INFO themselves.
    logging.basicConfig(
        level=logging.DEBUG if verbose else os.environ.get("DISPATCH_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = _Invocation(config)


def runtime_of(ctx: typer.Context) -> Runtime:
    """The settings and database, made on first use: a missing folder the config names is
    refused here, before the command does anything."""
    invocation: _Invocation = ctx.find_root().obj
    if invocation.runtime is None:
        from dispatch.config import load
        from dispatch.instance import check
        from dispatch.runtime import Runtime

        config = load(invocation.config)
        check(config)
        invocation.runtime = Runtime(config)
    return invocation.runtime


JsonFlag = Annotated[bool, typer.Option("--json", help="输出 JSON")]


def print_json(data: object) -> None:
    import json

    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _register() -> None:
    from dispatch.cli import (
        db,
        deliver,
        doctor,
        feedback,
        inbox,
        init,
        issues,
        preview,
        recipients,
        report,
        staff,
    )

    app.add_typer(issues.app, name="issues", help="快报：导入、查看、标注产业、定稿。")
    app.add_typer(recipients.app, name="recipients", help="读者名单：导入、查找、修改、导出。")
    app.add_typer(db.app, name="db", help="数据库：结构升级和连接信息。")
    app.command("preview")(preview.preview)
    app.command("init")(init.init)
    deliver.register(app)
    inbox.register(app)
    app.command("report")(report.report)
    app.add_typer(feedback.app, name="feedback", help="读者反馈：查看、导出、标记已处理。")
    app.command("doctor")(doctor.doctor)
    app.add_typer(staff.app, name="staff", help="工作人员账号：添加、查看、改密码、停用和启用。")


_register()


def main() -> None:
    app(prog_name="dispatch")
