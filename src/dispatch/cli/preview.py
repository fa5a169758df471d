"""`dispatch preview`: exactly what one reader would get."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dispatch.cli import runtime_of
from dispatch.errors import Refused

if TYPE_CHECKING:
    from dispatch.db.models import Reader

# A well-formed token that no delivery has: links in a preview lead to a 404 page.
PREVIEW_TOKEN = "previewpreviewpreviewpreviewprev"
FORMATS = ("html", "text", "wecom", "eml")
CHANNEL_OF = {"html": "email", "text": "email", "eml": "email", "wecom": "wecom"}


def receives_nothing(reader: Reader) -> str | None:
    """The warning for staff who preview or test-send as a reader who is sent nothing
    (停用 or 暂停, 退订); None for an active reader."""
    from dispatch.readers import status_word

    if reader.status == "active":
        return None
    if reader.status == "unsubscribed":
        how = f"只有本人要求时才能恢复：dispatch recipients activate {reader.id} --resubscribe"
    else:
        how = f"恢复：dispatch recipients activate {reader.id}"
    return (
        f"注意：读者 {reader.id} {reader.name} 的状态是“{status_word(reader.status)}”，"
        f"不会收到任何期刊（{how}）"
    )


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
    from dispatch.readers.apply import find_reader
    from dispatch.render.pipeline import IssueRenderer, ReaderView
    from dispatch.render.templates import environment

    if format_ not in FORMATS:
        raise typer.BadParameter(f"只能是 {'、'.join(FORMATS)} 之一", param_hint="--format")
    runtime = runtime_of(ctx)
    if format_ == "wecom":
        from dispatch.deliver.wecom import check_links

        check_links(runtime.config)  # what could not be sent is not previewed either
    with transaction(runtime.sessions) as session:
        issue = editorial.get_issue(session, issue_id)
        found = find_reader(session, recipient)
        warning = receives_nothing(found)
        reader = ReaderView.of(found)
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
