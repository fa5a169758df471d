"""`dispatch preview`: exactly what one reader would get."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dispatch.cli import runtime_of
from dispatch.errors import Refused

# A well-formed token that no delivery has: links in a preview lead to a 404 page.
PREVIEW_TOKEN = "previewpreviewpreviewpreviewprev"
FORMATS = ("html", "text", "wecom", "eml")
CHANNEL_OF = {"html": "email", "text": "email", "eml": "email", "wecom": "wecom"}


def preview(
    ctx: typer.Context,
    issue_id: Annotated[int, typer.Argument(metavar="ISSUE")],
    recipient: Annotated[
        str, typer.Option("--recipient", "-r", help="email, WeChat Work user id, or reader id")
    ],
    format_: Annotated[
        str,
        typer.Option("--format", "-f", help="html | text | wecom (the message/send JSON) | eml"),
    ] = "html",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="write to FILE")] = None,
) -> None:
    """Show exactly what a reader would get for an issue."""
    from dispatch import editorial
    from dispatch.db.session import transaction
    from dispatch.plan.fanout import planned_token

    # Imported here: rendering pulls in premailer and lxml, which every other command
    # would pay for at start-up.
    from dispatch.readers.apply import find_reader
    from dispatch.render.pipeline import IssueRenderer, ReaderView
    from dispatch.render.templates import environment

    if format_ not in FORMATS:
        raise typer.BadParameter(f"choose one of {', '.join(FORMATS)}", param_hint="--format")
    runtime = runtime_of(ctx)
    with transaction(runtime.sessions) as session:
        issue = editorial.get_issue(session, issue_id)
        reader = ReaderView.of(find_reader(session, recipient))
        token = planned_token(session, issue_id, reader.id, CHANNEL_OF[format_]) or PREVIEW_TOKEN
        renderer = IssueRenderer.for_issue(issue, environment(runtime.config), runtime.config)
    if format_ == "wecom" and not reader.wecom_userid:
        raise Refused(f"reader {reader.id} has no WeChat Work account (企业微信账号)")
    if format_ == "eml" and not reader.email:
        raise Refused(f"reader {reader.id} has no email address")
    if format_ == "html":
        data = renderer.html_for(reader, token).encode("utf-8")
    elif format_ == "text":
        data = renderer.text_for(reader, token).encode("utf-8")
    elif format_ == "wecom":
        data = renderer.wecom_json(reader, token).encode("utf-8") + b"\n"
    else:
        data = renderer.email_message(reader, token)
    if output is None:
        typer.echo(data.decode("utf-8"), nl=not data.endswith(b"\n"))
    else:
        output.write_bytes(data)
        typer.echo(f"wrote {output} ({len(data)} bytes)", err=True)
