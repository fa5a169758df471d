"""`dispatch db`: schema upgrades (run by every command anyway) and where the data is."""

from __future__ import annotations

import typer
from sqlalchemy.engine import make_url

from dispatch.cli import context
from dispatch.db.session import current_revision, head_revision

app = typer.Typer(no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Bring the database schema up to date."""
    engine = context(ctx).engine  # opening migrates
    typer.echo(f"schema at {current_revision(engine)} (head {head_revision(engine)})")


@app.command("info")
def info(ctx: typer.Context) -> None:
    """Show the database in use (without its password) and the schema revision."""
    c = context(ctx)
    typer.echo(make_url(c.config.database_url).render_as_string(hide_password=True))
    typer.echo(f"schema {current_revision(c.engine)}")
