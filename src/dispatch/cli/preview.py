"""`dispatch preview`: exactly what one reader would get."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dispatch.cli import runtime_of
from dispatch.errors import Refused

if TYPE_CHECKING:
    from dispatch.preview import AsReader

FORMATS = ("html", "text", "wecom", "eml")
CHANNEL_OF = {"html": "email", "text": "email", "eml": "email", "wecom": "wecom"}


def cli_warning(chosen: AsReader) -> str:
    """dispatch.preview's warning for a reader who is sent nothing, with the command that
    changes that."""
    n = chosen.view.id
    if chosen.status == "unsubscribed":
        how = f"只有本人要求时才能恢复：dispatch recipients activate {n} --resubscribe"
    else:
        how = f"恢复：dispatch recipients activate {n}"
    return f"{chosen.warning}（{how}）"


def warn(text: str) -> None:
    """A warning on stderr, in one piece (it may end in a command to copy)."""
    from dispatch.cli.screen import console

    console(stderr=True).print(f"[yellow]{text}[/yellow]", soft_wrap=True)


def preview(
    ctx: typer.Context,
    issue_id: Annotated[int, typer.Argument(metavar="ISSUE", help="期刊编号")],
    recipient: Annotated[
        str,
        typer.Option("--recipient", "-r", metavar="KEY",
                     help="读者：邮箱、企业微信账号或读者编号"),
    ],
    format_: Annotated[
        str,
        typer.Option(
            "--format", "-f",
            help="html：邮件的网页版； text：邮件的纯文本； wecom：企业微信接口 message/send 的 JSON； eml：整封邮件",
        ),
    ] = "html",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", metavar="FILE", help="写入文件，而不是打印")
    ] = None,
) -> None:
    """显示某位读者会收到的这一期，一字不差。"""
    # Imported here: rendering pulls in premailer and lxml, which every other command
    # would pay for at start-up.
    from rich.markup import escape

    from dispatch import editorial
    from dispatch.db.session import transaction
    from dispatch.plan.fanout import planned_token
    from dispatch.preview import PREVIEW_TOKEN, as_reader
    from dispatch.readers.apply import find_reader
    from dispatch.render.pipeline import IssueRenderer
    from dispatch.render.templates import environment

    if format_ not in FORMATS:
        raise typer.BadParameter(f"只能是 {'、'.join(FORMATS)} 之一", param_hint="--format")
    runtime = runtime_of(ctx)
    if format_ == "wecom":
        from dispatch.deliver.wecom import check_links

        check_links(runtime.config)  # what could not be sent is not previewed either
    with transaction(runtime.sessions) as session:
        issue = editorial.get_issue(session, issue_id)
        chosen = as_reader(find_reader(session, recipient))
        warning = cli_warning(chosen) if chosen.warning else None
        reader = chosen.view
        token = planned_token(session, issue_id, reader.id, CHANNEL_OF[format_]) or PREVIEW_TOKEN
        renderer = IssueRenderer.for_issue(issue, environment(runtime.config), runtime.config)
    if format_ == "wecom" and not reader.wecom_userid:
        raise Refused(f"读者 {reader.id} {reader.name} 没有企业微信账号")
    if format_ == "eml" and not reader.email:
        raise Refused(f"读者 {reader.id} {reader.name} 没有邮箱")
    if warning:
        warn(escape(warning))
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
        typer.echo(f"已写入 {output}（{len(data)} 字节）", err=True)
