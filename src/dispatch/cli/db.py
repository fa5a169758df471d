"""`dispatch db`: schema upgrades (run by every command anyway) and where the data is."""

from __future__ import annotations

import typer

from dispatch.cli import runtime_of
from dispatch.db.errors import masked
from dispatch.db.session import current_revision, head_revision

app = typer.Typer(no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Bring the database schema up to date."""
    engine = runtime_of(ctx).engine  # opening migrates
    typer.echo(f"schema at {current_revision(engine)} (head {head_revision(engine)})")


@app.command("info")
def info(ctx: typer.Context) -> None:
    """Show the database in use (without its password) and the schema revision."""
    runtime = runtime_of(ctx)
    typer.echo(masked(runtime.config.database_url))
    typer.echo(f"schema {current_revision(runtime.engine)}")
