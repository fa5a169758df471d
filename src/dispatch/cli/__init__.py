"""The `dispatch` command. Exit codes: 0 success, 1 refused (with a message), 2 usage."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from dispatch.config import load
from dispatch.db.errors import describe as describe_database_fault
from dispatch.errors import Refused
from dispatch.instance import check as check_instance
from dispatch.masthead import BULLETIN
from dispatch.runtime import Runtime

if TYPE_CHECKING:
    from typer._click import Context as ClickContext  # typer bundles click, unexported


class _Group(TyperGroup):
    """Turns refusals and database faults into one line on stderr and exit code 1, for
    every command; `-v` prints the traceback of a database fault before its line."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except Refused as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(1) from exc
        except Exception as exc:
            line = _database_fault(ctx.obj, exc)
            if line is None:
                raise
            if ctx.params.get("verbose"):
                sys.stderr.write("".join(traceback.format_exception(exc)))
            err.print(f"[red]error:[/red] {escape(line)}", soft_wrap=True)
            raise typer.Exit(1) from exc


def _database_fault(obj: Runtime | None, exc: Exception) -> str | None:
    if obj is None:  # the settings could not even be read: not a database fault
        return None
    cfg = obj.config
    return describe_database_fault(
        exc, cfg.database_url, busy_timeout=cfg.database.busy_timeout_seconds
    )


app = typer.Typer(
    cls=_Group,
    help=f"Deliver 《{BULLETIN}》 to its readers, by email and WeChat Work.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True, highlight=False)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option("--config", "-c", help="config file (default $DISPATCH_CONFIG, else ./config.toml)"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log at DEBUG")] = False,
) -> None:
    # Commands talk to the user on stdout/stderr; logs are for the long-running
    # services (`run`, `worker`), which raise the level to INFO themselves.
    logging.basicConfig(
        level=logging.DEBUG if verbose else os.environ.get("DISPATCH_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if ctx.invoked_subcommand == "init":
        return  # makes a config; needs none
    ctx.obj = Runtime(load(config))
    check_instance(ctx.obj.config)  # a missing folder is refused now, not at the first page


def runtime_of(ctx: typer.Context) -> Runtime:
    runtime: Runtime = ctx.find_root().obj  # set by _root before any such command runs
    return runtime


JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON")]


def print_json(data: object) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _register() -> None:
    from dispatch.cli import db, deliver, init, issues, preview, recipients

    app.add_typer(issues.app, name="issues", help="Ingest, check, tag and finalize issues.")
    app.add_typer(recipients.app, name="recipients", help="The reader lists.")
    app.add_typer(db.app, name="db", help="Database schema.")
    app.command("preview")(preview.preview)
    app.command("init")(init.init)
    deliver.register(app)


_register()


def main() -> None:
    app(prog_name="dispatch")
