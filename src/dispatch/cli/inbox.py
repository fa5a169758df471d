"""`dispatch inbox classify | poll`: readers' replies, auto-replies and bounces."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dispatch.cli import JsonFlag, print_json, runtime_of
from dispatch.errors import Refused

if TYPE_CHECKING:
    from dispatch.feedback.classify import Classified
    from dispatch.feedback.imap import PollResult
    from dispatch.feedback.match import Match

app = typer.Typer(no_args_is_help=True)

KIND_WORDS = {"human": "读者回复", "auto_reply": "自动回复", "bounce": "退信"}
FOUND_BY_WORDS = {
    "address": "凭收件地址中的投递标记找到",
    "original": "凭退回的原邮件中的投递标记找到",
    "references": "凭回信引用的原邮件编号找到",
    "sender": "凭发件人邮箱找到这位读者，取其最近一次邮件投递",
}
# What `dispatch inbox poll` counted, in the order it says them.
COUNT_WORDS = (
    ("replies", "读者回复"), ("auto_replies", "自动回复"), ("bounces", "退信"),
    ("hard_bounces", "其中硬退信"), ("suspended", "因此停发邮件的读者"), ("unsubscribed", "退订"),
    ("unmatched", "没有对应到读者"), ("duplicates", "以前已收过"), ("oversized", "超过大小上限（只读了邮件头）"),
    ("unreadable", "不是邮件"), ("failed", "出错留在原处"),
)
TEXT_SHOWN = 500


def classify(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE.eml", help="一封邮件（.eml 文件）")],
    as_json: JsonFlag = False,
) -> None:
    """看一封邮件收到后会怎样处理：读者回复、自动回复还是退信，对应哪次投递。只读不写。"""
    from dispatch.feedback.classify import classify as classify_message
    from dispatch.feedback.match import find
    from dispatch.limits import EML_BYTES, FileRefused, read_capped

    runtime = runtime_of(ctx)
    try:
        raw = read_capped(file, EML_BYTES, "邮件")
        classified = classify_message(raw)
    except FileRefused as exc:
        raise Refused(f"{file}：{exc.reason}") from None
    except Refused as exc:
        raise Refused(f"{file}：{exc}") from None
    with runtime.sessions() as session:
        match = find(session, classified)
        data = _data(classified, match, runtime.config.feedback.bounce_limit)
        session.rollback()  # read only
    if as_json:
        print_json(data)
    else:
        _print(file, data)


def _data(c: Classified, match: Match, bounce_limit: int) -> dict[str, Any]:
    from dispatch.feedback.store import effect

    reader = match.reader
    todo = effect(c, match, bounce_limit)
    return {
        "kind": c.kind,
        "delivery": match.delivery.id if match.delivery else None,
        "recipient": c.recipient,
        "text": c.text,
        "token": match.token or c.token,
        "matched_by": match.by,
        "issue": match.issue_id,
        "reader": reader.id if reader else None,
        "reader_name": reader.name if reader else None,
        "hard": c.hard,
        "unsubscribe": todo.unsubscribe,
        "subject": c.subject,
        "sender": c.sender,
        "message_id": c.message_id,
        # What storing it would do to the reader's count of hard bounces.
        "bounces_after": todo.bounces_after,
        "would_suspend": todo.suspend,
        "resets_bounces": todo.reset_bounces,
    }


def _print(file: Path, data: dict[str, Any]) -> None:
    from rich.markup import escape

    from dispatch.cli.screen import console

    out = console()
    kind = KIND_WORDS[data["kind"]]
    if data["kind"] == "bounce":
        kind += "（硬退信：地址不存在等，长期失败）" if data["hard"] else "（软退信：邮箱已满、延迟等，暂时失败）"
    if data["unsubscribe"]:
        kind += "，要求退订"
    lines = [f"{escape(str(file))}：{kind}"]
    if data["delivery"] is not None:
        lines.append(
            f"对应投递：{data['delivery']}（期刊 {data['issue']}，读者 {data['reader']} "
            f"{escape(data['reader_name'] or '')}；{FOUND_BY_WORDS[data['matched_by']]}）"
        )
    elif data["reader"] is not None:
        lines.append(f"对应读者：{data['reader']} {escape(data['reader_name'] or '')}"
                     "（凭发件人邮箱找到，还没有给这位读者发过邮件）")
    else:
        lines.append("没有找到对应的投递或读者：收到后照样保存，供工作人员查看")
    if data["sender"]:
        lines.append(f"发件人：{escape(data['sender'])}")
    if data["kind"] == "bounce" and data["recipient"]:
        lines.append(f"被退回的地址：{escape(data['recipient'])}")
    if data["subject"]:
        lines.append(f"主题：{escape(data['subject'])}")
    if data["unsubscribe"]:
        lines.append("收取时会：把这位读者设为“已退订”（来源：邮件）")
    elif data["bounces_after"] is not None:
        then = "，达到上限，停发这位读者的邮件" if data["would_suspend"] else ""
        lines.append(f"收取时会：把这次投递标为被退回，读者连续硬退信 {data['bounces_after']} 次{then}")
    text = data["text"] or ""
    label = "退信原因" if data["kind"] == "bounce" else "正文"
    shown = text if len(text) <= TEXT_SHOWN else text[:TEXT_SHOWN] + "…"
    lines.append(f"{label}：" + (escape(shown) if shown else "（空）"))
    for line in lines:
        out.print(line, soft_wrap=True)


def poll(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """现在收取一次收信邮箱（[imap]），处理后移到 processed_mailbox，打印各类数量。"""
    from dispatch.feedback.imap import MailboxFault, poller

    runtime = runtime_of(ctx)
    the_poller = poller(runtime.config, runtime.sessions)
    try:
        result = the_poller.poll()
    except MailboxFault as exc:
        raise Refused(exc.words) from None
    if as_json:
        print_json(result.as_dict())
        return
    from dispatch.cli.screen import console

    console().print(_summary(result, runtime.config.imap.processed_mailbox), soft_wrap=True)


def _summary(result: PollResult, processed: str) -> str:
    counts = result.as_dict()
    if not result.found:
        return "收信邮箱里没有新邮件"
    parts = [f"{word} {counts[key]}" for key, word in COUNT_WORDS if counts[key]]
    return (f"收信邮箱里有 {result.found} 封：" + "，".join(parts)
            + f"；已移到“{processed}”{result.moved} 封")


def register(parent: typer.Typer) -> None:
    app.command("classify")(classify)
    app.command("poll")(poll)
    parent.add_typer(app, name="inbox", help="收信邮箱：读者回信、自动回复、退信和退订邮件。")
